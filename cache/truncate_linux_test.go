package cache

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// A truncate to the size the write-back file has already (an O_TRUNC open
// of a new file, dd's ftruncate of an empty one) does not reach the disk:
// on ext4 a truncate to 0 makes the file's data flushed at close. Linux
// stamps the ctime of a file at every ftruncate, same size or not, so an
// unchanged ctime shows that none was made; a truncate to another size
// still is.
func TestTruncateToTheSizeTheFileHasIsNotMade(t *testing.T) {
	s, err := NewStore(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ctime := func(w *WriteFile) syscall.Timespec {
		t.Helper()
		fi, err := os.Stat(w.Name())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ctim
	}
	for _, size := range []int64{0, 4096} {
		w, err := s.Create(size)
		if err != nil {
			t.Fatal(err)
		}
		before := ctime(w)
		time.Sleep(20 * time.Millisecond) // past the file system's timestamp granularity
		if err := w.Truncate(size, size); err != nil {
			t.Fatal(err)
		}
		if after := ctime(w); after != before {
			t.Errorf("size %d: a truncate to the same size changed the file (ctime %v, then %v)", size, before, after)
		}
		if err := w.Truncate(size, size+100); err != nil {
			t.Fatal(err)
		}
		if after := ctime(w); after == before {
			t.Errorf("size %d: a truncate to another size left the ctime alone; the test cannot see truncates", size)
		}
		w.Remove()
	}
}
