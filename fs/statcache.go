package fs

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// statEntry is the cached answer for one key, or the promise of one while a
// HEAD/LIST for it is in flight.
type statEntry struct {
	done    chan struct{}
	meta    objMeta
	exists  bool
	failed  bool
	expires time.Time
	at      time.Time // when the answer was known
}

func (e *statEntry) pending() bool {
	select {
	case <-e.done:
		return false
	default:
		return true
	}
}

// wait returns the entry's answer once it is there.
func (e *statEntry) wait(ctx context.Context) (objMeta, syscall.Errno) {
	select {
	case <-e.done:
	case <-ctx.Done():
		return objMeta{}, syscall.EINTR
	}
	switch {
	case e.failed:
		return objMeta{}, syscall.EIO
	case !e.exists:
		return objMeta{}, syscall.ENOENT
	}
	return e.meta, 0
}

// statCache holds attributes and negative entries with their TTLs, bounded
// in entries. One request per key is in flight at a time.
type statCache struct {
	mu  sync.Mutex
	lru *lru.Cache[string, *statEntry]
	now func() time.Time
}

func newStatCache(size int) *statCache {
	l, _ := lru.New[string, *statEntry](size)
	return &statCache{lru: l, now: time.Now}
}

// begin returns the live entry for key (fresh or in flight) with owner
// false, or a new pending entry with owner true: the caller must then
// finish or fail it.
func (c *statCache) begin(key string) (e *statEntry, owner bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.lru.Get(key); ok && (e.pending() || c.now().Before(e.expires)) {
		return e, false
	}
	e = &statEntry{done: make(chan struct{})}
	c.lru.Add(key, e)
	return e, true
}

// finish resolves e.
func (c *statCache) finish(key string, e *statEntry, m objMeta, exists bool, ttl time.Duration) {
	now := c.now()
	e.meta, e.exists, e.expires, e.at = m, exists, now.Add(ttl), now
	close(e.done)
}

// fail resolves e as failed and drops it so the next caller asks again.
func (c *statCache) fail(key string, e *statEntry) {
	e.failed = true
	close(e.done)
	c.mu.Lock()
	if cur, ok := c.lru.Peek(key); ok && cur == e {
		c.lru.Remove(key)
	}
	c.mu.Unlock()
}

// put stores a known answer (from a listing or this mount's own change).
func (c *statCache) put(key string, m objMeta, exists bool, ttl time.Duration) {
	now := c.now()
	e := &statEntry{done: make(chan struct{}), meta: m, exists: exists, expires: now.Add(ttl), at: now}
	close(e.done)
	c.mu.Lock()
	c.lru.Add(key, e)
	c.mu.Unlock()
}

// fresh returns key's resolved, unexpired entry.
func (c *statCache) fresh(key string) (*statEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Peek(key)
	if !ok || e.pending() || !c.now().Before(e.expires) || e.failed {
		return nil, false
	}
	return e, true
}

// forget drops what is known of key.
func (c *statCache) forget(key string) {
	c.mu.Lock()
	c.lru.Remove(key)
	c.mu.Unlock()
}

// forgetPrefix drops what is known of every key under prefix.
func (c *statCache) forgetPrefix(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.lru.Keys() {
		if strings.HasPrefix(k, prefix) {
			c.lru.Remove(k)
		}
	}
}

// known reports whether anything is known of key: an answer not expired
// (positive or negative) or one in flight.
func (c *statCache) known(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Peek(key)
	// failed and expires are written before done is closed, without the
	// lock: read only once pending() said it is closed.
	return ok && (e.pending() || (!e.failed && c.now().Before(e.expires)))
}

// forgetIfResolved drops key's answer unless a request for it is in flight.
func (c *statCache) forgetIfResolved(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.lru.Peek(key); ok && !e.pending() {
		c.lru.Remove(key)
	}
}
