package cache

// arena hands out the block cache's buffers. They are carved from large
// chunks of memory that the system may back with huge pages (see
// arena_linux.go): a cold sequential read fills every buffer once, and with
// 4 KiB pages that first touch cost one page fault per page, a fifth of
// cosmount's CPU in a cold read. A buffer given back is kept for the next
// request for one: the arena's footprint is the most buffers ever alive at
// once, which the BlockCache bounds.
type arena struct {
	size  int64  // bytes per buffer
	chunk int64  // bytes per chunk (a multiple of size)
	rest  []byte // what is left of the newest chunk
	free  [][]byte
	made  int // buffers carved so far
}

// arenaChunk is how much memory the arena asks the system for at once.
const arenaChunk = 32 << 20

func newArena(size, limit int64) *arena {
	chunk := min(max(limit, size), arenaChunk) / size * size
	if chunk < size {
		chunk = size
	}
	return &arena{size: size, chunk: chunk}
}

// get returns a buffer of a.size bytes whose contents are undefined.
func (a *arena) get() []byte {
	if n := len(a.free); n > 0 {
		b := a.free[n-1]
		a.free = a.free[:n-1]
		return b
	}
	if int64(len(a.rest)) < a.size {
		a.rest = allocChunk(a.chunk)
	}
	b := a.rest[:a.size:a.size]
	a.rest = a.rest[a.size:]
	a.made++
	return b
}

// put keeps b for a later get.
func (a *arena) put(b []byte) { a.free = append(a.free, b[:a.size:a.size]) }
