package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrDirInUse is returned by LockDir when another process holds the folder.
var ErrDirInUse = errors.New("in use by another cosmount process")

// LockDir takes the folder for this process alone until unlock is called or
// the process ends (a killed process gives it back). Two mounts sharing a
// cache dir would upload, and remove, each other's files.
func LockDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	p := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("cache dir %s: %w; give each mount its own --cache-dir", dir, ErrDirInUse)
		}
		return nil, fmt.Errorf("cache dir %s: lock: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
