package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// punchFile frees the disk blocks of r, keeping the file's size. It fails
// where the file system cannot (ext4 without extents, NFSv3, ...).
func punchFile(f *os.File, r Range) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, r.Off, r.Len)
}

// writeOutPages writes r of the file to disk, waits for it, and drops its
// now clean pages from the page cache. Errors leave the pages where they
// are: this only saves memory.
func writeOutPages(fd int, r Range) {
	err := unix.SyncFileRange(fd, r.Off, r.Len,
		unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	if err == nil {
		dropPages(fd, r)
	}
}

// dropPages drops the clean pages of r from the page cache.
func dropPages(fd int, r Range) {
	_ = unix.Fadvise(fd, r.Off, r.Len, unix.FADV_DONTNEED)
}
