package cache

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const hugePage = 2 << 20

// allocChunk maps n bytes of anonymous memory, aligned to a huge page and
// marked for transparent huge pages, so that filling it takes one fault per
// 2 MiB rather than per 4 KiB where the system allows it. It falls back to
// the Go heap when the mapping fails. The mapping lives as long as the
// process: the arena reuses its buffers and never gives them back.
func allocChunk(n int64) []byte {
	m, err := unix.Mmap(-1, 0, int(n+hugePage), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, n)
	}
	// Skip to the first huge-page boundary; the pages before it and after
	// the chunk are never touched, so they cost address space only.
	off := 0
	if r := uintptr(unsafe.Pointer(unsafe.SliceData(m))) % hugePage; r != 0 {
		off = int(hugePage - r)
	}
	b := m[off : off+int(n) : off+int(n)]
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // best effort: THP may be off
	// Fault the chunk in now, in the background, so that reads do not
	// wait for it: on a virtual machine a fresh 2 MiB page can take
	// milliseconds. It leaves the bytes alone, so buffers carved from the
	// chunk meanwhile are safe to use (before Linux 5.14 it fails, and
	// pages are faulted in as they are first written).
	go func() { _ = unix.Madvise(b, unix.MADV_POPULATE_WRITE) }()
	return b
}
