#!/usr/bin/env bash
# Benchmarks cosmount side by side with s3fs, rclone mount and the ceilings
# (a FUSE file system serving memory, and cosmount's own client with no file
# system), on one versitygw on loopback, in one run. See docs/benchmarks.md.
#
#   scripts/bench.sh            full run (26–30 minutes on 2 cores)
#   scripts/bench.sh --quick    tiny sizes, every code path (CI)
# Options: --profiles local,region   --fs cosmount,s3fs,rclone,rclone-writes
#          --groups read,write,rand,meta,small   --runs N   --out DIR
#
# Needs root on a fresh Debian machine: installs s3fs, rclone, fio, rsync,
# builds the pinned versitygw, cosmount and the helpers in internal/bench.
# Prints a markdown table and leaves it, with raw.jsonl and results.json, in
# bench-results/<time>/. Everything it starts is stopped on exit. Exits 1,
# naming them, if any workload of cosmount, the raw client or the FUSE
# ceiling failed (the peers' failures only show as n/a in the table).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ARGS=$*
QUICK=0
PROFILES=local,region
FILESYSTEMS=cosmount,s3fs,rclone,rclone-writes
WANT_GROUPS=read,write,rand,meta,small
RUNS=
OUT=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--profiles) PROFILES=$2; shift ;;
	--fs) FILESYSTEMS=$2; shift ;;
	--groups) WANT_GROUPS=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--out) OUT=$2; shift ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	*) log "unknown argument $1"; exit 2 ;;
	esac
	shift
done

# Sizes. The full run follows issue 6 except where noted in docs/benchmarks.md.
if [ $QUICK = 1 ]; then
	BIG=$((32 << 20)) FIO_FILE=$((8 << 20)) WRITE=$((32 << 20))
	LS_N=300 TREE_DIRS=30 TREE_PER_DIR=10
	SMALL_DIRS=5 SMALL_PER_DIR=20 TAR_SCALE=16
	SMALL_DIRS_REGION=2 TAR_SCALE_REGION=32
	RAND_TIME=1 WARM_REGION=8 RUNS=${RUNS:-1}
	LIMIT=60 LIMIT_REGION=60
else
	BIG=$((1 << 30)) FIO_FILE=$((256 << 20)) WRITE=$((1 << 30))
	LS_N=10000 TREE_DIRS=1000 TREE_PER_DIR=20
	SMALL_DIRS=50 SMALL_PER_DIR=40 TAR_SCALE=1
	SMALL_DIRS_REGION=10 TAR_SCALE_REGION=4
	RAND_TIME=4 WARM_REGION=64 RUNS=${RUNS:-3}
	LIMIT=90 LIMIT_REGION=40
fi
REGION_DELAY=10ms

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench-results/$STAMP}
mkdir -p "$OUT"
RAW="$OUT/raw.jsonl"
: >"$RAW"
WORK=$(mktemp -d /var/tmp/cosmount-bench.XXXXXX)
LOGS="$OUT/logs"
mkdir -p "$LOGS"
HB="$BIN/bench" # helper binaries

# ---------------------------------------------------------------- cleanup

CTL_PORT= # the proxy's control port, once it runs
PIDS=()   # processes this script started (file systems, proxy, samplers)
MOUNTS=() # mount points it mounted

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	for m in "${MOUNTS[@]}"; do
		grep -qs " $m " /proc/mounts && { umount "$m" 2>/dev/null || umount -l "$m"; }
	done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	stop_versitygw
	rm -rf "$WORK"
	[ $rc -ne 0 ] && log "bench.sh failed (exit $rc); logs in $LOGS"
	exit $rc
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM HUP

# ---------------------------------------------------------------- helpers

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }

json_str() { printf '%s' "$1" | tr -d '\000-\037"\\' | cut -c1-300; }

# emit FS WORKLOAD RUN VALUE UNIT [ERROR] appends one figure to raw.jsonl.
emit() {
	local err=${6:-}
	if [ -n "$err" ]; then
		printf '{"profile":"%s","fs":"%s","workload":"%s","run":%d,"value":0,"unit":"%s","error":"%s"}\n' \
			"$PROFILE" "$1" "$2" "$3" "$5" "$(json_str "$err")" >>"$RAW"
		log "  $1 $2 run $3: FAILED: $err"
	else
		printf '{"profile":"%s","fs":"%s","workload":"%s","run":%d,"value":%s,"unit":"%s"}\n' \
			"$PROFILE" "$1" "$2" "$3" "$4" "$5" >>"$RAW"
		log "  $1 $2 run $3: $4 $5"
	fi
}

