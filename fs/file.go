package fs

import (
	"context"
	"io"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"cosmount/cache"
	"cosmount/transport"
)

// File is an object: a regular file or a symlink.
//
// Lock order: mu guards meta, openETag and target; never held across I/O.
type File struct {
	gofs.Inode
	fsys *FS

	mu       sync.Mutex
	meta     objMeta
	openETag string // ETag at the last open, to keep the page cache
	target   string // symlink target once read
}

var (
	_ = (gofs.NodeGetattrer)((*File)(nil))
	_ = (gofs.NodeOpener)((*File)(nil))
	_ = (gofs.NodeReadlinker)((*File)(nil))
)

func (n *File) key() string { return n.fsys.keyOf(n.Path(n.fsys.root.EmbeddedInode())) }

func (n *File) setMeta(m objMeta) {
	n.mu.Lock()
	if n.meta.etag != m.etag {
		n.target = ""
	}
	n.meta = m
	n.mu.Unlock()
}

func (n *File) getMeta() objMeta {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.meta
}

func (n *File) fileType() uint32 { return n.getMeta().fileType() }

// refresh revalidates the node's attributes through the stat cache.
func (n *File) refresh(ctx context.Context) (objMeta, syscall.Errno) {
	m, errno := n.fsys.stat(ctx, n.key())
	if errno != 0 {
		return objMeta{}, errno
	}
	if m.dir {
		// Became a directory behind our back: the kernel will look it up
		// again.
		return objMeta{}, syscall.ESTALE
	}
	n.setMeta(m)
	return m, 0
}

// Getattr implements NodeGetattrer.
func (n *File) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var m objMeta
	if h, ok := fh.(*handle); ok {
		// An open file keeps the version it opened.
		m = n.getMeta()
		m.size, m.etag = h.size, h.etag
	} else {
		var errno syscall.Errno
		if m, errno = n.refresh(ctx); errno != 0 {
			return errno
		}
	}
	n.fsys.fillAttr(m, &out.Attr)
	out.SetTimeout(n.fsys.opt.StatTTL)
	return 0
}

// Open implements NodeOpener.
func (n *File) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	m, errno := n.refresh(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	n.mu.Lock()
	keep := n.openETag == m.etag && m.etag != ""
	n.openETag = m.etag
	n.mu.Unlock()
	var fuseFlags uint32
	if keep {
		// Unchanged since the last open: the kernel's page cache is good.
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	}
	return &handle{fsys: n.fsys, key: n.key(), etag: m.etag, size: m.size}, fuseFlags, 0
}

// Readlink implements NodeReadlinker: a symlink's target is its body.
func (n *File) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	m, errno := n.refresh(ctx)
	if errno != 0 {
		return nil, errno
	}
	if m.fileType() != syscall.S_IFLNK {
		return nil, syscall.EINVAL
	}
	n.mu.Lock()
	t := n.target
	n.mu.Unlock()
	if t != "" {
		return []byte(t), 0
	}
	key := n.key()
	out, err := n.fsys.bucket.Get(ctx, &transport.GetInput{Key: key, Length: -1, IfMatch: m.etag})
	if err != nil {
		return nil, n.fsys.errno("readlink", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, 4097))
	if err != nil {
		return nil, n.fsys.errno("readlink", key, err)
	}
	if len(b) == 0 || len(b) > 4096 {
		n.fsys.warnOnce(key, "symlink object's target is empty or longer than 4096 bytes")
		return nil, syscall.EIO
	}
	n.mu.Lock()
	n.target = string(b)
	n.mu.Unlock()
	return b, 0
}

// fillAttr turns attributes into what the kernel gets.
func (f *FS) fillAttr(m objMeta, a *fuse.Attr) {
	a.Mode = m.mode
	a.Size = uint64(m.size)
	a.Blocks = (uint64(m.size) + 511) / 512
	a.Blksize = uint32(f.opt.BlockSize)
	a.Nlink = 1
	if m.dir {
		a.Nlink = 2
	}
	a.Owner = fuse.Owner{Uid: m.uid, Gid: m.gid}
	sec, nsec := uint64(m.mtime.Unix()), uint32(m.mtime.Nanosecond())
	if m.mtime.Before(time.Unix(0, 0)) {
		sec, nsec = 0, 0
	}
	a.Mtime, a.Mtimensec = sec, nsec
	a.Ctime, a.Ctimensec = sec, nsec
	a.Atime, a.Atimensec = sec, nsec
}

// handle is an open file: one version of one object, read through the
// block cache with a readahead window that grows while reads are sequential.
//
// Lock order: mu guards the readahead state only.
type handle struct {
	fsys *FS
	key  string
	etag string
	size int64

	mu      sync.Mutex
	nextOff int64 // where a sequential reader reads next
	window  int   // blocks to keep fetched ahead
}

var _ = (gofs.FileReader)((*handle)(nil))

// Read implements FileReader.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= h.size || len(dest) == 0 {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), h.size)
	bs := h.fsys.blocks.BlockSize()
	first, last := off/bs, (end-1)/bs
	h.readahead(off, end, last)
	if first == last {
		// Served straight from the cached block, without a copy.
		b, err := h.block(ctx, first)
		if err != nil {
			return nil, h.fsys.errno("read", h.key, err)
		}
		lo := off - first*bs
		return fuse.ReadResultData(b[lo : lo+(end-off)]), 0
	}
	n := 0
	for i := first; i <= last; i++ {
		b, err := h.block(ctx, i)
		if err != nil {
			return nil, h.fsys.errno("read", h.key, err)
		}
		lo := max(off-i*bs, 0)
		hi := min(end-i*bs, int64(len(b)))
		n += copy(dest[n:], b[lo:hi])
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) block(ctx context.Context, i int64) ([]byte, error) {
	return h.fsys.blocks.Block(ctx, cache.BlockKey{Key: h.key, ETag: h.etag, Index: i}, h.size)
}

// readahead keeps the window of blocks after lastBlock fetching while the
// reader stays sequential; a random reader gets no readahead at all.
func (h *handle) readahead(off, end, lastBlock int64) {
	bs := h.fsys.blocks.BlockSize()
	h.mu.Lock()
	// The kernel sends a sequential stream as several requests at once, so
	// they can arrive slightly out of order: a jump of a few blocks still
	// counts as sequential.
	sequential := off == 0 || (off >= h.nextOff-4*bs && off <= h.nextOff+4*bs)
	if sequential {
		if h.window == 0 {
			h.window = 2
		} else if h.window < h.fsys.opt.MaxReadahead {
			h.window = min(h.window*2, h.fsys.opt.MaxReadahead)
		}
	} else {
		h.window = 0
	}
	if end > h.nextOff || !sequential {
		h.nextOff = end
	}
	window := h.window
	h.mu.Unlock()
	nblocks := (h.size + bs - 1) / bs
	for i := lastBlock + 1; i <= lastBlock+int64(window) && i < nblocks; i++ {
		h.fsys.blocks.Prefetch(cache.BlockKey{Key: h.key, ETag: h.etag, Index: i}, h.size)
	}
}
