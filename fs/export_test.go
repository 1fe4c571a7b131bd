package fs

import "cosmount/cache"

// Streams is how many sequential readers share the readahead budget now.
func (f *FS) Streams() int64 { return f.streams.Load() }

// ReadaheadLimit is the window, in blocks, a sequential reader may have now.
func (f *FS) ReadaheadLimit() int { return f.readaheadLimit() }

// PurgeReadCache drops every cached block, as memory pressure on the cache
// would.
func (f *FS) PurgeReadCache() { f.blocks.Purge() }

// ReadCacheFetching is how many blocks are being fetched.
func (f *FS) ReadCacheFetching() int { return f.blocks.Fetching() }

// StatusTgid finds the Tgid line of /proc/PID/status text.
var StatusTgid = statusTgid

// CachedBlockLen is the length of block i of key's version etag in the
// read cache, or -1 when it is not cached.
func (f *FS) CachedBlockLen(key, etag string, i int64) int {
	return f.blocks.CachedLen(cache.BlockKey{Key: key, ETag: etag, Index: i})
}
