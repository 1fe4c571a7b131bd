package fs

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
