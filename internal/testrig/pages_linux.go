package testrig

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Resident reports, page by page, which of the first size bytes of f are
// in the page cache (mincore over a read-only mapping, which faults
// nothing in).
func Resident(t testing.TB, f *os.File, size int64) []bool {
	t.Helper()
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (size+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	in := make([]bool, len(vec))
	for i, v := range vec {
		in[i] = v&1 != 0
	}
	return in
}

// InMemory counts the pages Resident reports in the page cache.
func InMemory(in []bool) (n int) {
	for _, ok := range in {
		if ok {
			n++
		}
	}
	return n
}

// DiskTempDir is a temporary folder, removed when the test ends, on a file
// system whose pages can be written out and dropped: t.TempDir unless that
// is tmpfs, then one under /var/tmp. The test is skipped when both are.
func DiskTempDir(t testing.TB) string {
	t.Helper()
	if d := t.TempDir(); !isTmpfs(d) {
		return d
	}
	d, err := os.MkdirTemp("/var/tmp", "cosmount-test-")
	if err != nil || isTmpfs(d) {
		if err == nil {
			os.RemoveAll(d)
		}
		t.Skip("no disk-backed temporary folder (the temporary folder and /var/tmp are tmpfs)")
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func isTmpfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC
}
