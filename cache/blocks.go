// Package cache keeps object data close to the filesystem: a block cache for
// reads (an LRU of fixed-size blocks bounded in bytes) and write-back files
// for writes.
//
// Lock order: BlockCache.mu guards the pending map only; it is never held
// while a block is fetched, nor while the LRU's own lock is taken.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
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

// pendingBlock is a block being fetched; done closes when data or err is set.
type pendingBlock struct {
	done chan struct{}
	data []byte
	err  error
	// prefetch: fetched by a readahead run, whose failure a reader retries
	// on its own rather than reports.
	prefetch bool
}

// BlockCache is an LRU of fixed-size blocks, bounded in bytes: it holds at
// most MaxBytes/BlockSize blocks and no block is larger than BlockSize.
// Concurrent requests for one block cause one fetch; readahead fetches a run
// of consecutive blocks with one request.
type BlockCache struct {
	blockSize int64
	lru       *lru.Cache[BlockKey, []byte]
	fetch     Fetcher
	// fetchCtx bounds fetches: one waiter giving up must not cancel the
	// fetch others wait for.
	fetchCtx context.Context
	sem      chan struct{} // requests in flight
	pf       chan struct{} // readahead runs queued or in flight

	mu      sync.Mutex
	pending map[BlockKey]*pendingBlock

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
	l, err := lru.New[BlockKey, []byte](n)
	if err != nil {
		return nil, err
	}
	return &BlockCache{
		blockSize: opt.BlockSize,
		lru:       l,
		fetch:     fetch,
		fetchCtx:  opt.Context,
		sem:       make(chan struct{}, opt.MaxFetches),
		pf:        make(chan struct{}, opt.MaxFetches),
		pending:   map[BlockKey]*pendingBlock{},
	}, nil
}

// BlockSize is the size of every block but an object's last.
func (c *BlockCache) BlockSize() int64 { return c.blockSize }

// Stats reports hits, misses and requests sent so far.
func (c *BlockCache) Stats() (hits, misses, fetches int64) {
	return c.hits.Load(), c.misses.Load(), c.fetches.Load()
}

// Cached reports whether block k is in the cache.
func (c *BlockCache) Cached(k BlockKey) bool { return c.lru.Contains(k) }

// Block returns block k of an object of objSize bytes, fetching it when it is
// not cached. The returned slice must not be modified.
func (c *BlockCache) Block(ctx context.Context, k BlockKey, objSize int64) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		if b, ok := c.lru.Get(k); ok {
			c.hits.Add(1)
			return b, nil
		}
		c.mu.Lock()
		p, ok := c.pending[k]
		if !ok {
			p = &pendingBlock{done: make(chan struct{})}
			c.pending[k] = p
			c.mu.Unlock()
			c.misses.Add(1)
			go c.fetchRun(k, 1, objSize, []*pendingBlock{p})
		} else {
			c.mu.Unlock()
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if p.err == nil {
			return p.data, nil
		}
		if !p.prefetch || attempt > 0 {
			return nil, p.err
		}
		// A readahead run failed: fetch the block on its own.
	}
}

// Prefetch starts fetching up to n blocks from k on, with one request for
// the run of those that are neither cached nor being fetched. It never
// blocks: when too many runs are queued, the blocks are left for the reader.
func (c *BlockCache) Prefetch(k BlockKey, n int, objSize int64) {
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
		run = append(run, &pendingBlock{done: make(chan struct{}), prefetch: true})
	}
	if len(run) == 0 {
		c.mu.Unlock()
		return
	}
	select {
	case c.pf <- struct{}{}:
	default:
		c.mu.Unlock()
		return
	}
	for i, p := range run {
		c.pending[BlockKey{k.Key, k.ETag, k.Index + int64(i)}] = p
	}
	c.mu.Unlock()
	go func() {
		defer func() { <-c.pf }()
		c.fetchRun(k, len(run), objSize, run)
	}()
}

// fetchRun fetches blocks first..first+n-1 with one request, publishing each
// block as soon as its bytes are in.
func (c *BlockCache) fetchRun(first BlockKey, n int, objSize int64, run []*pendingBlock) {
	finish := func(i int, data []byte, err error) {
		k := BlockKey{first.Key, first.ETag, first.Index + int64(i)}
		if err == nil {
			c.lru.Add(k, data)
		}
		c.mu.Lock()
		delete(c.pending, k)
		c.mu.Unlock()
		run[i].data, run[i].err = data, err
		close(run[i].done)
	}
	done := 0
	fail := func(err error) {
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
	off := first.Index * c.blockSize
	if off >= objSize || off < 0 {
		fail(fmt.Errorf("block %d is beyond the object's %d bytes", first.Index, objSize))
		return
	}
	length := min(int64(n)*c.blockSize, objSize-off)
	c.fetches.Add(1)
	rc, err := c.fetch(c.fetchCtx, first.Key, first.ETag, off, length)
	if err != nil {
		fail(err)
		return
	}
	defer rc.Close()
	for ; done < n; done++ {
		bo := off + int64(done)*c.blockSize
		buf := make([]byte, min(c.blockSize, objSize-bo))
		if _, err := io.ReadFull(rc, buf); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = fmt.Errorf("block %d of %q: object shorter than expected: %w", first.Index+int64(done), first.Key, io.ErrUnexpectedEOF)
			}
			fail(err)
			return
		}
		finish(done, buf, nil)
	}
}

// Invalidate drops every cached block of key (all versions).
func (c *BlockCache) Invalidate(key string) {
	for _, k := range c.lru.Keys() {
		if k.Key == key {
			c.lru.Remove(k)
		}
	}
}

// Purge drops every block.
func (c *BlockCache) Purge() { c.lru.Purge() }
