// Package cache keeps object data close to the filesystem: a block cache for
// reads (an LRU of fixed-size blocks bounded in bytes) and write-back files
// for writes.
//
// Lock order: BlockCache.mu guards the LRU, the pending map and the free
// buffers; it is never held while a block is fetched. A block's references
// are counted atomically, so that a reader lets go of one without it.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// BlockKey names one block of one version of an object.
type BlockKey struct {
	Key   string
	ETag  string
	Index int64
}

// Fetcher reads length bytes of the object version named by key and etag
// starting at off. It returns a stream the cache reads fully and closes.
type Fetcher func(ctx context.Context, key, etag string, off, length int64) (io.ReadCloser, error)

// block is one buffer of the cache. Its bytes are reused for another block
// once it is neither in the LRU nor pinned by a reader.
type block struct {
	data []byte
	// refs counts the readers holding the block, and one more while it is
	// in the LRU: whoever drops the last gives the buffer back.
	refs   atomic.Int32
	cached bool // in the LRU (under BlockCache.mu)
	// spent: read through by a sequential reader and not asked for since;
	// evicted before the LRU's oldest (under BlockCache.mu).
	spent bool
}

// pendingBlock is a block being fetched; done closes when blk or err is set.
type pendingBlock struct {
	done chan struct{}
	blk  *block
	err  error
	// waiters are readers blocked on it; each gets a pin when it arrives.
	waiters int
	// prefetch: fetched by a readahead run, whose failure a reader retries
	// on its own rather than reports.
	prefetch bool
}

// Ref is a block pinned in memory: its bytes stay valid and unchanged until
// Release, whatever the cache evicts meanwhile. Release it exactly once.
type Ref struct {
	c *BlockCache
	b *block
	k BlockKey
}

// Data is the block's bytes; they must not be modified.
func (r Ref) Data() []byte { return r.b.data }

// Release unpins the block. It takes the cache's lock only when it lets go
// of the last reference to a block the LRU dropped.
func (r Ref) Release() {
	if r.b.refs.Add(-1) == 0 {
		r.c.mu.Lock()
		r.c.putLocked(r.b.data)
		r.c.mu.Unlock()
	}
}

// BlockCache is an LRU of fixed-size blocks, bounded in bytes: the buffers
// of cached blocks, blocks being fetched and blocks pinned by readers number
// at most MaxBytes/BlockSize (more only while every one of them is pinned or
// in flight). Buffers are reused rather than left to the garbage collector,
// so a long sequential read allocates nothing once the cache is full.
// Concurrent requests for one block cause one fetch; readahead fetches a run
// of consecutive blocks with one request.
type BlockCache struct {
	blockSize int64
	slots     int // buffers allowed
	fetch     Fetcher
	// fetchCtx bounds fetches: one waiter giving up must not cancel the
	// fetch others wait for.
	fetchCtx context.Context
	sem      chan struct{} // requests in flight
	// pf: readahead runs queued or in flight, twice the requests: runs
	// wait for a request slot, so that the windows of several sequential
	// readers fit.
	pf chan struct{}

	mu      sync.Mutex
	lru     *simplelru.LRU[BlockKey, *block]
	pending map[BlockKey]*pendingBlock
	free    [][]byte // buffers ready for reuse
	// spent lists the blocks marked Spent, oldest first, from spentAt on;
	// entries whose block was evicted or asked for again are skipped.
	spent   []BlockKey
	spentAt int
	// nspent counts the cached blocks marked spent.
	nspent    int
	allocated int    // buffers alive: cached, pending, pinned or free
	arena     *arena // where buffers come from and go back to

	// abandonMin: a readahead run whose reader went away while it was
	// being read is cut short when at least this many bytes of it are
	// left (see abandon).
	abandonMin int64

	hits, misses, fetches atomic.Int64
}

// BlockCacheOptions configures a BlockCache.
type BlockCacheOptions struct {
	BlockSize int64 // bytes per block (1 MiB when 0)
	MaxBytes  int64 // memory bound (64 MiB when 0; at least two blocks)
	// MaxFetches bounds concurrent requests (16 when 0).
	MaxFetches int
	// Context lives as long as the cache; fetches stop when it is done.
	Context context.Context
}

