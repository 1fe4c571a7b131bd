package fs

import (
	"syscall"

	"cosmount/cache"
)

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

// ForgetEntry asks the kernel to drop its dentry of name in the directory
// dir (a path from the root, "" for the root), as memory pressure would: an
// inode nothing else holds is then forgotten.
func (f *FS) ForgetEntry(dir, name string) syscall.Errno {
	d := f.dirAt(dir)
	if d == nil {
		return syscall.ENOENT
	}
	return d.NotifyEntry(name)
}

// DeleteWaiters is how many requests wait for a pending delete now.
func (f *FS) DeleteWaiters() int64 { return f.deleteWaits.Load() }

// Detached is how many forgotten files with work pending are noted.
func (f *FS) Detached() int {
	f.detachedMu.Lock()
	defer f.detachedMu.Unlock()
	return len(f.detached)
}

// MountIDs parses mountinfo text for the ids of the device at mountpoint.
func MountIDs(info, mountpoint string) []int { return mountIDs([]byte(info), mountpoint) }

// ParseFdinfo reads /proc/PID/fdinfo/N text: flags, mount id, inode number.
func ParseFdinfo(text string) (flags, mnt int, ino uint64, ok bool) {
	fi, ok := parseFdinfo([]byte(text))
	return fi.flags, fi.mnt, fi.ino, ok
}

// TopMountAt is the id of the mount mountinfo text lists last at mountpoint.
func TopMountAt(info, mountpoint string) int { return topMountAt([]byte(info), mountpoint) }

// CacheUsed is the space the write-back files take in the cache, as the
// cache accounts it.
func (f *FS) CacheUsed() int64 { return f.store.Used() }

// UnescapeMountinfo undoes mountinfo's octal escapes.
var UnescapeMountinfo = unescapeMountinfo

// MountedAtIn is MountedAt on mountinfo text.
func MountedAtIn(info, path string) (string, bool) { return mountedAt([]byte(info), path) }

// HasChild reports whether the node tree still holds name in the directory
// dir (a path from the root, "" for the root).
func (f *FS) HasChild(dir, name string) bool {
	d := f.dirAt(dir)
	return d != nil && d.GetChild(name) != nil
}
