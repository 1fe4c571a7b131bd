package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestRangeSet(t *testing.T) {
	var rs rangeSet
	rs = rs.add(Range{10, 5}).add(Range{0, 3}).add(Range{15, 5}).add(Range{2, 2})
	if want := (rangeSet{{0, 4}, {10, 10}}); !reflect.DeepEqual(rs, want) {
		t.Fatalf("add: %v want %v", rs, want)
	}
	if got, want := rs.missing(Range{0, 25}), []Range{{4, 6}, {20, 5}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("missing: %v want %v", got, want)
	}
	if got := rs.missing(Range{11, 3}); got != nil {
		t.Fatalf("missing inside a range: %v", got)
	}
	if got, want := rs.cut(12), (rangeSet{{0, 4}, {10, 2}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("cut: %v want %v", got, want)
	}
	if rs.total() != 14 {
		t.Fatalf("total %d", rs.total())
	}
}

func TestBlockCacheOneFetchPerBlockAndBound(t *testing.T) {
	data := make([]byte, 10<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var fetches atomic.Int64
	fetch := func(ctx context.Context, key, etag string, off, n int64) (io.ReadCloser, error) {
		fetches.Add(1)
		time.Sleep(10 * time.Millisecond)
		return io.NopCloser(bytes.NewReader(data[off : off+n])), nil
	}
	c, err := NewBlockCache(fetch, BlockCacheOptions{BlockSize: 1 << 10, MaxBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Block(context.Background(), BlockKey{"k", "e", 3}, int64(len(data)))
			if err != nil {
				t.Errorf("block 3: %v", err)
				return
			}
			if !bytes.Equal(r.Data(), data[3<<10:4<<10]) {
				t.Errorf("block 3: wrong bytes")
			}
			r.Release()
		}()
	}
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("20 concurrent readers of one block caused %d fetches", n)
	}
	for i := int64(0); i < 10; i++ {
		r, err := c.Block(context.Background(), BlockKey{"k", "e", i}, int64(len(data)))
		if err != nil || !bytes.Equal(r.Data(), data[i<<10:(i+1)<<10]) {
			t.Fatalf("block %d: %v", i, err)
		}
		r.Release()
	}
	if a, allowed := c.Buffers(); a > allowed {
		t.Fatalf("%d buffers for a bound of %d", a, allowed)
	}
	if n := c.lru.Len(); n > 4 {
		t.Fatalf("%d blocks cached, bound is 4", n)
	}
	if _, err := c.Block(context.Background(), BlockKey{"k", "e", 10}, int64(len(data))); err == nil {
		t.Fatal("a block past the end was served")
	}
}

// A pinned block keeps its bytes while the cache churns through many
// others, and buffers are reused: no more exist than the bound once the pins
// are gone.
func TestBlockCachePinsAndReusesBuffers(t *testing.T) {
	const bs, nblocks = 1 << 10, 200
	data := make([]byte, bs*nblocks)
	for i := range data {
		data[i] = byte(i*13 + i/bs)
	}
	c := memCache(t, data, bs, 4)
	ctx := context.Background()
	size := int64(len(data))
	held, err := c.Block(ctx, BlockKey{"k", "e", 7}, size)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(g); i < nblocks; i += 4 {
				if i%16 == 0 {
					c.Prefetch(BlockKey{"k", "e", i}, 8, size, nil)
				}
				r, err := c.Block(ctx, BlockKey{"k", "e", i}, size)
				if err != nil {
					t.Errorf("block %d: %v", i, err)
					return
				}
				if !bytes.Equal(r.Data(), data[i*bs:(i+1)*bs]) {
					t.Errorf("block %d: wrong bytes", i)
				}
				r.Release()
			}
		}()
	}
	wg.Wait()
	if !bytes.Equal(held.Data(), data[7*bs:8*bs]) {
		t.Fatal("a pinned block's bytes changed while the cache churned")
	}
	held.Release()
	// Let readahead runs still in flight finish, then fill the cache again.
	for i := 0; i < 100; i++ {
		c.mu.Lock()
		n := len(c.pending)
		c.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := int64(0); i < 8; i++ {
		r, err := c.Block(ctx, BlockKey{"k", "e", i}, size)
		if err != nil {
			t.Fatal(err)
		}
		r.Release()
	}
	if a, allowed := c.Buffers(); a > allowed {
		t.Fatalf("%d buffers alive after the churn, bound is %d", a, allowed)
	}
	// 209 Block calls and 13 Prefetch calls: each may cost one request at
	// most, whether or not a prefetched run outlived the churn of a cache
	// this small.
	if _, _, fetches := c.Stats(); fetches == 0 || fetches > nblocks+9+13 {
		t.Fatalf("%d requests for %d block reads and 13 prefetches", fetches, nblocks+9)
	}
}

