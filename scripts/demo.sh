#!/usr/bin/env bash
# A local bucket served on loopback and mounted, ready to use.
#   scripts/demo.sh [MOUNTPOINT]   set up and mount (default ./mnt)
#   scripts/demo.sh stop           unmount and stop everything it started
# Needs root on a fresh Debian machine (installs fuse3 and curl, builds the
# pinned versitygw and cosmount).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
STATE="$ROOT/.demo"

stop_demo() {
	[ -f "$STATE/env" ] || { log "no demo is running"; return 0; }
	. "$STATE/env"
	if grep -qs " $DEMO_MNT " /proc/mounts; then
		umount "$DEMO_MNT" 2>/dev/null || fusermount3 -u "$DEMO_MNT" 2>/dev/null || umount -l "$DEMO_MNT"
		log "unmounted $DEMO_MNT"
	fi
	# Give cosmount a moment to finish pending uploads and exit.
	for _ in $(seq 1 50); do pgrep -f "cosmount .*$DEMO_MNT" >/dev/null || break; sleep 0.2; done
	if [ -n "${DEMO_VGW_PID:-}" ] && kill "$DEMO_VGW_PID" 2>/dev/null; then
		log "stopped versitygw"
	fi
	rm -rf "$STATE"
}

if [ "${1:-}" = "stop" ]; then
	stop_demo
	exit 0
fi
if [ -f "$STATE/env" ]; then
	log "a demo is already running; stopping it first"
	stop_demo
fi

MNT=$(realpath -m "${1:-$ROOT/mnt}")
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

log "mounting bucket demo at $MNT"
AWS_ACCESS_KEY_ID=$VGW_ACCESS AWS_SECRET_ACCESS_KEY=$VGW_SECRET \
	"$BIN/cosmount" --endpoint "$VGW_ENDPOINT" --log-file "$STATE/cosmount.log" demo "$MNT"

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