// NewBlockCache builds a cache that fills itself through fetch.
func NewBlockCache(fetch Fetcher, opt BlockCacheOptions) (*BlockCache, error) {
	if opt.BlockSize <= 0 {
		opt.BlockSize = 1 << 20
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = 64 << 20
	}
	if opt.MaxFetches <= 0 {
		opt.MaxFetches = 16
	}
	if opt.Context == nil {
		opt.Context = context.Background()
	}
	n := int(opt.MaxBytes / opt.BlockSize)
	if n < 2 {
		return nil, fmt.Errorf("read cache of %d bytes holds fewer than two blocks of %d bytes", opt.MaxBytes, opt.BlockSize)
	}
	c := &BlockCache{
		blockSize: opt.BlockSize,
		slots:     n,
		fetch:     fetch,
		fetchCtx:  opt.Context,
		sem:       make(chan struct{}, opt.MaxFetches),
		pf:        make(chan struct{}, 2*opt.MaxFetches),
		pending:   map[BlockKey]*pendingBlock{},
		arena:     newArena(opt.BlockSize, opt.MaxBytes),

		abandonMin: 4 << 20,
	}
	l, err := simplelru.NewLRU(n, c.evicted)
	if err != nil {
		return nil, err
	}
	c.lru = l
	return c, nil
}

// BlockSize is the size of every block but an object's last.
func (c *BlockCache) BlockSize() int64 { return c.blockSize }

// Stats reports hits, misses and requests sent so far.
func (c *BlockCache) Stats() (hits, misses, fetches int64) {
	return c.hits.Load(), c.misses.Load(), c.fetches.Load()
}

// Buffers reports how many block buffers exist and how many the bound
// allows.
func (c *BlockCache) Buffers() (allocated, allowed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.allocated, c.slots
}

// CachedLen is the length of block k in the cache, -1 when it is not
// cached.
func (c *BlockCache) CachedLen(k BlockKey) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.lru.Peek(k); ok {
		return len(b.data)
	}
	return -1
}

// Fetching reports how many blocks are being fetched.
func (c *BlockCache) Fetching() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Missing reports whether block k is neither cached nor being fetched.
func (c *BlockCache) Missing(k BlockKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.lru.Contains(k) && c.pending[k] == nil
}

// Spent marks blocks a sequential reader has read through: it will not
// read them again (the kernel's page cache holds them, unless it reads with
// O_DIRECT), and the blocks fetched ahead of readers are worth more. When the cache needs a buffer it evicts spent blocks,
// oldest first, before it evicts by LRU; a block asked for again before
// that is no longer spent.
func (c *BlockCache) Spent(refs ...Ref) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range refs {
		if r.b.cached && !r.b.spent {
			r.b.spent = true
			c.nspent++
			c.spent = append(c.spent, r.k)
		}
	}
	if n := len(c.spent) - c.spentAt; n > c.slots {
		// The oldest go; their blocks are left to the LRU.
		for _, k := range c.spent[c.spentAt : len(c.spent)-c.slots] {
			if b, ok := c.lru.Peek(k); ok && b.spent {
				b.spent = false
				c.nspent--
			}
		}
		c.spentAt = len(c.spent) - c.slots
	}
	if c.spentAt > len(c.spent)/2 {
		c.spent = c.spent[:copy(c.spent, c.spent[c.spentAt:])]
		c.spentAt = 0
	}
}

// evictSpentLocked evicts the oldest spent block and reports whether there
// was one.
func (c *BlockCache) evictSpentLocked() bool {
	for c.spentAt < len(c.spent) {
		k := c.spent[c.spentAt]
		c.spent[c.spentAt] = BlockKey{}
		c.spentAt++
		if b, ok := c.lru.Peek(k); ok && b.spent {
			c.lru.Remove(k)
			return true
		}
	}
	return false
}

// evicted runs under c.mu when the LRU drops a block.
func (c *BlockCache) evicted(_ BlockKey, b *block) {
	b.cached = false
	if b.spent {
		b.spent = false
		c.nspent--
	}
	c.unpinLocked(b) // the LRU's reference
}

func (c *BlockCache) unpinLocked(b *block) {
	if b.refs.Add(-1) == 0 {
		c.putLocked(b.data)
	}
}

// putLocked returns a buffer for reuse, or to the arena when more exist
// than the bound allows.
func (c *BlockCache) putLocked(buf []byte) {
	if c.allocated > c.slots {
		c.allocated--
		c.arena.put(buf)
		return
	}
	c.free = append(c.free, buf[:cap(buf)])
}

