package main

import (
	"path/filepath"

	cfs "cosmount/fs"
)

// mountedOn reports whether something is mounted on dir, and what (its
// file system type), from /proc/self/mountinfo.
func mountedOn(dir string) (string, bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return cfs.MountedAt(abs)
}
