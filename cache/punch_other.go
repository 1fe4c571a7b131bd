//go:build !linux

package cache

import (
	"errors"
	"os"
)

// punchFile cannot free part of a file here; the space comes back when
// the file is removed.
func punchFile(f *os.File, r Range) error { return errors.ErrUnsupported }

// writeOutPages does nothing where the page cache cannot be told so; the
// pages go when the file is removed.
func writeOutPages(fd int, r Range) {}

// dropPages does nothing where the page cache cannot be told so.
func dropPages(fd int, r Range) {}
