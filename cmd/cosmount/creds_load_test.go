package main

// Load for the credential tests: deterministic contents, throttled
// streams, and a tally of operations and failures.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"cosmount/auth"
	"cosmount/transport"
)

// smallContent is the body of the small test file called name: 512 bytes
// to 8.5 KiB derived from the name.
func smallContent(name string) []byte {
	h := sha256.Sum256([]byte(name))
	b := make([]byte, 512+(int(h[0])|int(h[1])<<8)%8192)
	for i := range b {
		b[i] = h[i%32] ^ byte(i/32)
	}
	return b
}

// patLen is the period of the big objects' content: not a multiple of any
// part or block size, so a part or block in the wrong place shows.
const patLen = 1<<20 + 13

var pat = func() []byte {
	b := make([]byte, patLen)
	_, _ = rand.NewChaCha8([32]byte{'c', 'o', 's'}).Read(b)
	return b
}()

// fillPattern fills p with the big objects' content from offset off.
func fillPattern(p []byte, off int64) {
	for len(p) > 0 {
		n := copy(p, pat[off%patLen:])
		p, off = p[n:], off+int64(n)
	}
}

// patternReader streams size bytes of the pattern at rate bytes per second
// (unthrottled when rate is 0).
type patternReader struct {
	off, size int64
	rate      float64
	start     time.Time
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.start.IsZero() {
		r.start = time.Now()
	}
	p = p[:min(int64(len(p)), r.size-r.off, 256<<10)]
	fillPattern(p, r.off)
	r.off += int64(len(p))
	if r.rate > 0 {
		due := r.start.Add(time.Duration(float64(r.off) / r.rate * float64(time.Second)))
		time.Sleep(time.Until(due))
	}
	return len(p), nil
}

// checkPattern reads f from offset off to its end at rate bytes per second
// and compares it with the pattern.
func checkPattern(ctx context.Context, f io.Reader, off int64, rate float64) (int64, error) {
	buf, want := make([]byte, 256<<10), make([]byte, 256<<10)
	start, n := time.Now(), int64(0)
	for ctx.Err() == nil {
		k, err := io.ReadFull(f, buf)
		fillPattern(want[:k], off+n)
		if !bytes.Equal(buf[:k], want[:k]) {
			return n, fmt.Errorf("content differs in the 256 KiB from offset %d", off+n)
		}
		n += int64(k)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if rate > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(float64(n) / rate * float64(time.Second)))))
		}
	}
	return n, ctx.Err()
}

// dropPageCache asks the kernel to forget the cached pages of the file at
// path, so the next read goes through the mount to the server.
func dropPageCache(path string) {
	if f, err := os.Open(path); err == nil {
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
	}
}

// tally counts operations and keeps every failure.
type tally struct {
	mu   sync.Mutex
	ops  map[string]int
	errs []string
}

func newTally() *tally { return &tally{ops: map[string]int{}} }

func (t *tally) ok(op string, n int) {
	t.mu.Lock()
	t.ops[op] += n
	t.mu.Unlock()
}

func (t *tally) fail(op string, err error) {
	t.mu.Lock()
	t.errs = append(t.errs, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), op, err))
	t.mu.Unlock()
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var parts []string
	for k, v := range t.ops {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func (t *tally) failures() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.errs...)
}

// countingProvider counts the times a client was refused and asked for
// fresh keys.
type countingProvider struct {
	*auth.Refresher
	mu      sync.Mutex
	refused int
}

func (c *countingProvider) Invalidate(refused auth.Credentials) {
	c.mu.Lock()
	c.refused++
	c.mu.Unlock()
	c.Refresher.Invalidate(refused)
}

func (c *countingProvider) refusals() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

// memLog keeps a provider's log lines; it is safe after the test ends.
type memLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *memLog) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *memLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// putSmall uploads the small files names under prefix with client, in
// parallel.
func putSmall(ctx context.Context, c *transport.Client, prefix string, names []string) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(names))
	sem := make(chan struct{}, 8)
	for _, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			b := smallContent(n)
			_, err := c.Put(ctx, &transport.PutInput{Key: prefix + n, Body: bytes.NewReader(b), Size: int64(len(b))})
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkTree checks that dir holds exactly names, each with its small
// content.
func checkTree(dir string, names []string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) != len(names) {
		return fmt.Errorf("%s has %d entries, want %d", dir, len(ents), len(names))
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		if !bytes.Equal(b, smallContent(n)) {
			return fmt.Errorf("%s/%s: wrong content (%d bytes)", dir, n, len(b))
		}
	}
	return nil
}

// writable checks that the mount takes new files.
func writable(t *testing.T, mnt string) bool {
	p := filepath.Join(mnt, ".write-probe")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Errorf("write probe: %v; writes through the mount are left out", err)
		return false
	}
	_ = os.Remove(p)
	return true
}

// every runs f every d until ctx is done, counting its successes as op.
func every(ctx context.Context, wg *sync.WaitGroup, tl *tally, op string, d time.Duration, f func(i int) error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			if err := f(i); err != nil {
				if ctx.Err() != nil && errors.Is(err, context.Canceled) {
					return
				}
				tl.fail(op, err)
			} else {
				tl.ok(op, 1)
			}
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
	}()
}
