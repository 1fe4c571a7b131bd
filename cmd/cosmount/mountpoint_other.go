//go:build !linux

package main

import (
	"os"
	"path/filepath"
	"syscall"
)

// mountedOn reports whether something is mounted on dir: it is on another
// device than its parent.
func mountedOn(dir string) (string, bool) {
	st, err := os.Stat(dir)
	if err != nil {
		return "", false
	}
	parent, err := os.Stat(dir + string(filepath.Separator) + "..") // not cleaned: dir may be a symlink
	if err != nil {
		return "", false
	}
	a, ok1 := st.Sys().(*syscall.Stat_t)
	b, ok2 := parent.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 || a.Dev == b.Dev {
		return "", false
	}
	return "mounted", true
}
