package cache

import (
	"bytes"
	"os"
	"testing"
	"time"

	"cosmount/internal/testrig"
)

// waitWriteOuts waits until the store has worked through n write-outs.
func waitWriteOuts(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.outMu.Lock()
		done := s.outDone
		s.outMu.Unlock()
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d write-outs done after 10 s", done, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A range written out leaves the page cache but not the file: it reads back
// and can be rewritten; the rest of the file stays in memory; a range of a
// closed file is skipped.
func TestWriteOutDropsPagesAndKeepsBytes(t *testing.T) {
	s, err := NewStore(testrig.DiskTempDir(t), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	w, _ := s.Create(0)
	defer w.Remove()
	if _, err := w.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(w.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pages := size / os.Getpagesize()
	if n := testrig.InMemory(testrig.Resident(t, f, size)); n != pages {
		t.Fatalf("%d of %d pages in memory after the write", n, pages)
	}
	w.WriteOut(Range{0, size / 2})
	waitWriteOuts(t, s, 1)
	in := testrig.Resident(t, f, size)
	if n := testrig.InMemory(in[:pages/2]); n != 0 {
		t.Errorf("%d of %d pages written out are still in memory", n, pages/2)
	}
	if n := testrig.InMemory(in[pages/2:]); n != pages/2 {
		t.Errorf("%d of %d pages not written out are in memory", n, pages/2)
	}
	got := make([]byte, size)
	if _, err := w.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back after the write-out: %v, equal %v", err, bytes.Equal(got, data))
	}
	if _, err := w.WriteAt([]byte("rewritten"), 100); err != nil {
		t.Fatal(err)
	}
	copy(data[100:], "rewritten")
	if _, err := w.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back after a rewrite: %v, equal %v", err, bytes.Equal(got, data))
	}
	if s.Used() != size {
		t.Errorf("store holds %d bytes, want %d: written-out bytes are still in the cache", s.Used(), size)
	}

	closed, _ := s.Create(0)
	closed.WriteAt(data, 0)
	closed.Remove()
	closed.WriteOut(Range{0, size})
	waitWriteOuts(t, s, 2)
}

// A write-out starts at the 2 MiB boundary at or before its range (a
// folio across the boundary of two parts goes with the later one), and
// each write-out drops again the pages of the ranges written out before
// it, here read back into memory in between.
func TestWriteOutAlignsAndDropsEarlierRangesAgain(t *testing.T) {
	s, err := NewStore(testrig.DiskTempDir(t), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	const size = 8 << 20
	const mib = 1 << 20
	w, _ := s.Create(0)
	defer w.Remove()
	if _, err := w.WriteAt(bytes.Repeat([]byte("x"), size), 0); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(w.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := int64(os.Getpagesize())
	inMemory := func(from, to int64) int {
		return testrig.InMemory(testrig.Resident(t, f, size)[from/page : to/page])
	}

	// 3–4 MiB: the write-out runs from 2 MiB.
	w.WriteOut(Range{3 * mib, mib})
	waitWriteOuts(t, s, 1)
	if n := inMemory(0, 2*mib); n != int(2*mib/page) {
		t.Errorf("%d of %d pages before the 2 MiB boundary are in memory", n, 2*mib/page)
	}
	if n := inMemory(2*mib, 4*mib); n != 0 {
		t.Errorf("%d pages from the 2 MiB boundary to the range's end are still in memory", n)
	}
	if n := inMemory(4*mib, size); n != int((size-4*mib)/page) {
		t.Errorf("%d of %d pages after the range are in memory", n, (size-4*mib)/page)
	}

	// Read 2–4 MiB back, then write out 7–8 MiB (from 6 MiB): both leave
	// memory.
	if _, err := w.ReadAt(make([]byte, 2*mib), 2*mib); err != nil {
		t.Fatal(err)
	}
	if n := inMemory(2*mib, 4*mib); n == 0 {
		t.Fatal("the range read back is not in memory; the test shows nothing")
	}
	w.WriteOut(Range{7 * mib, mib})
	waitWriteOuts(t, s, 2)
	if n := inMemory(2*mib, 4*mib); n != 0 {
		t.Errorf("%d pages of the range written out before are in memory after the next write-out", n)
	}
	if n := inMemory(6*mib, size); n != 0 {
		t.Errorf("%d pages from the 2 MiB boundary to the range's end are in memory", n)
	}
	if n := inMemory(4*mib, 6*mib); n != int(2*mib/page) {
		t.Errorf("%d of %d pages between the ranges are in memory", n, 2*mib/page)
	}
}