# requests FS WORKLOAD RUN records the requests the proxy counted since the
# last call (and resets the count); with FS "-" it only resets.
requests() {
	local j
	[ -n "$CTL_PORT" ] || return 0
	j=$(curl -sf "http://127.0.0.1:$CTL_PORT/take") || j='{}'
	[ "$1" = - ] && return 0
	printf '{"profile":"%s","fs":"%s","workload":"%s","run":%d,"requests":%s}\n' "$PROFILE" "$1" "$2" "$3" "$j" >>"$RAW"
}

# timed LIMIT CMD... runs CMD (a shell command line) bounded in time. On
# success T is its duration in seconds and ERR is empty; otherwise ERR says
# why. Its output goes to $CMD_OUT.
CMD_OUT="$WORK/cmd.out"
timed() {
	local limit=$1 t0 rc=0
	shift
	t0=$(now)
	timeout -k 5 "$limit" bash -c "$*" >"$CMD_OUT" 2>&1 || rc=$?
	T=$(since "$t0")
	ERR=
	case $rc in
	0) ;;
	124 | 137) ERR="timeout after ${limit}s" ;;
	*) ERR="exit $rc: $(tail -c 160 "$CMD_OUT" | tr '\n' ' ')" ;;
	esac
	cat "$CMD_OUT" >>"$LOGS/commands.log"
	[ -z "$ERR" ]
}

declare -A TIMED_OUT
# measure FS WORKLOAD RUN KIND BYTES CMD... runs CMD and emits MB/s (KIND
# rate, BYTES moved) or seconds (KIND time), plus its requests. After a
# timeout the next runs of the same workload are skipped.
measure() {
	local fs=$1 w=$2 run=$3 kind=$4 bytes=$5
	shift 5
	if [ -n "${TIMED_OUT[$PROFILE/$fs/$w]:-}" ]; then
		emit "$fs" "$w" "$run" 0 "$(unit_of "$kind")" "skipped: ${TIMED_OUT[$PROFILE/$fs/$w]}"
		return 1
	fi
	requests - x 0
	if timed "$LIMIT_NOW" "$@"; then
		if [ "$kind" = rate ]; then
			emit "$fs" "$w" "$run" "$(div "$bytes" "$(awk -v t="$T" 'BEGIN{print t*1e6}')")" MB/s
		else
			emit "$fs" "$w" "$run" "$T" s
		fi
		requests "$fs" "$w" "$run"
		return 0
	fi
	case $ERR in timeout*) TIMED_OUT[$PROFILE/$fs/$w]="run $run timed out after ${LIMIT_NOW}s" ;; esac
	emit "$fs" "$w" "$run" 0 "$(unit_of "$kind")" "$ERR"
	requests "$fs" "$w" "$run"
	return 1
}
unit_of() { [ "$1" = rate ] && echo MB/s || echo s; }

drop_caches() {
	timeout 60 sync || true
	echo 3 >/proc/sys/vm/drop_caches
}

# ---------------------------------------------------------------- set-up

setup() {
	ensure_fuse
	apt_install s3fs rclone fio rsync curl ca-certificates
	ensure_versitygw
	log "building cosmount and the benchmark helpers"
	mkdir -p "$HB"
	go build -o "$BIN/cosmount" ./cmd/cosmount
	for h in rawclient fuseceiling probe report; do
		go build -o "$HB/$h" "./internal/bench/$h"
	done
	(cd internal/bench/latencyproxy && go build -o "$HB/latencyproxy" .)
}

# make_local_files creates what is copied into the mounts: the write source,
# the small-file trees and the tar archives of mixed sizes (and their
# contents, for the raw client); the region profile gets smaller ones.
make_local_files() {
	log "creating local source files"
	head -c "$WRITE" /dev/urandom >"$WORK/src.bin"
	make_small_tree "$WORK/small" "$SMALL_DIRS"
	make_small_tree "$WORK/small-region" "$SMALL_DIRS_REGION"
	make_archive "$WORK/tarsrc" "$WORK/mixed.tar" "$TAR_SCALE"
	make_archive "$WORK/tarsrc-region" "$WORK/mixed-region.tar" "$TAR_SCALE_REGION"
}

