package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// checkMountPoint refuses a mount point that would surprise: a dead mount
// (its FUSE process gone), something not a directory, and, unless
// allowNonEmpty, a directory with files in it (the mount would hide them)
// or one that is already a mount point (mounts would stack: a second
// cosmount there, or a read-only one, which takes no cache-dir lock).
func checkMountPoint(dir string, allowNonEmpty bool) error {
	dead := func(err error) bool {
		return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED)
	}
	deadErr := func(err error) error {
		var errno syscall.Errno
		errors.As(err, &errno)
		return fmt.Errorf("mount point %s: a dead mount is there (%v): unmount it first with umount -l %s", dir, errno, dir)
	}
	st, err := os.Stat(dir)
	if err != nil {
		if dead(err) {
			return deadErr(err)
		}
		return fmt.Errorf("mount point: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("mount point %s is not a directory", dir)
	}
	// The stat may come from the kernel's cache; reading the directory
	// asks whatever serves it.
	f, err := os.Open(dir)
	if err != nil {
		if dead(err) {
			return deadErr(err)
		}
		return fmt.Errorf("mount point: %w", err)
	}
	names, err := f.Readdirnames(1)
	f.Close()
	if err != nil && err != io.EOF {
		if dead(err) {
			return deadErr(err)
		}
		return fmt.Errorf("mount point: %w", err)
	}
	if allowNonEmpty {
		return nil
	}
	if what, ok := mountedOn(dir); ok {
		return fmt.Errorf("mount point %s is already a mount point (%s): unmount it first, or give --allow-non-empty to mount over it", dir, what)
	}
	if len(names) > 0 {
		return fmt.Errorf("mount point %s is not empty: the mount would hide its files; give --allow-non-empty to mount over them", dir)
	}
	return nil
}
