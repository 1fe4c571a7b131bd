package transport

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// bufPool recycles buffers between the uploads of one Uploader. It holds
// one sync.Pool per size class — powers of two up to 1 MiB, whole MiB above,
// so part sizes (whole MiB) waste nothing — which lets the garbage collector
// reclaim idle buffers. The pool itself does not bound memory: an upload
// takes a part buffer only while it holds one of its ChunkParallelLimit
// slots, so it never has more than that many alive (plus, for a body of
// unknown size, the SliceSize+1 bytes read to choose PUT or multipart).
type bufPool struct {
	mu      sync.Mutex
	classes map[int]*sync.Pool // by buffer length; guarded by mu
}

func newBufPool() *bufPool { return &bufPool{classes: make(map[int]*sync.Pool)} }

// sizeClass is the length of the buffers that serve a request for n bytes.
func sizeClass(n int) int {
	if n > mib {
		return (n + mib - 1) / mib * mib
	}
	c := 4096
	for c < n {
		c <<= 1
	}
	return c
}

func (b *bufPool) class(size int) *sync.Pool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.classes[size]
	if p == nil {
		p = &sync.Pool{New: func() any { buf := make([]byte, size); return &buf }}
		b.classes[size] = p
	}
	return p
}

// get returns a buffer of at least n bytes (contents undefined).
func (b *bufPool) get(n int) *[]byte { return b.class(sizeClass(n)).Get().(*[]byte) }

// put gives a buffer from get back.
func (b *bufPool) put(buf *[]byte) {
	if buf != nil && len(*buf) > 0 {
		b.class(len(*buf)).Put(buf)
	}
}

// headReader reads head, then body; it gives head's buffer back once read.
type headReader struct {
	head    []byte
	body    io.Reader
	release func()
}

func (h *headReader) Read(p []byte) (int, error) {
	if len(h.head) > 0 {
		n := copy(p, h.head)
		h.head = h.head[n:]
		if len(h.head) == 0 {
			h.drop()
		}
		return n, nil
	}
	return h.body.Read(p)
}

func (h *headReader) drop() {
	h.head = nil
	if h.release != nil {
		h.release()
		h.release = nil
	}
}

// errShortSource: a part's source ended before the part did.
var errShortSource = fmt.Errorf("transport: part source ended early: %w", io.ErrUnexpectedEOF)

// partBody is an io.ReadSeeker over size bytes of src from off, re-readable
// for retries. It notes a source that ends early and how far it was read.
type partBody struct {
	src            io.ReaderAt
	off, size, pos int64
	maxPos         int64
	short          bool
}

func (b *partBody) Read(p []byte) (int, error) {
	if b.pos >= b.size {
		return 0, io.EOF
	}
	if rem := b.size - b.pos; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := b.src.ReadAt(p, b.off+b.pos)
	b.pos += int64(n)
	b.maxPos = max(b.maxPos, b.pos)
	if err == io.EOF {
		if n < len(p) {
			b.short = true
			return n, errShortSource
		}
		err = nil
	}
	return n, err
}

func (b *partBody) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += b.pos
	case io.SeekEnd:
		offset += b.size
	}
	if offset < 0 {
		return 0, errors.New("transport: seek before start of part")
	}
	b.pos = offset
	return offset, nil
}

// check is called after a successful send: the whole part must have been
// read from a source that did not end early.
func (b *partBody) check() error {
	if b.short {
		return &permanentError{errShortSource}
	}
	if b.maxPos != b.size {
		return fmt.Errorf("transport: %d of %d bytes of a part were sent", b.maxPos, b.size)
	}
	return nil
}