make_small_tree() { # DIR NDIRS: NDIRS directories of SMALL_PER_DIR 16 KiB files
	local d f
	for d in $(seq -w 1 "$2"); do
		mkdir -p "$1/d$d"
		for f in $(seq -w 1 "$SMALL_PER_DIR"); do
			head -c 16384 /dev/urandom >"$1/d$d/f$f"
		done
	done
}

# make_archive DIR TAR SCALE: about 200 MiB / SCALE of mixed sizes: 2 x 40 MiB,
# 6 x 10 MiB, 40 x 1 MiB, 400 x 64 KiB, 2,000 x 2 KiB (sizes of the two
# largest kinds and all counts divided by SCALE).
make_archive() {
	local dir=$1 s=$3 d
	mk() { # COUNT SIZE SUBDIR
		local i
		mkdir -p "$dir/$3"
		for i in $(seq 1 "$1"); do head -c "$2" /dev/urandom >"$dir/$3/$i.bin"; done
	}
	mk 2 $(((40 << 20) / s)) huge
	mk 6 $(((10 << 20) / s)) big
	mk $((40 / s + 1)) $((1 << 20)) medium
	mk $((400 / s + 1)) $((64 << 10)) small
	for d in $(seq 1 $((20 / s + 1))); do mk $((100 / s + 1)) 2048 "tiny/$d"; done
	tar -cf "$2" -C "$dir" .
	log "archive $(basename "$2"): $(($(stat -c %s "$2") >> 20)) MiB, $(find "$dir" -type f | wc -l) files"
}

# populate_template fills the bucket that every file system's bucket is
# cloned from (hard links in the server's posix folder: instant, and each
# file system still starts from a fresh bucket).
populate_template() {
	log "populating the fixture bucket (big object, fio files, $LS_N + $((TREE_DIRS * TREE_PER_DIR)) small objects)"
	AWS_ACCESS_KEY_ID=$VGW_ACCESS AWS_SECRET_ACCESS_KEY=$VGW_SECRET timeout 900 "$HB/rawclient" populate \
		-endpoint "$VGW_ENDPOINT" -bucket bench-template -big "$BIG" -fio "$FIO_FILE" \
		-ls "$LS_N" -dirs "$TREE_DIRS" -per-dir "$TREE_PER_DIR" 2>>"$LOGS/rawclient.log"
}

BUCKET_N=0
# fresh_bucket sets BUCKET to a new bucket holding the fixtures.
fresh_bucket() {
	BUCKET_N=$((BUCKET_N + 1))
	BUCKET="bench-$BUCKET_N"
	cp -al "$WORK/data/bench-template" "$WORK/data/$BUCKET"
}

start_proxy() { # DELAY
	PROXY_PORT=$(free_port)
	CTL_PORT=$(free_port)
	"$HB/latencyproxy" -listen "127.0.0.1:$PROXY_PORT" -upstream "127.0.0.1:$VGW_PORT" \
		-ctl "127.0.0.1:$CTL_PORT" -delay "$1" >>"$LOGS/latencyproxy.log" 2>&1 &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	wait_port "$PROXY_PORT" 10 && wait_port "$CTL_PORT" 10
	ENDPOINT="http://127.0.0.1:$PROXY_PORT"
}

stop_proxy() {
	kill "$PROXY_PID" 2>/dev/null || true
	wait "$PROXY_PID" 2>/dev/null || true
}

# ---------------------------------------------------------------- mounts