// When every buffer is pinned a reader still gets its block, from a buffer
// beyond the bound; that buffer goes back to the arena once released and is
// the one handed out the next time: the arena's memory is the most buffers
// ever alive at once, not every buffer ever made.
func TestBlockCacheBuffersBeyondTheBoundAreReused(t *testing.T) {
	const bs = 1 << 10
	data := make([]byte, 64*bs)
	c := memCache(t, data, bs, 4)
	ctx := context.Background()
	for round := int64(0); round < 3; round++ {
		var refs []Ref
		for i := int64(0); i < 5; i++ { // 5 pinned blocks, bound 4
			r, err := c.Block(ctx, BlockKey{"k", "e", round*8 + i}, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			refs = append(refs, r)
		}
		for _, r := range refs {
			r.Release()
		}
		if a, allowed := c.Buffers(); a != allowed {
			t.Fatalf("round %d: %d buffers alive after the pins went, bound %d", round, a, allowed)
		}
	}
	c.mu.Lock()
	made := c.arena.bufs
	c.mu.Unlock()
	if made != 5 {
		t.Fatalf("the arena made %d buffers for at most 5 alive at once", made)
	}
}

// memCache is a cache of blocks blocks of bs bytes over data.
func memCache(t *testing.T, data []byte, bs, blocks int64) *BlockCache {
	t.Helper()
	fetch := func(ctx context.Context, key, etag string, off, n int64) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data[off : off+n])), nil
	}
	c, err := NewBlockCache(fetch, BlockCacheOptions{BlockSize: bs, MaxBytes: blocks * bs})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A prefetched run is one request, and every block of it is then served
// without another.
func TestBlockCachePrefetchIsOneRequest(t *testing.T) {
	const bs = 1 << 10
	data := make([]byte, 32*bs)
	for i := range data {
		data[i] = byte(i*5 + i/bs)
	}
	var fetches atomic.Int64
	fetch := func(ctx context.Context, key, etag string, off, n int64) (io.ReadCloser, error) {
		fetches.Add(1)
		return io.NopCloser(bytes.NewReader(data[off : off+n])), nil
	}
	c, err := NewBlockCache(fetch, BlockCacheOptions{BlockSize: bs, MaxBytes: 16 * bs})
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	c.Prefetch(BlockKey{"k", "e", 4}, 8, size, nil)
	for i := int64(4); i < 12; i++ {
		r, err := c.Block(context.Background(), BlockKey{"k", "e", i}, size)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if !bytes.Equal(r.Data(), data[i*bs:(i+1)*bs]) {
			t.Fatalf("block %d: wrong bytes", i)
		}
		r.Release()
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("a prefetched run of 8 blocks then read took %d requests", n)
	}
}

func TestBlockCacheShortObject(t *testing.T) {
	fetch := func(ctx context.Context, key, etag string, off, n int64) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(make([]byte, n/2))), nil
	}
	c, _ := NewBlockCache(fetch, BlockCacheOptions{BlockSize: 1 << 10, MaxBytes: 4 << 10})
	if _, err := c.Block(context.Background(), BlockKey{"k", "e", 0}, 4096); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v", err)
	}
}

