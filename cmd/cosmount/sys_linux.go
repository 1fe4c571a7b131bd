package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"

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

// fuseDevice is the kernel's FUSE device, which every mount opens.
const fuseDevice = "/dev/fuse"

// checkFuseDevice says why the FUSE device cannot be opened, before any
// mount is tried: as root a failed direct mount falls back to fusermount,
// whose own error ("executable file not found") hides the cause, and
// fusermount3 opens the device as the user who runs it (euid).
func checkFuseDevice(path string, euid int) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err == nil {
		f.Close()
		return nil
	}
	var errno syscall.Errno
	errors.As(err, &errno)
	switch {
	case errno == syscall.ENOENT:
		return fmt.Errorf("FUSE device %s does not exist: load the fuse kernel module (modprobe fuse); "+
			"in a container, pass the device in (docker run --device /dev/fuse --cap-add SYS_ADMIN)", path)
	case errno == syscall.ENODEV || errno == syscall.ENXIO:
		return fmt.Errorf("FUSE device %s: the fuse kernel module is not loaded (%v): modprobe fuse", path, errno)
	case (errno == syscall.EACCES || errno == syscall.EPERM) && euid == 0:
		return fmt.Errorf("FUSE device %s: permission denied to root (%v): in a container the device must be allowed "+
			"(docker run --device /dev/fuse --cap-add SYS_ADMIN)", path, errno)
	case errno == syscall.EACCES || errno == syscall.EPERM:
		return fmt.Errorf("FUSE device %s: permission denied (%v): fusermount3 opens it as you; "+
			"it is usually mode 0666 (ask an administrator)", path, errno)
	default:
		return fmt.Errorf("FUSE device %s: %w", path, err)
	}
}