// getLocked hands out a buffer: a free one, a new one while under half
// the bound, a spent block's, a new one while under the bound, else the
// least recently used block's. Past half the bound spent blocks go before
// the cache grows: a long sequential read then cycles through half the
// cache instead of filling all of it with blocks the page cache holds too,
// and a new mount's cold read touches that much fresh memory rather than
// all of it (each fresh page costs a fault and zeroing, many times a reused
// one on a virtual machine). Below half, what a reader read through stays
// for a while (a short file read again, blocks read again with O_DIRECT).
// Once the cache is full, spent blocks go first only while they hold more
// than half of it: a sequential read then takes the place of the least
// recently used blocks up to half the cache, and recycles its own beyond
// that, so that it neither flushes the whole cache nor drops at once the
// blocks it just read (a region read through, then read again at random
// with O_DIRECT, stays cached).
func (c *BlockCache) getLocked() []byte {
	for {
		if n := len(c.free); n > 0 {
			buf := c.free[n-1]
			c.free = c.free[:n-1]
			return buf
		}
		// Either frees its buffer unless a reader holds it.
		if c.allocated >= c.slots/2 && (c.allocated < c.slots || c.nspent > c.slots/2) && c.evictSpentLocked() {
			continue
		}
		if c.allocated < c.slots || c.lru.Len() == 0 {
			// Under the bound, or every buffer pinned or in flight.
			c.allocated++
			return c.arena.get()
		}
		c.lru.RemoveOldest()
	}
}

// Block returns block k of an object of objSize bytes, pinned, fetching it
// when it is not cached. A block cached at another length than objSize
// gives it (fetched for a caller that gave another size) is fetched again:
// a reader never gets a block shorter or longer than its object's.
func (c *BlockCache) Block(ctx context.Context, k BlockKey, objSize int64) (Ref, error) {
	want := min(c.blockSize, objSize-k.Index*c.blockSize)
	retried := false // after a readahead run failed
	for {
		c.mu.Lock()
		if b, ok := c.lru.Get(k); ok && int64(len(b.data)) != want {
			c.lru.Remove(k) // its buffer goes back when its readers let go
		} else if ok {
			b.refs.Add(1)
			if b.spent {
				b.spent = false
				c.nspent--
			}
			c.mu.Unlock()
			c.hits.Add(1)
			return Ref{c, b, k}, nil
		}
		p, ok := c.pending[k]
		if !ok {
			p = &pendingBlock{done: make(chan struct{})}
			c.pending[k] = p
			c.misses.Add(1)
			go c.fetchRun(k, 1, objSize, []*pendingBlock{p}, nil)
		}
		p.waiters++
		c.mu.Unlock()
		select {
		case <-p.done:
		case <-ctx.Done():
			c.mu.Lock()
			select {
			case <-p.done:
				if p.err == nil {
					c.unpinLocked(p.blk) // the pin it was given
				}
			default:
				p.waiters--
			}
			c.mu.Unlock()
			return Ref{}, ctx.Err()
		}
		if p.err == nil {
			if int64(len(p.blk.data)) == want {
				return Ref{c, p.blk, k}, nil
			}
			// Fetched for a caller that gave another size: again.
			Ref{c, p.blk, k}.Release()
			continue
		}
		if errors.Is(p.err, errDropped) {
			continue // not a failure of the block: it was left to its readers
		}
		if !p.prefetch || retried {
			return Ref{}, p.err
		}
		// A readahead run failed: fetch the block on its own.
		retried = true
	}
}

// Prefetch starts fetching up to n blocks from k on, with one request for
// the run of those that are neither cached nor being fetched. It never
// blocks: when too many readahead runs are queued, the blocks are left for
// the reader, and Prefetch reports false. A run still waiting for a request
// slot when stop is set (the reader it was for went away) is dropped, and
// one being read is cut short (see abandon): its blocks are left to
// whoever asks for them. stop may be nil.
func (c *BlockCache) Prefetch(k BlockKey, n int, objSize int64, stop *atomic.Bool) bool {
	return c.startRun(k, n, objSize, stop, true)
}

// Fetch starts fetching up to n blocks from k on like Prefetch, for a reader
// that needs them now: it is never dropped, only queued behind the requests
// in flight.
func (c *BlockCache) Fetch(k BlockKey, n int, objSize int64) { c.startRun(k, n, objSize, nil, false) }

// startRun reports false when a speculative run was dropped.
func (c *BlockCache) startRun(k BlockKey, n int, objSize int64, stop *atomic.Bool, speculative bool) bool {
	nblocks := (objSize + c.blockSize - 1) / c.blockSize
	c.mu.Lock()
	// Skip the blocks already there, then take the consecutive run of
	// missing ones.
	for n > 0 && k.Index < nblocks && (c.lru.Contains(k) || c.pending[k] != nil) {
		k.Index++
		n--
	}
	var run []*pendingBlock
	for i := k; len(run) < n && i.Index < nblocks && !c.lru.Contains(i) && c.pending[i] == nil; i.Index++ {
		run = append(run, &pendingBlock{done: make(chan struct{}), prefetch: speculative})
	}
	if len(run) == 0 {
		c.mu.Unlock()
		return true
	}
	if speculative {
		select {
		case c.pf <- struct{}{}:
		default:
			c.mu.Unlock()
			return false
		}
	}
	for i, p := range run {
		c.pending[BlockKey{k.Key, k.ETag, k.Index + int64(i)}] = p
	}
	if !speculative {
		c.misses.Add(int64(len(run)))
	}
	c.mu.Unlock()
	go func() {
		if speculative {
			defer func() { <-c.pf }()
		}
		c.fetchRun(k, len(run), objSize, run, stop)
	}()
	return true
}

