package cache

// arena hands out the block cache's buffers. They are carved from large
// chunks of memory that the system may back with huge pages (see
// arena_linux.go): a cold sequential read fills every buffer once, and with
// 4 KiB pages that first touch cost one page fault per page, a fifth of
// cosmount's CPU in a cold read. A chunk is faulted in by the system in the
// background as soon as it is made, and the next one is made once half of
// the current one is handed out, so that a read rarely waits for memory to
// be faulted in. A buffer given back is kept for the next request for one:
// the arena's footprint is the most buffers ever alive at once (which the
// BlockCache bounds), rounded up to a chunk.
type arena struct {
	size  int64  // bytes per buffer
	chunk int64  // bytes per chunk (a multiple of size)
	limit int64  // bytes of chunks made ahead of need, at most
	made  int64  // bytes of chunks made so far
	rest  []byte // what is left of the current chunk
	next  []byte // the chunk after it, made ahead of need
	free  [][]byte
	bufs  int // buffers carved so far
}

// arenaChunk is how much memory the arena asks the system for at once.
const arenaChunk = 32 << 20

// newArena makes an arena of size-byte buffers for a cache of limit bytes.
func newArena(size, limit int64) *arena {
	chunk := min(max(limit, size), arenaChunk) / size * size
	if chunk < size {
		chunk = size
	}
	return &arena{size: size, chunk: chunk, limit: max(limit, chunk)}
}

// get returns a buffer of a.size bytes whose contents are undefined.
func (a *arena) get() []byte {
	if n := len(a.free); n > 0 {
		b := a.free[n-1]
		a.free = a.free[:n-1]
		return b
	}
	if int64(len(a.rest)) < a.size {
		if a.next != nil {
			a.rest, a.next = a.next, nil
		} else {
			a.rest = a.newChunk()
		}
	}
	b := a.rest[:a.size:a.size]
	a.rest = a.rest[a.size:]
	a.bufs++
	if a.next == nil && int64(len(a.rest)) <= a.chunk/2 && a.made+a.chunk <= a.limit {
		a.next = a.newChunk()
	}
	return b
}

func (a *arena) newChunk() []byte {
	a.made += a.chunk
	return allocChunk(a.chunk)
}

// put keeps b for a later get.
func (a *arena) put(b []byte) { a.free = append(a.free, b[:a.size:a.size]) }
