package cache

import (
	"errors"
	"testing"
)

func TestLockDirIsExclusive(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file: a second open, even in this
	// process, is refused like another process would be.
	if _, err := LockDir(dir); !errors.Is(err, ErrDirInUse) {
		t.Fatalf("second LockDir: %v, want ErrDirInUse", err)
	}
	unlock()
	unlock2, err := LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after unlock: %v", err)
	}
	unlock2()
}
