package cache

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// The arena's chunks are aligned to huge pages and marked for them, so a
// cold read's first touch of the cache costs a fault per 2 MiB.
func TestArenaChunksAreHugePageAligned(t *testing.T) {
	thp, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(thp), "[never]") {
		t.Skip("transparent huge pages are off here")
	}
	a := newArena(256<<10, 64<<20)
	first := a.get()
	start := uintptr(unsafe.Pointer(unsafe.SliceData(first)))
	if start%hugePage != 0 {
		t.Fatalf("chunk starts at %#x, not on a 2 MiB boundary", start)
	}
	for i := 1; i < 128; i++ { // the rest of the 32 MiB chunk
		b := a.get()
		if got, want := uintptr(unsafe.Pointer(unsafe.SliceData(b))), start+uintptr(i)*(256<<10); got != want || len(b) != 256<<10 || cap(b) != 256<<10 {
			t.Fatalf("buffer %d at %#x (len %d, cap %d), want %#x", i, got, len(b), cap(b), want)
		}
	}
	if eligible := thpEligible(t, start); !eligible {
		t.Fatal("the chunk is not eligible for transparent huge pages")
	}
	a.put(first)
	if again := a.get(); unsafe.SliceData(again) != unsafe.SliceData(first) {
		t.Fatal("a buffer given back was not handed out again")
	}
}

// thpEligible reads the THPeligible line of the mapping holding addr.
func thpEligible(t *testing.T, addr uintptr) bool {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 && strings.Contains(line, " ") {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "THPeligible:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "THPeligible:")) == "1"
		}
	}
	t.Skip("no THPeligible line for the chunk in /proc/self/smaps")
	return false
}
