package main

import (
	"crypto/rand"
	"io"
)

// pattern is incompressible data of any length: a random block repeated,
// each repetition shifted so no two blocks of a file are equal.
type pattern struct {
	block []byte
	size  int64
}

func newPattern(size int64) *pattern {
	b := make([]byte, 16<<20+4093)
	_, _ = rand.Read(b)
	return &pattern{block: b, size: size}
}

func (p *pattern) ReadAt(dst []byte, off int64) (int, error) {
	if off >= p.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(dst) && off < p.size {
		i := off % int64(len(p.block))
		k := copy(dst[n:], p.block[i:])
		if rest := p.size - off; int64(k) > rest {
			k = int(rest)
		}
		n += k
		off += int64(k)
	}
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}