# mount_fs FS MNT [EXTRA...] mounts $BUCKET at MNT with FS in the foreground
# (in the background of this script) and sets FS_PID.
mount_fs() {
	local fs=$1 mnt=$2
	shift 2
	mkdir -p "$mnt" "$WORK/cache-$fs"
	rm -rf "${WORK:?}/cache-$fs"/*
	local logf="$LOGS/$PROFILE-$fs.log"
	echo "=== $(date +%T) mount $BUCKET at $mnt $*" >>"$logf"
	case $fs in
	cosmount)
		AWS_ACCESS_KEY_ID=$VGW_ACCESS AWS_SECRET_ACCESS_KEY=$VGW_SECRET \
			"$BIN/cosmount" --foreground --endpoint "$ENDPOINT" --cache-dir "$WORK/cache-$fs" \
			"$@" "$BUCKET" "$mnt" >>"$logf" 2>&1 &
		;;
	s3fs)
		s3fs "$BUCKET" "$mnt" -f -o "use_path_request_style,url=$ENDPOINT,passwd_file=$WORK/s3fs.passwd" \
			"$@" >>"$logf" 2>&1 &
		;;
	rclone | rclone-writes)
		local mode=()
		[ $fs = rclone-writes ] && mode=(--vfs-cache-mode writes)
		env -u AWS_CA_BUNDLE RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
			RCLONE_CONFIG_BENCH_ENDPOINT="$ENDPOINT" RCLONE_CONFIG_BENCH_REGION=us-east-1 \
			RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true \
			RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="$VGW_ACCESS" RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="$VGW_SECRET" \
			rclone mount "bench:$BUCKET" "$mnt" --expect-continue-timeout 0s \
			--cache-dir "$WORK/cache-$fs" "${mode[@]}" "$@" >>"$logf" 2>&1 &
		;;
	fuse)
		"$HB/fuseceiling" -file "bench/big.bin=$BIG" -file "bench/fio/f0=$FIO_FILE" -file "bench/fio/f1=$FIO_FILE" \
			-file "bench/fio/f2=$FIO_FILE" -file "bench/fio/f3=$FIO_FILE" "$mnt" >>"$logf" 2>&1 &
		;;
	esac
	FS_PID=$!
	PIDS+=("$FS_PID")
	MOUNTS+=("$mnt")
	local i
	for i in $(seq 1 300); do
		grep -qs " $mnt fuse" /proc/mounts && return 0
		kill -0 "$FS_PID" 2>/dev/null || break
		sleep 0.1
	done
	log "  $fs did not mount $BUCKET; see $logf"
	kill "$FS_PID" 2>/dev/null || true
	return 1
}

# umount_fs MNT unmounts and waits for the file system process to end.
umount_fs() {
	local mnt=$1 i
	if grep -qs " $mnt " /proc/mounts; then
		timeout 60 umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	fi
	for i in $(seq 1 600); do
		kill -0 "$FS_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$FS_PID" 2>/dev/null; then
		log "  process $FS_PID did not end after unmount; killing it"
		kill -9 "$FS_PID" 2>/dev/null || true
	fi
	# Drop the write-back files now, so that the next drop_caches does not
	# spend its sync writing them to disk.
	rm -rf "${WORK:?}"/cache-*/* 2>/dev/null || true
}

reset_peak_rss() { echo 5 >"/proc/$FS_PID/clear_refs" 2>/dev/null || true; }
peak_rss_mib() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$FS_PID/status" 2>/dev/null; }

# fail_group FS RUN UNIT WORKLOAD... records a group that could not run.
fail_group() {
	local fs=$1 run=$2 unit=$3 why=$4 w
	shift 4
	for w in "$@"; do emit "$fs" "$w" "$run" 0 "$unit" "$why"; done
}

# ---------------------------------------------------------------- workloads

fio_read() { # OUTFILE FILE... : sequential read, one job per file
	local out=$1 jobs=() i=0 f
	shift
	for f in "$@"; do jobs+=(--name="j$i" --filename="$f"); i=$((i + 1)); done
	# --invalidate=0: fio would otherwise drop the page cache of the files
	# first, and the warm run would not be warm.
	echo "fio --output-format=json --output=$out --readonly --invalidate=0 --rw=read --bs=1M --ioengine=psync ${jobs[*]}"
}

fio_rand() { # OUTFILE FILE BS SIZE
	echo "fio --output-format=json --output=$1 --readonly --name=r --filename=$2 --rw=randread --bs=$3" \
		"--size=$4 --ioengine=libaio --iodepth=16 --direct=1 --runtime=$RAND_TIME --time_based"
}

# fio_measure FS RUN NAME CMD: runs a fio command and emits its figures.
fio_measure() {
	local fs=$1 run=$2 name=$3 cmd=$4 out=$WORK/fio.json vals
	requests - x 0
	if timed "$LIMIT_NOW" "$cmd" && vals=$("$HB/probe" fio "$out" 2>&1); then
		set -- $vals "$fs" "$run" "$name"
		case $name in
		randread*)
			emit "$4" "$6-iops" "$5" "$2" IOPS
			emit "$4" "$6-p99" "$5" "$3" ms
			requests "$4" "$6-iops" "$5"
			;;
		*)
			emit "$4" "$6" "$5" "$1" MB/s
			requests "$4" "$6" "$5"
			;;
		esac
	else
		local why=${ERR:-$vals}
		case $name in
		randread*) emit "$fs" "$name-iops" "$run" 0 IOPS "$why"; emit "$fs" "$name-p99" "$run" 0 ms "$why" ;;
		*) emit "$fs" "$name" "$run" 0 MB/s "$why" ;;
		esac
		requests - x 0
	fi
}

