package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// punchHole frees the disk blocks of r, keeping the file's size.
func punchHole(f *os.File, r Range) {
	_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, r.Off, r.Len)
}
