package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// raiseReadahead lets the kernel read ahead further than its 128 KiB
// default on this mount, so sequential readers keep many requests in flight.
// It needs root; without it the default stays.
func raiseReadahead(mountpoint string, logger *slog.Logger) {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte("16384"), 0o644); err != nil {
		logger.Debug("kernel readahead left at its default", "err", err)
	}
}

// lockCode keeps the program's own code and read-only data in memory
// (mlock of the executable's mappings, about 10 MiB). A file system whose
// code was evicted under memory pressure (or by drop_caches) stalls its
// callers while the pages are read back from disk, and could deadlock if
// that disk waits on the file system. It needs root or CAP_IPC_LOCK; without
// it nothing is locked.
func lockCode(logger *slog.Logger) {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[5] != exe || strings.Contains(f[1], "w") {
			continue
		}
		var lo, hi uintptr
		if _, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); err != nil || hi <= lo {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MLOCK, lo, hi-lo, 0); errno != 0 {
			logger.Debug("program pages not locked in memory", "err", errno)
			return
		}
	}
}