# 1: sequential reads, cold then warm; peak RSS.
group_read() {
	local fs=$1 run=$2 mnt=$WORK/mnt-$1
	mount_fs "$fs" "$mnt" || { fail_group "$fs" "$run" MB/s "mount failed" read-cold-dd read-warm-dd read-cold-fio read-warm-fio; return; }
	drop_caches
	reset_peak_rss
	measure "$fs" read-cold-dd "$run" rate "$BIG" "dd if=$mnt/bench/big.bin of=/dev/null bs=1M" || true
	measure "$fs" read-warm-dd "$run" rate "$BIG" "dd if=$mnt/bench/big.bin of=/dev/null bs=1M" || true
	local files=("$mnt"/bench/fio/f{0,1,2,3})
	fio_measure "$fs" "$run" read-cold-fio "$(fio_read "$WORK/fio.json" "${files[@]}")"
	fio_measure "$fs" "$run" read-warm-fio "$(fio_read "$WORK/fio.json" "${files[@]}")"
	[ "$fs" != fuse ] && emit "$fs" rss-read "$run" "$(peak_rss_mib)" MiB
	umount_fs "$mnt"
}

# 2: sequential writes, close included and until the object is complete in
# the bucket; peak RSS and cache disk.
group_write() {
	local fs=$1 run=$2 mnt=$WORK/mnt-$1 w
	mount_fs "$fs" "$mnt" || { fail_group "$fs" "$run" MB/s "mount failed" write-dd write-cp; return; }
	reset_peak_rss
	local sample="$WORK/sample.out" spid
	"$HB/probe" sample "$FS_PID" "$WORK/cache-$fs" "$sample" &
	spid=$!
	PIDS+=("$spid")
	for w in dd cp; do
		local dst="w$run-$w" key="w$run-$w" cmd
		[ $w = dd ] && cmd="dd if=$WORK/src.bin of=$mnt/$dst bs=1M conv=fsync" || cmd="cp $WORK/src.bin $mnt/$dst"
		[ "$fs" != fuse ] && cmd="$cmd && $(wait_object_cmd "$key")"
		# Start from no dirty pages and an empty page cache (but for the
		# source): otherwise the previous write's writeback, and reclaiming
		# the pages earlier workloads left, weigh on this one, whichever
		# file system ran them. The raw client's PUTs start the same way.
		drop_caches
		cat "$WORK/src.bin" >/dev/null
		measure "$fs" "write-$w" "$run" rate "$WRITE" "$cmd" || true
	done
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	if [ "$fs" != fuse ]; then
		emit "$fs" rss-write "$run" "$(peak_rss_mib)" MiB
		[ -s "$sample" ] && emit "$fs" cache-disk "$run" "$(awk '{ printf "%.1f", $1 / 1048576 }' "$sample")" MiB
	fi
	umount_fs "$mnt"
}

# wait_object_cmd KEY: a command that waits until KEY has all its bytes in the
# bucket, asked of the server directly (not counted by the proxy). The keys
# reach it through the environment (exported in main), never its arguments.
wait_object_cmd() {
	echo "$HB/rawclient wait -endpoint $VGW_ENDPOINT -bucket $BUCKET -key $1 -size $WRITE"
}

# 3: first 4 KiB on a cold mount, random reads cold, then on cached blocks.
group_rand() {
	local fs=$1 run=$2 mnt=$WORK/mnt-$1 ms
	mount_fs "$fs" "$mnt" || { fail_group "$fs" "$run" IOPS "mount failed" randread-4k-iops randread-128k-iops randread-4k-warm-iops; return; }
	drop_caches
	if [ "$fs" != fuse ]; then
		requests - x 0
		if ms=$(timeout "$LIMIT_NOW" "$HB/probe" first-read "$mnt/bench/big.bin" 2>&1); then
			emit "$fs" first-4k "$run" "$ms" ms
		else
			emit "$fs" first-4k "$run" 0 ms "$ms"
		fi
		requests "$fs" first-4k "$run"
	fi
	fio_measure "$fs" "$run" randread-4k "$(fio_rand "$WORK/fio.json" "$mnt/bench/big.bin" 4k "$BIG")"
	fio_measure "$fs" "$run" randread-128k "$(fio_rand "$WORK/fio.json" "$mnt/bench/big.bin" 128k "$BIG")"
	# Touch the region once, then measure random reads inside it.
	timed "$LIMIT_NOW" "dd if=$mnt/bench/big.bin of=/dev/null bs=1M count=$WARM_REGION" || true
	fio_measure "$fs" "$run" randread-4k-warm "$(fio_rand "$WORK/fio.json" "$mnt/bench/big.bin" 4k "${WARM_REGION}M")"
	umount_fs "$mnt"
}

