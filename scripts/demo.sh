#!/usr/bin/env bash
# A local bucket served on loopback and mounted, ready to use.
#   scripts/demo.sh [MOUNTPOINT]   set up and mount (default ./mnt)
#   scripts/demo.sh stop           unmount and stop everything it started
# Needs root on a fresh Debian machine (installs fuse3 and curl, builds the
# pinned versitygw and cosmount). If the set-up fails, what it started is
# stopped again; if something goes wrong, the logs stay in .demo/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
STATE="$ROOT/.demo"
DRAIN_SECONDS=60 # how long stop waits for cosmount to finish its uploads

# is_proc PID EXE [LASTARG]: PID runs the program EXE (with LASTARG as its
# last argument), so that a recorded PID reused since is never killed. EXE
# may have been rebuilt since it started (bench.sh builds the same path).
is_proc() {
	local exe
	[ -n "$1" ] && exe=$(readlink "/proc/$1/exe" 2>/dev/null) && [ "${exe% (deleted)}" = "$2" ] || return 1
	[ -z "${3:-}" ] || [ "$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | tail -n 1)" = "$3" ]
}

# cosmount_pid MNT prints the PID of the cosmount process serving MNT.
cosmount_pid() {
	local d
	for d in /proc/[0-9]*; do
		if is_proc "${d#/proc/}" "$BIN/cosmount" "$1"; then
			echo "${d#/proc/}"
			return 0
		fi
	done
	return 1
}

# wait_gone PID EXE SECONDS waits until PID no longer runs EXE.
wait_gone() {
	local deadline=$((SECONDS + $3))
	while is_proc "$1" "$2"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.2
	done
}

# stop_demo unmounts, waits for cosmount to finish, stops the server and
# removes the state; when something went wrong it keeps the logs, says so
# and returns 1.
stop_demo() {
	[ -f "$STATE/env" ] || { log "no demo is running"; return 0; }
	local trouble=0
	. "$STATE/env"
	DEMO_COSMOUNT_PID=${DEMO_COSMOUNT_PID:-$(cosmount_pid "$DEMO_MNT" || true)}
	if grep -qs " $DEMO_MNT " /proc/mounts; then
		if umount "$DEMO_MNT" 2>/dev/null || fusermount3 -u "$DEMO_MNT" 2>/dev/null; then
			log "unmounted $DEMO_MNT"
		elif umount -l "$DEMO_MNT"; then
			log "$DEMO_MNT is busy: detached it (lazy unmount); cosmount ends once nothing uses it"
		else
			log "could not unmount $DEMO_MNT"
			trouble=1
		fi
	fi
	# cosmount finishes its pending uploads after the unmount: the server
	# must outlive it.
	if is_proc "$DEMO_COSMOUNT_PID" "$BIN/cosmount"; then
		log "waiting up to $DRAIN_SECONDS s for cosmount (pid $DEMO_COSMOUNT_PID) to finish its uploads and exit"
		if ! wait_gone "$DEMO_COSMOUNT_PID" "$BIN/cosmount" "$DRAIN_SECONDS"; then
			log "cosmount (pid $DEMO_COSMOUNT_PID) still runs after $DRAIN_SECONDS s; killing it (uploads it had not finished are lost)"
			kill "$DEMO_COSMOUNT_PID" 2>/dev/null || true
			if ! wait_gone "$DEMO_COSMOUNT_PID" "$BIN/cosmount" 5; then
				log "cosmount did not end on SIGTERM; sending SIGKILL"
				kill -9 "$DEMO_COSMOUNT_PID" 2>/dev/null || true
			fi
			trouble=1
		fi
	fi
	if is_proc "${DEMO_VGW_PID:-}" "$BIN/versitygw"; then
		kill "$DEMO_VGW_PID" 2>/dev/null || true
		if ! wait_gone "$DEMO_VGW_PID" "$BIN/versitygw" 10; then
			log "versitygw (pid $DEMO_VGW_PID) did not stop in 10 s; killing it"
			kill -9 "$DEMO_VGW_PID" 2>/dev/null || true
			trouble=1
		fi
		log "stopped versitygw"
	fi
	if [ $trouble = 0 ]; then
		rm -rf "$STATE"
		return 0
	fi
	# The bucket's files and the keys go; the logs stay.
	rm -rf "$STATE/data" "$STATE/env" "$STATE/curl.cfg"
	log "the demo did not stop cleanly; its logs are kept in $STATE"
	return 1
}

