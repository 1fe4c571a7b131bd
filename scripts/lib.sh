# Shared set-up for scripts/test.sh, demo.sh and bench.sh. Source it.
# Installs what cosmount's scripts need on a fresh Debian machine as root and
# starts/stops a pinned versitygw on loopback.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/.bin"
VERSITYGW_VERSION=v1.8.0
export PATH="/usr/local/go/bin:$PATH"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

apt_updated=0
# apt_install PKG... installs the Debian packages that are missing.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		log "missing Debian packages: ${missing[*]} (run as root to install them)"
		return 1
	fi
	if [ $apt_updated -eq 0 ]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
		apt_updated=1
	fi
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_fuse() {
	apt_install fuse3
	[ -e /dev/fuse ] || { modprobe fuse 2>/dev/null || true; }
	[ -e /dev/fuse ] || { log "/dev/fuse is missing"; return 1; }
}

ensure_versitygw() {
	if [ -x "$BIN/versitygw" ] && [ "$(cat "$BIN/versitygw.version" 2>/dev/null)" = "$VERSITYGW_VERSION" ]; then
		return 0
	fi
	log "building versitygw $VERSITYGW_VERSION into $BIN (about 80 s the first time)"
	mkdir -p "$BIN"
	GOBIN="$BIN" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
	echo "$VERSITYGW_VERSION" >"$BIN/versitygw.version"
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on, taken
# below the kernel's ephemeral range so that no outgoing connection holds it.
free_port() {
	local p lo
	lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$lo" -gt 12000 ] || lo=32768
	for _ in $(seq 1 200); do
		p=$((10000 + RANDOM % (lo - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# wait_port PORT SECONDS waits until 127.0.0.1:PORT accepts connections.
wait_port() {
	local i
	for i in $(seq 1 $(($2 * 10))); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# alive PID: the process runs (and is not a zombie waiting to be reaped).
alive() {
	kill -0 "$1" 2>/dev/null && ! grep -qs '^[0-9]* (.*) Z' "/proc/$1/stat"
}

# listens_on PID PORT: process PID itself holds a socket listening on
# 127.0.0.1:PORT, not some other program that took the port first.
listens_on() {
	local ino
	for ino in $(awk -v p="$(printf ':%04X' "$2")" '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null); do
		ls -l "/proc/$1/fd" 2>/dev/null | grep -qF "socket:[$ino]" && return 0
	done
	return 1
}

# start_versitygw DATADIR LOGFILE: starts the server; sets VGW_PID, VGW_PORT,
# VGW_ENDPOINT, VGW_ACCESS, VGW_SECRET. Keys are random per run and passed
# through the environment, never on the command line.
start_versitygw() {
	local data=$1 logf=$2
	mkdir -p "$data"
	VGW_PORT=$(free_port)
	VGW_ACCESS="cosmount$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	VGW_SECRET="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	ROOT_ACCESS_KEY="$VGW_ACCESS" ROOT_SECRET_KEY="$VGW_SECRET" \
		setsid "$BIN/versitygw" --port "127.0.0.1:$VGW_PORT" --keep-alive posix "$data" >"$logf" 2>&1 &
	VGW_PID=$!
	# Wait until versitygw itself listens: it fails at once if the port was
	# taken since free_port, and then whatever took it must not be tested.
	local deadline=$((SECONDS + 30)) rc
	until listens_on "$VGW_PID" "$VGW_PORT"; do
		if ! alive "$VGW_PID"; then
			rc=0
			wait "$VGW_PID" 2>/dev/null || rc=$?
			VGW_PID=
			log "versitygw exited (status $rc) before listening on 127.0.0.1:$VGW_PORT; the end of its log ($logf):"
			tail -n 20 "$logf" >&2
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			log "versitygw did not listen on 127.0.0.1:$VGW_PORT within 30 s; stopping it. The end of its log ($logf):"
			tail -n 20 "$logf" >&2
			stop_versitygw
			return 1
		fi
		sleep 0.1
	done
	VGW_ENDPOINT="http://127.0.0.1:$VGW_PORT"
}

stop_versitygw() {
	if [ -n "${VGW_PID:-}" ]; then
		kill "$VGW_PID" 2>/dev/null || true
		wait "$VGW_PID" 2>/dev/null || true
		VGW_PID=
	fi
}