# 4: listings, each on a fresh mount with the page cache dropped.
group_meta() {
	local fs=$1 run=$2 mnt=$WORK/mnt-$1
	if mount_fs "$fs" "$mnt"; then
		drop_caches
		measure "$fs" ls-l "$run" time 0 "ls -l $mnt/bench/ls >/dev/null" || true
		umount_fs "$mnt"
	else
		fail_group "$fs" "$run" s "mount failed" ls-l
	fi
	if [ "$fs" = cosmount ]; then
		if mount_fs "$fs" "$mnt" --fast-list; then
			drop_caches
			measure "$fs" ls-l-fastlist "$run" time 0 "ls -l $mnt/bench/ls >/dev/null" || true
			umount_fs "$mnt"
		else
			fail_group "$fs" "$run" s "mount failed" ls-l-fastlist
		fi
	fi
	if mount_fs "$fs" "$mnt"; then
		drop_caches
		# du is timed right after find: without a whole find there is
		# nothing to time it after (and a timed-out find would time out
		# du as well, costing the run the limit again).
		if measure "$fs" find "$run" time 0 "find $mnt/bench/tree >/dev/null"; then
			measure "$fs" du "$run" time 0 "du -s $mnt/bench/tree" || true
		else
			emit "$fs" du "$run" 0 s "skipped: find did not finish"
		fi
		umount_fs "$mnt"
	else
		fail_group "$fs" "$run" s "mount failed" find du
	fi
}

# 5 and 6: small files and an archive into the mount.
group_small() {
	local fs=$1 run=$2 mnt=$WORK/mnt-$1 n synced=
	mount_fs "$fs" "$mnt" || { fail_group "$fs" "$run" s "mount failed" cp-r rsync1 rsync2 tar; return; }
	measure "$fs" cp-r "$run" time 0 "cp -r $SMALL_SRC $mnt/cp$run" || true
	# The second rsync finds nothing to do only after a whole first one.
	if ! measure "$fs" rsync1 "$run" time 0 "rsync -a $SMALL_SRC/ $mnt/rs$run/"; then
		emit "$fs" rsync2 "$run" 0 s "skipped: the first rsync did not finish"
	elif synced=1 && measure "$fs" rsync2 "$run" time 0 "rsync -a --stats $SMALL_SRC/ $mnt/rs$run/"; then
		n=$(awk -F: '/Number of regular files transferred/ { gsub(/[ ,]/, "", $2); print $2 }' "$CMD_OUT")
		emit "$fs" rsync2-files "$run" "${n:-0}" files
	fi
	measure "$fs" tar "$run" time 0 "mkdir -p $mnt/tar$run && tar -xf $TAR_FILE -C $mnt/tar$run" || true
	umount_fs "$mnt"
	# rsync writes each file under a temporary ".name.XXXXXX" and renames
	# it: after the unmount, none may be left in the bucket.
	if [ -n "$synced" ] && n=$(AWS_ACCESS_KEY_ID=$VGW_ACCESS AWS_SECRET_ACCESS_KEY=$VGW_SECRET \
		"$HB/rawclient" count -endpoint "$VGW_ENDPOINT" -bucket "$BUCKET" -prefix "rs$run/" 2>>"$LOGS/rawclient.log"); then
		emit "$fs" rsync1-left "$run" "${n#* }" files
	fi
}

# runs_of GROUP: how many runs a group gets. The full run keeps 3 (--runs)
# on the local profile except for the small-file group, and 1 on region.
runs_of() {
	if [ "$PROFILE" = region ] || [ "$1" = small ]; then echo 1; else echo "$RUNS"; fi
}

# want_group G: G is among --groups.
want_group() { [[ ",$WANT_GROUPS," == *",$1,"* ]]; }