// A block cached for one size of its object is fetched again for a reader
// that gives another: readers never get a block of the wrong length.
func TestBlockCacheRefetchesABlockCachedAtAnotherLength(t *testing.T) {
	var fetches atomic.Int64
	fetch := func(ctx context.Context, key, etag string, off, n int64) (io.ReadCloser, error) {
		fetches.Add(1)
		return io.NopCloser(bytes.NewReader(make([]byte, n))), nil
	}
	c, _ := NewBlockCache(fetch, BlockCacheOptions{BlockSize: 1 << 10, MaxBytes: 4 << 10})
	ctx := context.Background()
	k := BlockKey{"k", "e", 0}
	r, err := c.Block(ctx, k, 100) // a caller that thinks the object has 100 bytes
	if err != nil || len(r.Data()) != 100 {
		t.Fatalf("block of a 100-byte object: %d bytes, %v", len(r.Data()), err)
	}
	r.Release()
	r, err = c.Block(ctx, k, 4096)
	if err != nil || len(r.Data()) != 1<<10 {
		t.Fatalf("block of a 4096-byte object: %d bytes, %v; want 1024", len(r.Data()), err)
	}
	r.Release()
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	if n := c.CachedLen(k); n != 1<<10 {
		t.Errorf("block cached with %d bytes, want 1024", n)
	}
}