if [ "${1:-}" = "stop" ]; then
	stop_demo
	exit
fi
if [ -f "$STATE/env" ]; then
	log "a demo is already running; stopping it first"
	stop_demo || { log "run scripts/demo.sh again to start anew (it removes $STATE)"; exit 1; }
fi
rm -rf "$STATE" # the logs a failed run kept

MNT=$(realpath -m "${1:-$ROOT/mnt}")

# If the set-up fails, stop what it started and say what is left.
VGW_PID= tmp=
setup_failed() {
	local rc=$? pid
	trap - EXIT
	set +e
	log "demo set-up failed (exit $rc); stopping what it started"
	pid=$(cosmount_pid "$MNT")
	grep -qs " $MNT " /proc/mounts && { umount "$MNT" 2>/dev/null || umount -l "$MNT"; }
	[ -n "$pid" ] && { kill "$pid"; wait_gone "$pid" "$BIN/cosmount" 10 || kill -9 "$pid"; }
	[ -n "$VGW_PID" ] && { stop_versitygw; log "stopped versitygw"; }
	[ -n "$tmp" ] && rm -rf "$tmp"
	rm -rf "$STATE/data" "$STATE/env" "$STATE/curl.cfg"
	if ls "$STATE"/*.log >/dev/null 2>&1; then
		log "logs kept in $STATE (the next scripts/demo.sh removes them)"
	else
		rm -rf "$STATE"
	fi
	exit $rc
}
trap setup_failed EXIT
trap 'exit 130' INT TERM HUP

ensure_fuse
apt_install curl ca-certificates
ensure_versitygw
log "building cosmount"
go build -o "$BIN/cosmount" ./cmd/cosmount

mkdir -p "$STATE" "$MNT"
chmod 700 "$STATE"
start_versitygw "$STATE/data" "$STATE/versitygw.log"
# The server outlives this script: remember how to stop it.
umask 077
cat >"$STATE/env" <<ENV
DEMO_MNT='$MNT'
DEMO_VGW_PID=$VGW_PID
DEMO_ENDPOINT=$VGW_ENDPOINT
AWS_ACCESS_KEY_ID=$VGW_ACCESS
AWS_SECRET_ACCESS_KEY=$VGW_SECRET
ENV
umask 022

# s3 PUT through curl's own SigV4; the keys go in a curl config file, not on
# the command line.
curlcfg="$STATE/curl.cfg"
printf 'user = "%s:%s"\n' "$VGW_ACCESS" "$VGW_SECRET" >"$curlcfg"
s3() {
	curl -sS --fail-with-body -K "$curlcfg" --aws-sigv4 "aws:amz:us-east-1:s3" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
log "creating bucket demo with sample files"
s3 -X PUT "$VGW_ENDPOINT/demo" >/dev/null
put() { s3 -X PUT -T "$2" "$VGW_ENDPOINT/demo/$1" >/dev/null; }
tmp=$(mktemp -d)
echo "Hello from cosmount: this file is an object in a bucket." >"$tmp/hello"
put "README.txt" "$tmp/hello"
for d in docs/guides docs/reference photos/2024 photos/2025 logs; do
	for i in 1 2 3; do
		echo "sample $d/$i" >"$tmp/s"
		put "$d/file-$i.txt" "$tmp/s"
	done
done
head -c $((100 << 20)) /dev/urandom >"$tmp/big"
put "big/100MiB.bin" "$tmp/big"
sha=$(sha256sum "$tmp/big" | cut -d' ' -f1)
rm -rf "$tmp"
tmp=

log "mounting bucket demo at $MNT"
AWS_ACCESS_KEY_ID=$VGW_ACCESS AWS_SECRET_ACCESS_KEY=$VGW_SECRET \
	"$BIN/cosmount" --endpoint "$VGW_ENDPOINT" --log-file "$STATE/cosmount.log" demo "$MNT"
# cosmount serves the mount from a background process: stop waits for it.
echo "DEMO_COSMOUNT_PID=$(cosmount_pid "$MNT" || true)" >>"$STATE/env"
trap - EXIT INT TERM HUP

cat <<MSG

The bucket "demo" (versitygw on $VGW_ENDPOINT) is mounted at $MNT.
Try:
  ls -lR $MNT
  cat $MNT/README.txt
  sha256sum $MNT/big/100MiB.bin      # $sha
  cp -r /etc/default $MNT/ && ls -l $MNT/default
Logs: $STATE/cosmount.log
Stop: scripts/demo.sh stop
MSG