run_fs() {
	local fs=$1 g run
	log "[$PROFILE] $fs"
	fresh_bucket
	local groups="read write rand meta small"
	# rclone's writes cache mode changes only files opened for writing:
	# its reads and listings are rclone's, measured in the column before.
	[ "$fs" = rclone-writes ] && groups="write small"
	for g in $groups; do
		want_group "$g" || continue
		for run in $(seq 1 "$(runs_of $g)"); do
			if [ "$fs" = cosmount ] && [ "$PROFILE" = local ] && [ $CEILING_ALONE = 0 ]; then
				ceiling_group "$g" "$run"
			fi
			[ "$fs" = cosmount ] && raw_group "$g" "$run"
			"group_$g" "$fs" "$run"
		done
	done
	rm -rf "${WORK:?}/data/$BUCKET"
}

# The FUSE ceiling needs no network: measured once, on the local profile,
# and shown in both. Its runs are interleaved with cosmount's, group by
# group and run by run, so that the ratio between them compares the same
# minutes: the same workload on this machine moves by up to 1.5x over a
# run (the ceiling's cached 4 KiB reads measured 110k IOPS at the start of
# one run and 80k later). Without cosmount on the local profile it is
# measured on its own, first.
CEILING_ALONE=1
ceiling_group() { # GROUP RUN
	case $1 in read | write | rand) ;; *) return 0 ;; esac
	local bucket=${BUCKET-}
	BUCKET=memory
	"group_$1" fuse "$2"
	BUCKET=$bucket
}

run_fuse_ceiling() {
	local run
	log "[$PROFILE] FUSE ceiling"
	for run in $(seq 1 "$RUNS"); do
		for g in read write rand; do
			if want_group "$g"; then ceiling_group "$g" "$run"; fi
		done
	done
}

# The raw client's ceilings, group by group: read: the cold GETs; write:
# the PUTs; rand: the first 4 KiB and the random GETs; meta: the listings
# (small: the PUTs of the trees, in run_raw).
raw_parts() {
	case $1 in
	read) echo get ;;
	write) echo put ;;
	rand) echo first,rand ;;
	meta) echo list ;;
	esac
}

# raw_ceiling PARTS FIRST-RUN RUNS measures the raw client's PARTS against
# $RAW_BUCKET, each after dropping the page cache as the file systems' cold
# workloads do.
raw_ceiling() {
	AWS_ACCESS_KEY_ID=$VGW_ACCESS AWS_SECRET_ACCESS_KEY=$VGW_SECRET timeout 900 "$HB/rawclient" ceiling \
		-endpoint "$ENDPOINT" -bucket "$RAW_BUCKET" -profile "$PROFILE" -only "$1" -first-run "$2" -runs "$3" \
		-cold-get -cold-first -cold-list -clean-put -rand-time "${RAND_TIME}s" -out "$RAW" 2>>"$LOGS/rawclient.log" ||
		raw_failed "raw client ceiling ($PROFILE, $1)"
	requests - x 0
}

# raw_failed WHAT notes a raw client that exited with an error: it may have
# written no record at all (a failed HEAD of the fixture, a timeout), so the
# check at the end of the run could not see it in raw.jsonl.
RAW_FAILURES=()
raw_failed() {
	log "$1 failed; see $LOGS/rawclient.log"
	RAW_FAILURES+=("$1: exited with an error")
}

# Like the FUSE ceiling's, the raw client's runs are interleaved with
# cosmount's when cosmount is measured on the profile: each of its runs of
# a group right before cosmount's, so that their ratio compares the same
# minutes (the raw client's first 4 KiB took 3.8 ms when measured at the
# start of a run and 4-7 ms by hand between cosmount's first reads).
# Without cosmount they are measured on their own, before the file systems.
RAW_NEXT=0
raw_group() { # GROUP RUN
	local parts
	parts=$(raw_parts "$1")
	[ $RAW_NEXT = 1 ] && [ -n "$parts" ] && raw_ceiling "$parts" "$2" 1
	return 0
}

