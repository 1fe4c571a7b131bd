// Package cache keeps object data close to the filesystem: a block cache for
// reads (an LRU of fixed-size blocks bounded in bytes) and write-back files
// for writes.
//
// Lock order: BlockCache has no lock of its own beyond the LRU's internal one
// and the singleflight group's; neither is held while a block is fetched.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// BlockKey names one block of one version of an object.
type BlockKey struct {
	Key   string
	ETag  string
	Index int64
}

func (k BlockKey) flightKey() string {
	return k.ETag + "\x00" + strconv.FormatInt(k.Index, 10) + "\x00" + k.Key
}

// Fetcher reads length bytes of the object version named by key and etag
// starting at off. It returns a stream the cache reads fully and closes.
type Fetcher func(ctx context.Context, key, etag string, off, length int64) (io.ReadCloser, error)

// BlockCache is an LRU of fixed-size blocks, bounded in bytes: it holds at
// most MaxBytes/BlockSize blocks and no block is larger than BlockSize.
// Concurrent requests for one block cause one fetch.
type BlockCache struct {
	blockSize int64
	lru       *lru.Cache[BlockKey, []byte]
	flight    singleflight.Group
	fetch     Fetcher
	// fetchCtx bounds shared fetches: one waiter giving up must not cancel
	// the fetch the others wait for.
	fetchCtx context.Context
	sem      chan struct{} // fetches in progress (taken by a flight's leader only)
	pf       chan struct{} // prefetch goroutines

	hits, misses, fetches atomic.Int64
}

// BlockCacheOptions configures a BlockCache.
type BlockCacheOptions struct {
	BlockSize int64 // bytes per block (1 MiB when 0)
	MaxBytes  int64 // memory bound (64 MiB when 0; at least two blocks)
	// MaxFetches bounds concurrent block fetches (16 when 0).
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
	}, nil
}

// BlockSize is the size of every block but an object's last.
func (c *BlockCache) BlockSize() int64 { return c.blockSize }

// Stats reports hits, misses and fetches so far.
func (c *BlockCache) Stats() (hits, misses, fetches int64) {
	return c.hits.Load(), c.misses.Load(), c.fetches.Load()
}

// Cached reports whether block k is in the cache.
func (c *BlockCache) Cached(k BlockKey) bool { return c.lru.Contains(k) }

// Block returns block k of an object of objSize bytes, fetching it when it is
// not cached. The returned slice must not be modified.
func (c *BlockCache) Block(ctx context.Context, k BlockKey, objSize int64) ([]byte, error) {
	if b, ok := c.lru.Get(k); ok {
		c.hits.Add(1)
		return b, nil
	}
	c.misses.Add(1)
	ch := c.flight.DoChan(k.flightKey(), func() (any, error) {
		return c.load(k, objSize)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Prefetch starts fetching block k in the background unless it is cached or
// already being fetched. It never blocks: when every fetch slot is taken, the
// block is left for the reader to fetch on demand.
func (c *BlockCache) Prefetch(k BlockKey, objSize int64) {
	if c.lru.Contains(k) {
		return
	}
	select {
	case c.pf <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-c.pf }()
		// DoChan joins a fetch already running for the same block; only
		// the leader of a fetch takes a fetch slot, so a joiner never
		// holds one while it waits.
		<-c.flight.DoChan(k.flightKey(), func() (any, error) {
			return c.load(k, objSize)
		})
	}()
}

// load fetches a block for a reader, taking a fetch slot.
func (c *BlockCache) load(k BlockKey, objSize int64) ([]byte, error) {
	select {
	case c.sem <- struct{}{}:
	case <-c.fetchCtx.Done():
		return nil, c.fetchCtx.Err()
	}
	defer func() { <-c.sem }()
	return c.loadLocked(k, objSize)
}

// loadLocked fetches a block; the caller holds a fetch slot.
func (c *BlockCache) loadLocked(k BlockKey, objSize int64) ([]byte, error) {
	if b, ok := c.lru.Get(k); ok {
		return b, nil
	}
	off := k.Index * c.blockSize
	if off >= objSize || off < 0 {
		return nil, fmt.Errorf("block %d is beyond the object's %d bytes", k.Index, objSize)
	}
	n := min(c.blockSize, objSize-off)
	c.fetches.Add(1)
	rc, err := c.fetch(c.fetchCtx, k.Key, k.ETag, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("block %d of %q: object shorter than expected: %w", k.Index, k.Key, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	c.lru.Add(k, buf)
	return buf, nil
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