func TestStoreBoundsAndNoSpace(t *testing.T) {
	s, err := NewStore(t.TempDir(), 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Create(0)
	if _, err := a.WriteAt(make([]byte, 6<<10), 0); err != nil {
		t.Fatal(err)
	}
	// Rewriting present bytes costs nothing more.
	if _, err := a.WriteAt(make([]byte, 6<<10), 0); err != nil {
		t.Fatal(err)
	}
	if s.Used() != 6<<10 {
		t.Fatalf("used %d", s.Used())
	}
	b, _ := s.Create(0)
	done := make(chan error, 1)
	go func() {
		_, err := b.WriteAt(make([]byte, 4<<10), 0)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a write past the bound did not wait: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	a.Remove()
	if err := <-done; err != nil {
		t.Fatalf("write after space was freed: %v", err)
	}
	if err := s.reserve(100<<10, 10*time.Millisecond); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("reserve beyond the bound: %v, want ENOSPC", err)
	}
	b.Remove()
	if s.Used() != 0 {
		t.Fatalf("used %d after removing every file", s.Used())
	}
}

func TestWriteFileFillNeverOverwritesWrites(t *testing.T) {
	s, _ := NewStore(t.TempDir(), 1<<20)
	w, _ := s.Create(100)
	w.WriteAt([]byte("written"), 10)
	if err := w.Fill(bytes.Repeat([]byte("b"), 100), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	w.ReadAt(buf, 0)
	want := bytes.Repeat([]byte("b"), 100)
	copy(want[10:], "written")
	if !bytes.Equal(buf, want) {
		t.Fatalf("got %q", buf)
	}
	if m := w.Missing(Range{0, 100}); m != nil {
		t.Fatalf("missing after fill: %v", m)
	}
	if err := w.Truncate(100, 50); err != nil {
		t.Fatal(err)
	}
	if m := w.Missing(Range{0, 60}); fmt.Sprint(m) != "[{50 10}]" {
		t.Fatalf("missing after truncate: %v", m)
	}
}

// In a full cache, blocks a sequential reader has read through are evicted
// before older blocks, oldest spent first, while they hold more than half of
// it; then the LRU's oldest go. A spent block asked for again is kept by LRU
// order like any other.
func TestBlockCacheEvictsSpentBlocksFirst(t *testing.T) {
	const bs = 1 << 10
	data := make([]byte, 16*bs)
	c := memCache(t, data, bs, 4)
	ctx := context.Background()
	size := int64(len(data))
	get := func(i int64) Ref {
		t.Helper()
		r, err := c.Block(ctx, BlockKey{"k", "e", i}, size)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cached := func(want ...int64) {
		t.Helper()
		var got []int64
		for i := int64(0); i < 16; i++ {
			if c.CachedLen(BlockKey{"k", "e", i}) >= 0 {
				got = append(got, i)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("cached blocks %v, want %v", got, want)
		}
	}
	for i := int64(0); i < 4; i++ {
		get(i).Release()
	}
	r1, r2, r3 := get(1), get(2), get(3)
	c.Spent(r3, r2)
	c.Spent(r1)
	r1.Release()
	r2.Release()
	r3.Release()
	get(4).Release()
	cached(0, 1, 2, 4) // 3, the oldest of three spent, went
	get(5).Release()
	cached(1, 2, 4, 5) // two of four spent: 0, the LRU's oldest, went
	get(2).Release()   // asked for again: no longer spent
	get(6).Release()
	cached(2, 4, 5, 6) // 1 is the LRU's oldest
	r4, r5, r6 := get(4), get(5), get(6)
	c.Spent(r6, r4, r5)
	r4.Release()
	r5.Release()
	r6.Release()
	get(7).Release()
	cached(2, 4, 5, 7) // 6, the oldest of three spent, went, not 2
}

// A sequential read of a region in a full cache takes the place of the
// least recently used blocks rather than its own: the region read again at
// random (with O_DIRECT, past the page cache) is served from memory.
func TestBlockCacheKeepsRegionReadThroughInFullCache(t *testing.T) {
	const bs = 1 << 10
	data := make([]byte, 64*bs)
	c := memCache(t, data, bs, 32)
	ctx := context.Background()
	size := int64(len(data))
	read := func(etag string, i int64, spend bool) {
		t.Helper()
		r, err := c.Block(ctx, BlockKey{"k", etag, i}, size)
		if err != nil {
			t.Fatal(err)
		}
		if spend {
			c.Spent(r)
		}
		r.Release()
	}
	for i := int64(0); i < 32; i++ {
		read("old", i, false) // fills the cache
	}
	for i := int64(0); i < 12; i++ {
		read("e", i, true)
	}
	_, _, fetched := c.Stats()
	for i := int64(0); i < 12; i++ {
		read("e", 11-i, false)
	}
	if _, _, f := c.Stats(); f != fetched {
		t.Errorf("reading the region again fetched %d blocks, want none", f-fetched)
	}
}

// Past half the bound, a spent block's buffer is reused before the cache
// grows: a sequential reader cycles through half the cache, not all of it.
func TestBlockCacheReusesSpentBlocksBeforeGrowing(t *testing.T) {
	const bs = 1 << 10
	data := make([]byte, 64*bs)
	for i := range data {
		data[i] = byte(i / bs)
	}
	c := memCache(t, data, bs, 32)
	ctx := context.Background()
	size := int64(len(data))
	for i := int64(0); i < 64; i++ {
		r, err := c.Block(ctx, BlockKey{"k", "e", i}, size)
		if err != nil {
			t.Fatal(err)
		}
		if r.Data()[0] != byte(i) || len(r.Data()) != bs {
			t.Fatalf("block %d holds block %d's bytes", i, r.Data()[0])
		}
		c.Spent(r)
		r.Release()
	}
	if n, allowed := c.Buffers(); n != allowed/2 {
		t.Errorf("%d buffers (of %d allowed) for a reader that read each block once and moved on, want %d", n, allowed, allowed/2)
	}
	// Blocks not spent fill the cache as before.
	for i := int64(0); i < 40; i++ {
		r, err := c.Block(ctx, BlockKey{"k", "e2", i}, size)
		if err != nil {
			t.Fatal(err)
		}
		r.Release()
	}
	if n, allowed := c.Buffers(); n != allowed {
		t.Errorf("%d buffers, want the %d allowed", n, allowed)
	}
}

// Bytes dropped after their upload give their cache space back only when
// the cache disk frees them: where holes cannot be punched they stay on
// the disk, and count, until the file goes.
func TestDiscardKeepsTheSpaceItCannotFree(t *testing.T) {
	for _, punchWorks := range []bool{true, false} {
		t.Run(fmt.Sprint("punch works ", punchWorks), func(t *testing.T) {
			defer func(p func(*os.File, Range) error) { punchHole = p }(punchHole)
			if !punchWorks {
				punchHole = func(*os.File, Range) error { return errors.ErrUnsupported }
			}
			s, err := NewStore(t.TempDir(), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			w, err := s.Create(0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.WriteAt(make([]byte, 512<<10), 0); err != nil {
				t.Fatal(err)
			}
			w.Discard(Range{0, 256 << 10})
			want := int64(256 << 10)
			if !punchWorks {
				want = 512 << 10
			}
			if got := s.Used(); got != want {
				t.Errorf("cache space used after the discard: %d, want %d", got, want)
			}
			w.Remove()
			if got := s.Used(); got != 0 {
				t.Errorf("cache space used after the file went: %d, want 0", got)
			}
		})
	}
}

// What a file registered to give space back goes with it: a reclaimer is
// called when a writer would wait for space, and never once its file is
// closed.
func TestReclaimersGoWithTheirFile(t *testing.T) {
	s, err := NewStore(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Create(0)
	b, _ := s.Create(0)
	if _, err := a.WriteAt(make([]byte, 768<<10), 0); err != nil {
		t.Fatal(err)
	}
	var calledA, calledB int
	a.OnPressure(func() Reclaimed { calledA++; a.Discard(Range{0, 512 << 10}); return Freed })
	b.OnPressure(func() Reclaimed { calledB++; return Gone })
	b.Remove()
	c, _ := s.Create(0)
	if _, err := c.WriteAt(make([]byte, 512<<10), 0); err != nil {
		t.Fatalf("write needing the space a gives back: %v", err)
	}
	if calledA != 1 || calledB != 0 {
		t.Errorf("reclaimers called: a %d, b (closed) %d; want 1 and 0", calledA, calledB)
	}
	a.Remove()
	c.Remove()
	if len(s.reclaim) != 0 {
		t.Errorf("%d files' reclaimers kept after they were closed", len(s.reclaim))
	}
}

// Bytes of the base fetched before a truncate cut the file must not land
// past its new end: grown again, the file reads zeros there.
func TestFillStopsAtASizeCutMeanwhile(t *testing.T) {
	s, _ := NewStore(t.TempDir(), 1<<20)
	w, _ := s.Create(100)
	defer w.Remove()
	if err := w.Truncate(100, 10); err != nil {
		t.Fatal(err)
	}
	if err := w.Fill(bytes.Repeat([]byte("b"), 100), 0); err != nil {
		t.Fatal(err)
	}
	if s.Used() != 10 {
		t.Fatalf("used %d after filling a file of 10 bytes", s.Used())
	}
	if err := w.Truncate(10, 100); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := w.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte("b"), 10), make([]byte, 90)...)
	if !bytes.Equal(buf, want) {
		t.Fatalf("read %q, want 10 b and zeros", buf)
	}
	if s.Used() != 100 {
		t.Fatalf("used %d for a file of 100 bytes", s.Used())
	}
}

// Two fills of the same range that wait for space together charge it once.
func TestConcurrentFillsChargeOnce(t *testing.T) {
	s, _ := NewStore(t.TempDir(), 100)
	hog, _ := s.Create(0)
	if _, err := hog.WriteAt(make([]byte, 100), 0); err != nil {
		t.Fatal(err)
	}
	w, _ := s.Create(50)
	defer w.Remove()
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- w.Fill(bytes.Repeat([]byte("b"), 50), 0) }()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		waits := s.waits
		s.mu.Unlock()
		if waits == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d fills wait for space, want 2", waits)
		}
	}
	hog.Remove()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if s.Used() != 50 {
		t.Fatalf("used %d for 50 bytes filled twice", s.Used())
	}
}

// A write that fails gives back the space of what did not land.
func TestFailedWriteGivesItsSpaceBack(t *testing.T) {
	s, _ := NewStore(t.TempDir(), 1<<20)
	w, _ := s.Create(0)
	if _, err := w.WriteAt(make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	w.f.Close() // (every write fails from now on)
	if _, err := w.WriteAt(make([]byte, 100), 10); err == nil {
		t.Fatal("a write to a closed file succeeded")
	}
	if s.Used() != 10 {
		t.Fatalf("used %d after a failed write, want the 10 bytes held", s.Used())
	}
	if m := w.Missing(Range{0, 110}); fmt.Sprint(m) != "[{10 100}]" {
		t.Fatalf("missing after a failed write: %v", m)
	}
	w.Close()
	if s.Used() != 0 {
		t.Fatalf("used %d after close", s.Used())
	}
}

// A failed write over bytes the file held keeps them held: only what the
// write itself would have added is missing.
func TestFailedWriteKeepsWhatWasHeld(t *testing.T) {
	s, _ := NewStore(t.TempDir(), 1<<20)
	w, _ := s.Create(0)
	defer w.Close()
	if _, err := w.WriteAt([]byte("0123456789"), 0); err != nil {
		t.Fatal(err)
	}
	w.f.Close() // (every write fails from now on)
	if _, err := w.WriteAt([]byte("abcdefghij"), 5); err == nil {
		t.Fatal("a write to a closed file succeeded")
	}
	if m := w.Missing(Range{0, 15}); fmt.Sprint(m) != "[{10 5}]" {
		t.Fatalf("missing after a failed write: %v, want only what it added", m)
	}
	if s.Used() != 10 {
		t.Fatalf("used %d, want the 10 bytes held", s.Used())
	}
}

// Whatever the order of reads, spent marks, releases and invalidations,
// the count of spent blocks matches the blocks marked, every buffer is
// accounted for, and a pinned block keeps its bytes.
func TestBlockCacheBookkeepingUnderRandomOps(t *testing.T) {
	const bs = 1 << 10
	data := make([]byte, 40*bs)
	for i := range data {
		data[i] = byte(i / bs)
	}
	c := memCache(t, data, bs, 8)
	ctx := context.Background()
	size := int64(len(data))
	seed := uint64(time.Now().UnixNano())
	next := func(n int) int {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	var held []Ref
	check := func(step int) {
		t.Helper()
		c.mu.Lock()
		defer c.mu.Unlock()
		n := 0
		for _, k := range c.lru.Keys() {
			b, _ := c.lru.Peek(k)
			if b.spent {
				n++
			}
			if !b.cached || b.refs.Load() < 1 {
				t.Fatalf("step %d: cached block %v with cached=%v refs=%d", step, k, b.cached, b.refs.Load())
			}
		}
		if n != c.nspent {
			t.Fatalf("step %d: %d blocks spent, counted %d", step, n, c.nspent)
		}
		if c.allocated > c.slots+len(held) {
			t.Fatalf("step %d: %d buffers for %d slots and %d pins", step, c.allocated, c.slots, len(held))
		}
	}
	for step := range 5000 {
		switch op := next(10); {
		case op < 5 && len(held) < 12:
			i := int64(next(40))
			r, err := c.Block(ctx, BlockKey{"k", "e", i}, size)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, r)
		case op < 7 && len(held) > 0:
			c.Spent(held[next(len(held))])
		case op < 9 && len(held) > 0, len(held) >= 12:
			j := next(len(held))
			r := held[j]
			if got := r.Data()[0]; got != byte(r.k.Index) {
				t.Fatalf("step %d: pinned block %d holds block %d's bytes", step, r.k.Index, got)
			}
			r.Release()
			held = append(held[:j], held[j+1:]...)
		case op == 9 && next(20) == 0:
			c.Invalidate("k")
		}
		check(step)
	}
	for _, r := range held {
		r.Release()
	}
	if a, allowed := c.Buffers(); a > allowed {
		t.Errorf("%d buffers alive after every pin went, bound %d", a, allowed)
	}
}

// A readahead run still waiting for a request slot when its reader goes
// away is never sent; its blocks are fetched when someone asks for them.
func TestBlockCacheDropsReadaheadOfAReaderGone(t *testing.T) {
	const bs = 1 << 10
	data := make([]byte, 32*bs)
	for i := range data {
		data[i] = byte(i / bs)
	}
	held := make(chan struct{})
	var mu sync.Mutex
	var fetched []int64
	fetch := func(ctx context.Context, key, etag string, off, n int64) (io.ReadCloser, error) {
		mu.Lock()
		fetched = append(fetched, off/bs)
		mu.Unlock()
		if off == 0 {
			<-held
		}
		return io.NopCloser(bytes.NewReader(data[off : off+n])), nil
	}
	c, err := NewBlockCache(fetch, BlockCacheOptions{BlockSize: bs, MaxBytes: 16 * bs, MaxFetches: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	size := int64(len(data))
	first := make(chan error, 1)
	go func() {
		r, err := c.Block(ctx, BlockKey{"k", "e", 0}, size)
		if err == nil {
			r.Release()
		}
		first <- err
	}()
	for c.Fetching() == 0 {
		time.Sleep(time.Millisecond)
	}
	var stop atomic.Bool
	if !c.Prefetch(BlockKey{"k", "e", 4}, 4, size, &stop) {
		t.Fatal("readahead refused")
	}
	stop.Store(true) // the reader went away while the run waits for the slot
	close(held)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for c.Fetching() > 0 {
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	got := fmt.Sprint(fetched)
	mu.Unlock()
	if got != "[0]" {
		t.Errorf("blocks fetched %s, want [0]: the dropped run was sent", got)
	}
	r, err := c.Block(ctx, BlockKey{"k", "e", 5}, size)
	if err != nil {
		t.Fatal(err)
	}
	if r.Data()[0] != 5 {
		t.Errorf("block 5 holds block %d's bytes", r.Data()[0])
	}
	r.Release()
}

// gatedBody serves data and, once open blocks have been read, waits for
// gate before serving more; it notes how much was read before Close.
type gatedBody struct {
	r      *bytes.Reader
	open   int64
	gate   chan struct{}
	served atomic.Int64
	closed chan struct{}
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if b.served.Load() >= b.open {
		select {
		case <-b.gate:
		case <-b.closed:
			return 0, errors.New("read after close")
		}
	}
	if rest := b.open - b.served.Load(); rest > 0 && int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := b.r.Read(p)
	b.served.Add(int64(n))
	return n, err
}

func (b *gatedBody) Close() error { close(b.closed); return nil }

// A readahead run whose reader goes away while its response is being read
// stops reading it once no one waits for its blocks and enough of it is
// left; a block asked for later is fetched on its own.
func TestBlockCacheCutsShortReadaheadOfAReaderGone(t *testing.T) {
	const bs, n = 1 << 10, 16
	data := make([]byte, n*bs)
	for i := range data {
		data[i] = byte(i / bs)
	}
	var mu sync.Mutex
	var bodies []*gatedBody
	fetch := func(ctx context.Context, key, etag string, off, length int64) (io.ReadCloser, error) {
		b := &gatedBody{r: bytes.NewReader(data[off : off+length]), open: 2 * bs, gate: make(chan struct{}), closed: make(chan struct{})}
		if off != 0 {
			close(b.gate) // a block fetched on its own is served whole
		}
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		return b, nil
	}
	c, err := NewBlockCache(fetch, BlockCacheOptions{BlockSize: bs, MaxBytes: 2 * n * bs, MaxFetches: 2})
	if err != nil {
		t.Fatal(err)
	}
	c.abandonMin = 4 * bs
	ctx := context.Background()
	size := int64(len(data))
	var stop atomic.Bool
	if !c.Prefetch(BlockKey{"k", "e", 0}, n, size, &stop) {
		t.Fatal("readahead refused")
	}
	for c.CachedLen(BlockKey{"k", "e", 1}) < 0 {
		time.Sleep(time.Millisecond)
	}
	// Another reader waits for block 8 of the run: the run goes on to it.
	waited := make(chan error, 1)
	go func() {
		r, err := c.Block(ctx, BlockKey{"k", "e", 8}, size)
		if err == nil {
			if r.Data()[0] != 8 {
				err = fmt.Errorf("block 8 holds block %d's bytes", r.Data()[0])
			}
			r.Release()
		}
		waited <- err
	}()
	for !c.waitedFor(BlockKey{"k", "e", 8}) {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true) // the reader of the run went away
	mu.Lock()
	run := bodies[0]
	mu.Unlock()
	close(run.gate)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	for c.Fetching() > 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-run.closed:
	default:
		t.Fatal("the run's response was not closed")
	}
	if got := run.served.Load(); got != 9*bs {
		t.Errorf("the run read %d bytes, want %d (up to block 8, which was waited for)", got, 9*bs)
	}
	if c.CachedLen(BlockKey{"k", "e", 12}) >= 0 {
		t.Error("block 12 was cached: the run was read past the cut")
	}
	r, err := c.Block(ctx, BlockKey{"k", "e", 12}, size)
	if err != nil {
		t.Fatal(err)
	}
	if r.Data()[0] != 12 {
		t.Errorf("block 12 holds block %d's bytes", r.Data()[0])
	}
	r.Release()
}

// waitedFor reports whether a reader waits for block k, being fetched.
func (c *BlockCache) waitedFor(k BlockKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[k]
	return p != nil && p.waiters > 0
}