run_raw() {
	log "[$PROFILE] raw client"
	BUCKET_N=$((BUCKET_N + 1))
	RAW_BUCKET="bench-$BUCKET_N"
	cp -al "$WORK/data/bench-template" "$WORK/data/$RAW_BUCKET"
	requests - x 0
	local only=() g w src
	if [[ ",$FILESYSTEMS," == *",cosmount,"* ]]; then
		RAW_NEXT=1
	else
		RAW_NEXT=0
		for g in read write rand meta; do
			want_group $g && only+=("$(raw_parts $g)")
		done
		[ ${#only[@]} -gt 0 ] && raw_ceiling "$(IFS=,; echo "${only[*]}")" 1 "$(runs_of raw)"
	fi
	for w in cp-r tar; do
		want_group small || break
		[ $w = cp-r ] && src=$SMALL_SRC || src=$TAR_SRC
		AWS_ACCESS_KEY_ID=$VGW_ACCESS AWS_SECRET_ACCESS_KEY=$VGW_SECRET timeout 300 "$HB/rawclient" putdir \
			-endpoint "$ENDPOINT" -bucket "$RAW_BUCKET" -profile "$PROFILE" -runs "$(runs_of raw)" \
			-workload $w -prefix "bench/raw-$w/" -out "$RAW" "$src" 2>>"$LOGS/rawclient.log" || raw_failed "raw client $w ($PROFILE)"
	done
	requests - x 0
}

machine_info() {
	{
		echo "date: $(date -u +%FT%TZ)"
		echo "command: scripts/bench.sh $ARGS"
		echo "nproc: $(nproc)"
		echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
		echo "kernel: $(uname -r)"
		echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "go: $(go version | cut -d' ' -f3)"
		echo "versitygw: $VERSITYGW_VERSION"
		echo "s3fs: $(s3fs --version 2>&1 | head -1)"
		echo "rclone: $(rclone version 2>/dev/null | head -1)"
		echo "fio: $(fio --version)"
		echo "cosmount: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
	} >"$OUT/machine.txt"
}

# ---------------------------------------------------------------- main

START=$(now)
setup
machine_info
start_versitygw "$WORK/data" "$LOGS/versitygw.log"
export AWS_ACCESS_KEY_ID=$VGW_ACCESS AWS_SECRET_ACCESS_KEY=$VGW_SECRET
printf '%s:%s\n' "$VGW_ACCESS" "$VGW_SECRET" >"$WORK/s3fs.passwd"
chmod 600 "$WORK/s3fs.passwd"
make_local_files
populate_template

PROFILE=local
LIMIT_NOW=$LIMIT
if [[ ",$PROFILES," == *",local,"* && ",$FILESYSTEMS," == *",cosmount,"* ]]; then
	CEILING_ALONE=0
else
	run_fuse_ceiling
fi
for PROFILE in ${PROFILES//,/ }; do
	case $PROFILE in
	local)
		start_proxy 0
		LIMIT_NOW=$LIMIT SMALL_SRC=$WORK/small TAR_SRC=$WORK/tarsrc TAR_FILE=$WORK/mixed.tar
		;;
	region)
		start_proxy "$REGION_DELAY"
		LIMIT_NOW=$LIMIT_REGION SMALL_SRC=$WORK/small-region TAR_SRC=$WORK/tarsrc-region TAR_FILE=$WORK/mixed-region.tar
		;;
	*) log "unknown profile $PROFILE"; exit 2 ;;
	esac
	run_raw
	fss=$FILESYSTEMS
	# The quick run only checks that the region profile works.
	[ $QUICK = 1 ] && [ "$PROFILE" = region ] && fss=cosmount
	for fs in ${fss//,/ }; do
		run_fs "$fs"
	done
	rm -rf "${WORK:?}/data/$RAW_BUCKET"
	stop_proxy
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "duration: $(since "$START") s" >>"$OUT/machine.txt"

"$HB/report" -in "$RAW" -md "$OUT/results.md" -json "$OUT/results.json" \
	-title "Benchmark $STAMP ($([ $QUICK = 1 ] && echo quick || echo full) run, $RUNS run(s) per workload)"
cat "$OUT/machine.txt"
echo
cat "$OUT/results.md"
log "results in $OUT (results.md, results.json, raw.jsonl, logs/)"

# A failed workload of cosmount, of the raw client ("raw") or of the FUSE
# ceiling ("fuse") fails the run: it is recorded (n/a in the table) and the
# run goes on, but CI would not notice it otherwise. The peers' failures
# (s3fs, rclone) only show in the table. The records are one JSON object a
# line with the fields in emit's order (the raw client writes the same).
mapfile -t failed < <(sed -n 's/^{"profile":"\([^"]*\)","fs":"\(cosmount\|raw\|fuse\)","workload":"\([^"]*\)","run":\([0-9]*\),.*"error":"\(.*\)"}$/\2 \3 (\1, run \4): \5/p' "$RAW")
failed+=("${RAW_FAILURES[@]}")
if [ ${#failed[@]} -gt 0 ]; then
	log "FAILED: ${#failed[@]} failure(s) of cosmount, the raw client or the FUSE ceiling:"
	for f in "${failed[@]}"; do log "  ${f:0:240}"; done
	exit 1
fi
