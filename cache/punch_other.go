//go:build !linux

package cache

import "os"

// punchHole is a no-op where the system cannot free part of a file; the
// space comes back when the file is removed.
func punchHole(f *os.File, r Range) {}

// writeOutPages does nothing where the page cache cannot be told so; the
// pages go when the file is removed.
func writeOutPages(fd int, r Range) {}

// dropPages does nothing where the page cache cannot be told so.
func dropPages(fd int, r Range) {}