// errDropped fails the blocks of a readahead run whose reader went away
// before it was sent or while it was read; a reader waiting for one
// fetches it on its own.
var errDropped = errors.New("readahead dropped: its reader went away")

// fetchRun fetches blocks first..first+n-1 with one request, publishing each
// block as soon as its bytes are in. A run whose stop is set by the time it
// gets a request slot is dropped.
func (c *BlockCache) fetchRun(first BlockKey, n int, objSize int64, run []*pendingBlock, stop *atomic.Bool) {
	finish := func(i int, buf []byte, err error) {
		k := BlockKey{first.Key, first.ETag, first.Index + int64(i)}
		p := run[i]
		c.mu.Lock()
		if err == nil {
			b := &block{data: buf, cached: true}
			b.refs.Store(int32(p.waiters) + 1) // its waiters and the LRU
			c.lru.Remove(k)                    // never two buffers under one key
			c.lru.Add(k, b)
			p.blk = b
		} else {
			p.err = err
			if buf != nil {
				c.putLocked(buf)
			}
		}
		delete(c.pending, k)
		close(p.done)
		c.mu.Unlock()
	}
	done := 0
	var spare []byte // the first block's buffer, taken before the request
	fail := func(err error) {
		if spare != nil {
			c.mu.Lock()
			c.putLocked(spare)
			c.mu.Unlock()
			spare = nil
		}
		for ; done < n; done++ {
			finish(done, nil, err)
		}
	}
	select {
	case c.sem <- struct{}{}:
	case <-c.fetchCtx.Done():
		fail(c.fetchCtx.Err())
		return
	}
	defer func() { <-c.sem }()
	if stop != nil && stop.Load() {
		fail(errDropped)
		return
	}
	off := first.Index * c.blockSize
	if off >= objSize || off < 0 {
		fail(fmt.Errorf("block %d is beyond the object's %d bytes", first.Index, objSize))
		return
	}
	length := min(int64(n)*c.blockSize, objSize-off)
	// The first buffer is taken now, so that making it (a fresh chunk of
	// the arena on a new mount) overlaps the request's round trip.
	c.mu.Lock()
	spare = c.getLocked()
	c.mu.Unlock()
	c.fetches.Add(1)
	rc, err := c.fetch(c.fetchCtx, first.Key, first.ETag, off, length)
	if err != nil {
		fail(err)
		return
	}
	defer rc.Close()
	for ; done < n; done++ {
		bo := off + int64(done)*c.blockSize
		if done > 0 && c.abandon(run[done:], off+length-bo, stop) {
			fail(errDropped) // rc.Close ends the request
			return
		}
		buf := spare
		spare = nil
		if buf == nil {
			c.mu.Lock()
			buf = c.getLocked()
			c.mu.Unlock()
		}
		buf = buf[:min(c.blockSize, objSize-bo)]
		if _, err := io.ReadFull(rc, buf); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = fmt.Errorf("block %d of %q: object shorter than expected: %w", first.Index+int64(done), first.Key, io.ErrUnexpectedEOF)
			}
			finish(done, buf, err)
			done++
			fail(err)
			return
		}
		finish(done, buf, nil)
	}
}

// abandon reports whether the rest of a readahead run, left bytes in the
// blocks of rest, is not worth reading any more: its reader went away
// (stop), nobody waits for any of its blocks, and enough of it is left that
// closing the request (and later opening a new connection) costs less than
// reading it to the end. A reader that comes for one of its blocks after
// all fetches it on its own.
func (c *BlockCache) abandon(rest []*pendingBlock, left int64, stop *atomic.Bool) bool {
	if stop == nil || !stop.Load() || left < c.abandonMin {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range rest {
		if p.waiters > 0 {
			return false
		}
	}
	return true
}

// Invalidate drops every cached block of key (all versions).
func (c *BlockCache) Invalidate(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.lru.Keys() {
		if k.Key == key {
			c.lru.Remove(k)
		}
	}
}

// Purge drops every block.
func (c *BlockCache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
}
