#!/usr/bin/env bash
# Every test of cosmount, with all set-up, on a fresh Debian machine as root:
# installs fuse3, rsync, s3fs and curl (the interop and credential-process
# tests skip without them) and the pinned versitygw, starts versitygw on loopback,
# runs the race-enabled tests of the module and of the test-only modules,
# then stops the server and cleans up, whatever happened.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_fuse
apt_install rsync s3fs curl
ensure_versitygw

work=$(mktemp -d /tmp/cosmount-test.XXXXXX)
cleanup() {
	set +e
	stop_versitygw
	# Unmount anything a killed test left behind under our temp folders.
	for m in $(awk '$2 ~ "^/tmp/" && $2 ~ /(cosmount|Test)/ {print $2}' /proc/mounts); do
		umount -l "$m" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT

start_versitygw "$work/data" "$work/versitygw.log"
log "versitygw on $VGW_ENDPOINT"
export COSMOUNT_TEST_ENDPOINT="$VGW_ENDPOINT" COSMOUNT_TEST_ACCESS_KEY="$VGW_ACCESS" COSMOUNT_TEST_SECRET_KEY="$VGW_SECRET"

# repo_files NAME: the repository's files named NAME (a glob), relative to
# $ROOT: git's list, so that nothing walks a running demo's mount (./mnt),
# its bucket's files (.demo/) or the benchmark results; without git, found
# on disk with those pruned and without crossing into another file system.
repo_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -- ":(glob)**/$1" | while read -r f; do if [ -f "$f" ]; then echo "$f"; fi; done
	else
		find . -xdev \( -path ./.git -o -path ./.demo -o -path ./mnt -o -path ./.bin -o -path ./bench-results \) -prune \
			-o -type f -name "$1" -print | sed 's|^\./||'
	fi
}

status=0
log "gofmt / go vet"
bad=$(repo_files '*.go' | xargs -r gofmt -l) || status=1
if [ -n "$bad" ]; then log "gofmt would change: $bad"; status=1; fi
go vet ./... || status=1

log "go test -race (module cosmount)"
go test -race -count=1 -p 1 -timeout 25m ./... || status=1

for mod in $(repo_files go.mod | grep -vx go.mod | sort); do
	d=$ROOT/$(dirname "$mod")
	log "go test -race (test-only module ${d#$ROOT/})"
	(cd "$d" && go test -race -count=1 -timeout 10m ./...) || status=1
done

if [ $status -ne 0 ]; then log "FAILED"; else log "all tests passed"; fi
exit $status
