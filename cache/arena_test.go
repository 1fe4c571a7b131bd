package cache

import (
	"testing"
	"unsafe"
)

// The next chunk is made once half of the current one is handed out, never
// beyond the cache's bound, and buffers never overlap.
func TestArenaMakesTheNextChunkAheadWithinTheBound(t *testing.T) {
	const size = 64 << 10
	a := newArena(size, 4<<20) // chunks of 4 MiB = 64 buffers, bound 4 MiB
	seen := map[uintptr]bool{}
	get := func() {
		b := a.get()
		if len(b) != size || cap(b) != size {
			t.Fatalf("buffer of len %d cap %d", len(b), cap(b))
		}
		p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		if seen[p] {
			t.Fatalf("buffer at %#x handed out twice", p)
		}
		seen[p] = true
		b[0], b[size-1] = 1, 1
	}
	for i := 0; i < 64; i++ {
		get()
		if a.next != nil {
			t.Fatalf("after %d buffers: a chunk made ahead beyond the 4 MiB bound", i+1)
		}
	}
	get() // beyond the bound: a buffer of its own chunk, nothing ahead
	if a.made != 8<<20 || a.next != nil {
		t.Fatalf("made %d bytes, next chunk %v", a.made, a.next != nil)
	}

	b := newArena(size, 64<<20) // chunks of 32 MiB = 512 buffers
	for i := 0; i < 255; i++ {
		b.get()
	}
	if b.next != nil {
		t.Fatal("the next chunk was made before half of the first was handed out")
	}
	b.get() // the 256th of 512: half
	if b.next == nil || b.made != 64<<20 {
		t.Fatalf("half of the first chunk handed out: next made %v, %d bytes made", b.next != nil, b.made)
	}
	for i := 0; i < 257; i++ { // into the second chunk
		b.get()
	}
	if b.made != 64<<20 || b.next != nil {
		t.Fatalf("%d bytes made after the first chunk ran out (want the second, made ahead, and no third: the bound is two)", b.made)
	}
}
