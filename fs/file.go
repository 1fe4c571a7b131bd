package fs

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"cosmount/cache"
	"cosmount/transport"
)

// File is an object: a regular file or a symlink.
//
// Lock order: upMu (one upload at a time), then mu. mu guards meta,
// openETag, target, opens and ws; it is never held across a bucket call.
type File struct {
	gofs.Inode
	noXattrs
	fsys *FS

	upMu sync.Mutex

	mu       sync.Mutex
	meta     objMeta
	openETag string      // ETag at the last open, to keep the page cache
	target   string      // symlink target once read
	opens    int         // open handles
	ws       *writeState // set by _setWS
	// hasWS mirrors ws != nil, so that a read of a file nobody writes
	// takes no lock of the file's.
	hasWS atomic.Bool
	// versions counts the times an open found the object's bytes changed
	// behind the mount: a handle opened before reads nothing more (ESTALE)
	// rather than put its version's bytes into the page cache the newer
	// opens share.
	versions atomic.Uint64
	// deletes: objects it was read from, unlinked or renamed away while
	// open; they go at the last close.
	deletes  []objectVersion
	unlinked bool // its name is gone: fstat shows no links
	// metaDirty: meta holds attributes the object does not have yet (see
	// metaflush.go).
	metaDirty bool
	// lastKey: the key it last had in the tree (see detached.go).
	lastKey atomic.Pointer[string]
	// keyUnknown: since a rename moved the file, this mount does not know
	// which object its key holds (meta.etag is not it) until it uploads;
	// keyHolds, when set, is what the rename found there (its ETag, ""
	// for none).
	keyUnknown bool
	keyHolds   *string
}

var (
	_ = (gofs.NodeGetattrer)((*File)(nil))
	_ = (gofs.NodeOpener)((*File)(nil))
	_ = (gofs.NodeReadlinker)((*File)(nil))
	_ = (gofs.NodeSetattrer)((*File)(nil))
	_ = (gofs.NodeOnForgetter)((*File)(nil))
)

// setMeta takes the bucket's attributes m, unless the local copy or
// attributes set here and not written yet are newer; it returns the
// attributes the file has.
func (n *File) setMeta(m objMeta) objMeta {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ws != nil || n.metaDirty {
		// The local copy or attributes are newer than what the bucket says.
		m := n.meta
		if n.ws != nil {
			m.size = n.ws.size
		}
		return m
	}
	if n.meta.etag != m.etag {
		n.target = ""
	}
	n.meta = m
	return m
}

// getMetaWithSize is getMeta with the local copy's size when there is one.
func (n *File) getMetaWithSize() objMeta {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.meta
	if n.ws != nil {
		m.size = n.ws.size
	}
	return m
}

func (n *File) getMeta() objMeta {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.meta
}

func (n *File) fileType() uint32 { return n.getMeta().fileType() }

// refresh revalidates the node's attributes through the stat cache; a file
// being written answers from its local copy.
func (n *File) refresh(ctx context.Context) (objMeta, syscall.Errno) {
	n.mu.Lock()
	if n.ws != nil {
		m := n.meta
		m.size = n.ws.size
		n.mu.Unlock()
		return m, 0
	}
	n.mu.Unlock()
	m, errno := n.fsys.stat(ctx, n.key())
	if errno != 0 {
		return objMeta{}, errno
	}
	if m.dir || m.fileType() != n.fileType() {
		// The name now holds a directory, or a symlink where this node is
		// a file (or the reverse): not this node's object any more. The
		// kernel looks the name up again.
		return objMeta{}, syscall.ESTALE
	}
	return n.setMeta(m), 0
}

// refreshExact is refresh with the attributes read from the object's
// metadata when those known came from a listing alone (--fast-list): they
// are about to be written back with a change, or its extended attributes
// read, and a listing has neither mode, owner, mtime nor xattrs.
func (n *File) refreshExact(ctx context.Context) (objMeta, syscall.Errno) {
	m, errno := n.refresh(ctx)
	if errno != 0 || !m.fromListing {
		return m, errno
	}
	f := n.fsys
	key := n.key()
	o, err := f.bucket.Head(ctx, &transport.HeadInput{Key: key})
	if err != nil {
		return objMeta{}, f.errno("stat", key, err)
	}
	m = f.metaFromObject(o)
	if m.fileType() != n.fileType() {
		return objMeta{}, syscall.ESTALE
	}
	n.setMeta(m)
	f.stats.put(key, m, true, f.opt.StatTTL)
	return m, 0
}

// Getattr implements NodeGetattrer.
func (n *File) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	var m objMeta
	if h, ok := fh.(*handle); ok && !h.writable && !n.writing() {
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
	n.mu.Lock()
	if n.unlinked {
		out.Nlink = 0
	}
	n.mu.Unlock()
	out.SetTimeout(n.fsys.opt.StatTTL)
	return 0
}

// writing reports whether the file has a local copy.
func (n *File) writing() bool { return n.hasWS.Load() }

// Open implements NodeOpener.
func (n *File) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	writable := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if (writable || flags&syscall.O_TRUNC != 0) && n.fsys.opt.ReadOnly {
		return nil, 0, syscall.EROFS
	}
	refresh := n.refresh
	if writable || flags&syscall.O_TRUNC != 0 {
		refresh = n.refreshExact // its attributes go up with its data
	}
	m, errno := refresh(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if writable || flags&syscall.O_TRUNC != 0 {
		if m.fileType() == syscall.S_IFLNK {
			return nil, 0, syscall.ELOOP
		}
		if err := n._startWrite(flags&syscall.O_TRUNC != 0); err != nil {
			return nil, 0, n.fsys.errno("open", n.key(), err)
		}
	}
	n.opens++
	var fuseFlags uint32
	if n.ws == nil {
		keep := n.openETag == m.etag && m.etag != ""
		if !keep && n.openETag != "" {
			n.versions.Add(1)
		}
		n.openETag = m.etag
		if keep {
			// Unchanged since the last open: the kernel's page cache is good.
			fuseFlags |= fuse.FOPEN_KEEP_CACHE
		}
	} else {
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	}
	fuseFlags |= WriteOnlyFlags(flags)
	h := &handle{fsys: n.fsys, node: n, key: n.key(), etag: m.etag, size: m.size, writable: writable, version: n.versions.Load()}
	if writable {
		h.opener = callerTgid(ctx)
	}
	return h, fuseFlags, 0
}

// WriteOnlyFlags is what cosmount adds to its answer to an open or create
// with flags (the FUSE ceiling of the benchmark adds the same): a write-only
// handle (cp, dd, tar) writes past the kernel's page cache. Filling it costs
// the writer a copy into fresh pages per byte, and they would not be used:
// the upload at close changes the ETag, and the next open drops the page
// cache. A write-only handle cannot be mmapped, and the kernel drops the
// pages a write through it replaces, so other handles still read what was
// written.
//
// A handle opened for writing with O_DIRECT gets it too: through the page
// cache's direct path the kernel splits a large write into requests sent
// all at once, which may arrive out of order and stop the file streaming
// (a file larger than the cache then fails); on this path a synchronous
// write's requests go one after the other.
func WriteOnlyFlags(flags uint32) uint32 {
	acc := flags & syscall.O_ACCMODE
	if acc == syscall.O_WRONLY || (acc != syscall.O_RDONLY && flags&oDirect != 0) {
		return fuse.FOPEN_DIRECT_IO
	}
	return 0
}

// Readlink implements NodeReadlinker: a symlink's target is its body.
func (n *File) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	ctx = uninterrupted(ctx)
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
	fsys     *FS
	node     *File
	key      string
	etag     string
	size     int64
	writable bool
	version  uint64 // File.versions at the open
	// opener is the process (thread group) that opened the handle for
	// writing: only its close uploads (see Flush).
	opener int

	mu      sync.Mutex
	nextOff int64 // where a sequential reader reads next
	window  int   // blocks to keep fetched ahead
	// streaming: counted in FS.streams (a sequential reader short of the
	// end of the file).
	streaming bool
	// aheadTo: the runs of blocks before it were asked for since the
	// reader became sequential, so they are not looked up again per read.
	aheadTo int64
	// released: closed; readahead runs for it not sent yet are dropped.
	released atomic.Bool
}

var (
	_ = (gofs.FileReader)((*handle)(nil))
	_ = (gofs.FileFlusher)((*handle)(nil))
	_ = (gofs.FileFsyncer)((*handle)(nil))
	_ = (gofs.FileReleaser)((*handle)(nil))
)

// Read implements FileReader.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n := h.node
	var ws *writeState
	var size int64
	var base objMeta
	var baseKey string
	var baseEnd int64
	var gone bool
	var restores uint64
	if n.hasWS.Load() {
		n.mu.Lock()
		if ws = n.ws; ws != nil {
			size, base, baseKey, baseEnd = ws.size, ws.base, ws.baseKey, ws.baseEnd
			// Checked with the base it goes with: an upload that
			// completes makes the bytes that left the cache its new
			// base's.
			gone = off < size && ws.wf.Discarded(cache.Range{Off: off, Len: min(off+int64(len(dest)), size) - off})
			restores = ws.wf.Restores()
		}
		n.mu.Unlock()
	}
	if gone {
		return nil, h.fsys.errno("read", baseKey, cache.ErrDiscarded)
	}
	if ws != nil {
		res, errno, again := h.readLocal(uninterrupted(ctx), ws.wf, restores, baseKey, base, baseEnd, size, dest, off)
		if again {
			// An upload completed meanwhile: read again with its base.
			return h.Read(ctx, dest, off)
		}
		return res, errno
	}
	if n.versions.Load() != h.version {
		// A later open found other bytes: the kernel's page cache is
		// theirs now.
		return nil, syscall.ESTALE
	}
	if off >= h.size || len(dest) == 0 {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), h.size)
	bs := h.fsys.blocks.BlockSize()
	first, last := off/bs, (end-1)/bs
	if last > first {
		// The blocks this read needs go in one request.
		h.fsys.blocks.Fetch(cache.BlockKey{Key: h.key, ETag: h.etag, Index: first}, int(last-first+1), h.size)
	}
	seq := h.readahead(off, end, last)
	res := newBlocksResult()
	for i := first; i <= last; i++ {
		// A block's fetch runs under the cache's own context; only the
		// wait for it would see ctx, and a read waits it out (see
		// uninterrupted).
		r, err := h.block(context.Background(), i)
		if err != nil {
			res.Done()
			return nil, h.fsys.errno("read", h.key, err)
		}
		b := r.Data()
		lo := max(off-i*bs, 0)
		hi := min(end-i*bs, int64(len(b)))
		res.refs = append(res.refs, r)
		res.slices = append(res.slices, b[lo:hi])
	}
	if seq {
		// A sequential reader is done with the blocks it read to their
		// end: the cache gives them up first.
		spent := res.refs
		if lastEnd := min((last+1)*bs, h.size); end < lastEnd {
			spent = spent[:len(spent)-1]
		}
		if len(spent) > 0 {
			h.fsys.blocks.Spent(spent...)
		}
	}
	return res, 0
}

// blocksResult answers a read with slices of cached blocks, pinned until
// go-fuse has written them to the kernel (Done): no copy, and the cache
// cannot reuse a buffer that is still being sent. Results are pooled: a
// read of cached blocks allocates nothing of its own.
type blocksResult struct {
	refs   []cache.Ref
	slices [][]byte
	// Room for the blocks of a read of up to MaxRead (1 MiB) in 256 KiB
	// blocks, unaligned; larger blocks need fewer, and more grow the slices.
	refsBuf   [5]cache.Ref
	slicesBuf [5][]byte
}

var blocksResults = sync.Pool{New: func() any {
	r := new(blocksResult)
	r.refs, r.slices = r.refsBuf[:0], r.slicesBuf[:0]
	return r
}}

func newBlocksResult() *blocksResult { return blocksResults.Get().(*blocksResult) }

func (r *blocksResult) Size() int {
	n := 0
	for _, s := range r.slices {
		n += len(s)
	}
	return n
}

// Slices lets go-fuse write the blocks with one writev.
func (r *blocksResult) Slices() ([][]byte, fuse.Status) { return r.slices, fuse.OK }

func (r *blocksResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	buf = buf[:0]
	for _, s := range r.slices {
		buf = append(buf, s...)
	}
	return buf, fuse.OK
}

// Done releases the blocks and returns the result to the pool; go-fuse
// calls it once, after the reply is written, and forgets the result.
func (r *blocksResult) Done() {
	for i, ref := range r.refs {
		ref.Release()
		r.refs[i] = cache.Ref{}
	}
	clear(r.slices)
	r.refs, r.slices = r.refs[:0], r.slices[:0]
	blocksResults.Put(r)
}

// readLocal reads a file being written from its local copy, fetching what
// it lacks from the object it started from. It reports again when the
// ranges the copy lacked changed base meanwhile (see WriteFile.Restores).
func (h *handle) readLocal(ctx context.Context, wf *cache.WriteFile, restores uint64, baseKey string, base objMeta, baseEnd, size int64, dest []byte, off int64) (res fuse.ReadResult, errno syscall.Errno, again bool) {
	if off >= size {
		return fuse.ReadResultData(nil), 0, false
	}
	end := min(off+int64(len(dest)), size)
	buf := dest[:end-off]
	r := cache.Range{Off: off, Len: end - off}
	// What the local copy holds is read from it; what it lacks from the
	// base object, through the read cache, without growing the local copy
	// (which the upload then copies from the base on the server); zeros
	// past the base's end.
	local := func(from, to int64) error {
		p := buf[from-off : to-off]
		k, err := wf.ReadAt(p, from)
		if err != nil && err != io.EOF {
			return err
		}
		clear(p[k:]) // past the local file's end
		return nil
	}
	pos := off
	for _, m := range wf.Missing(r) {
		if err := local(pos, m.Off); err != nil {
			return nil, h.fsys.errno("read", baseKey, err), false
		}
		if wf.Restores() != restores {
			// What was read may be a hole left by a part that went to
			// an upload completed meanwhile.
			return nil, 0, true
		}
		if wf.Discarded(m) {
			// Left the cache since the check in Read: not in base.
			return nil, h.fsys.errno("read", baseKey, cache.ErrDiscarded), false
		}
		if wf.Restores() != restores {
			// Left the cache and came back as a new base's.
			return nil, 0, true
		}
		clear(buf[m.Off-off : m.End()-off])
		if base.etag != "" {
			err := h.fsys.eachBaseSlice(ctx, baseKey, base, baseEnd, m, func(b []byte, at int64) error {
				copy(buf[at-off:], b)
				return nil
			})
			if err != nil {
				if h.node.waitBaseMoved(base.etag) {
					// An upload completed meanwhile and replaced the
					// object (412 on the old ETag): read again from the
					// new base.
					return nil, 0, true
				}
				return nil, h.fsys.errno("read", baseKey, err), false
			}
		}
		pos = m.End()
	}
	if err := local(pos, end); err != nil {
		return nil, h.fsys.errno("read", baseKey, err), false
	}
	if wf.Restores() != restores {
		return nil, 0, true
	}
	return fuse.ReadResultData(buf), 0, false
}

// waitBaseMoved reports whether the local copy's base is no longer the
// object of ETag etag, once the upload of the file in flight, if any, is
// done (it may be what replaced that object).
func (n *File) waitBaseMoved(etag string) bool {
	moved := func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.ws != nil && n.ws.base.etag != etag
	}
	if moved() {
		return true
	}
	if !n.upMu.TryLock() {
		n.upMu.Lock() // an upload in flight
	}
	n.upMu.Unlock()
	return moved()
}

// Flush implements FileFlusher: close uploads a changed file and reports
// the upload's error. Only a close by the process that opened the file
// does: another process closing its inherited copy (a child started while
// the file was open for writing, which closes it at exec) must not upload
// a half-written file under its final name. Whatever is still not uploaded
// when the last handle goes is uploaded then (see release).
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	ctx = uninterrupted(ctx)
	if !h.writable {
		return 0
	}
	t := callerTgid(ctx)
	if h.opener != 0 && t != 0 && t != h.opener {
		return 0
	}
	if h.node.emptyPending() && h.fsys.heldElsewhere(callerTid(ctx), h.node.StableAttr().Ino) {
		// A copy of the descriptor stays open for writing (see
		// dupclose.go): its close uploads.
		return 0
	}
	return h.node.flush(ctx)
}

// Fsync implements FileFsyncer: the object is complete in the bucket when
// it returns, with or without --write-back-delay.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	ctx = uninterrupted(ctx)
	if h.writable {
		if errno := h.node.flushNow(ctx); errno != 0 {
			return errno
		}
	}
	return h.node.flushMeta(ctx)
}

// Release implements FileReleaser. Errors were reported by Flush; a file
// whose upload failed keeps its local copy for the next attempt.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.released.Store(true) // its readahead runs not sent yet are dropped
	h.mu.Lock()
	h.setStreaming(false)
	h.mu.Unlock()
	h.node.release()
	return 0
}

func (n *File) release() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.opens--
	if n.opens > 0 {
		return
	}
	n._startDeletes()
	if n.ws == nil {
		return
	}
	if n.ws.dirty && !n.ws.unlinked {
		if n.ws.journalID != "" && n.ws.gen == n.ws.committedGen {
			return // the delayed upload takes it from here
		}
		if n.ws.lastErr == nil || n.ws.journalID != "" {
			// Changed since its last close by its opener (or closed only
			// by processes that did not open it): upload now, in the
			// background, or journal it again.
			n.fsys.bg.Add(1)
			go n.uploadAfterRelease()
			return
		}
		msg := "file not uploaded; its data stays in the cache until the next successful close, or the unmount's retry"
		if n.ws.st.mw != nil && n.ws.discarded {
			msg = "file not uploaded; its data stays in the cache and in its open multipart upload until the next successful close, or the unmount's retry"
		}
		n.fsys.log.Warn(msg, "key", n.key(), "cache_file", n.ws.wf.Name(), "err", n.ws.lastErr)
		return
	}
	if n.ws.st.mw != nil {
		n.fsys.abortLater(n.ws.st.mw)
	}
	n.ws.wf.Remove()
	n._setWS(nil)
}

// _startDeletes deletes, in the background, the objects n was read from
// and that were unlinked or renamed away meanwhile. Called with n.mu held.
func (n *File) _startDeletes() {
	for _, o := range n.deletes {
		n.fsys.bg.Add(1)
		go func() {
			defer n.fsys.bg.Done()
			n.fsys.deleteUnlinked(o.key, o.etag, n)
		}()
	}
	n.deletes = nil
}

func (h *handle) block(ctx context.Context, i int64) (cache.Ref, error) {
	return h.fsys.blocks.Block(ctx, cache.BlockKey{Key: h.key, ETag: h.etag, Index: i}, h.size)
}

// readahead keeps the window of blocks after lastBlock fetching while the
// reader stays sequential, in runs of ReadaheadRun blocks per request; a
// random reader gets no readahead at all. It reports whether the read
// counts as sequential.
func (h *handle) readahead(off, end, lastBlock int64) bool {
	opt := &h.fsys.opt
	h.mu.Lock()
	// The kernel sends a sequential stream as many requests at once (its
	// own readahead), so they arrive somewhat out of order: a jump within
	// its window still counts as sequential.
	// A window starts only where a read takes up exactly where the last
	// one ended (or at 0), so that random reads that happen to land near
	// each other do not start one.
	const jitter = 16 << 20
	near := off >= h.nextOff-jitter && off <= h.nextOff+jitter
	sequential := off == 0 || off == h.nextOff || (h.window > 0 && near)
	if sequential {
		// Counted from where a stream starts or takes up exactly, until
		// the end of the file: a late read of the kernel's readahead,
		// arriving after the last one, does not count it again.
		h.setStreaming(end < h.size && (h.streaming || off == 0 || off == h.nextOff))
		limit := h.fsys.readaheadLimit()
		if h.window == 0 {
			h.window = min(opt.ReadaheadRun, limit)
		} else {
			h.window = min(h.window*2, limit)
		}
	} else {
		h.setStreaming(false)
		h.window = 0
		h.aheadTo = 0
	}
	if end > h.nextOff || !sequential {
		h.nextOff = end
	}
	window := int64(h.window)
	// Runs are aligned, so that as the window slides a whole run goes in
	// one request rather than one block at a time. Runs already asked for
	// are skipped; a run dropped for lack of readahead slots is asked for
	// again by the next read. A run grows with the window, to half of it:
	// a long read costs fewer, larger requests (the server's CPU per GiB
	// falls by a third from 4 to 16 MiB, and a cold 1 GiB read ran about 5%
	// faster with 32 MiB runs than with 16), a short one fetches little.
	// The last run may reach up to a run past the window: the readers'
	// windows (half the cache, see readaheadLimit) take up to three
	// quarters of it, and the blocks they have read go first.
	run := max(int64(opt.ReadaheadRun), window/2)
	from := max((lastBlock+1)/run*run, h.aheadTo)
	to := lastBlock + window
	h.mu.Unlock()
	if window == 0 {
		return sequential
	}
	next := cache.BlockKey{Key: h.key, ETag: h.etag, Index: lastBlock + 1}
	if from > next.Index && next.Index < to && h.fsys.blocks.Missing(next) {
		// The cache dropped blocks fetched ahead before the reader got to
		// them: ask for them again in runs, not a read at a time.
		from = next.Index
	}
	c := from
	for ; c <= to; c += run {
		if !h.fsys.blocks.Prefetch(cache.BlockKey{Key: h.key, ETag: h.etag, Index: c}, int(run), h.size, &h.released) {
			break
		}
	}
	h.mu.Lock()
	if h.window > 0 && (c > h.aheadTo || from < h.aheadTo) {
		h.aheadTo = c
	}
	h.mu.Unlock()
	return sequential
}

// setStreaming counts the handle among the mount's sequential readers or
// takes it out (at a random read, at the end of the file, at release).
// Called with h.mu held.
func (h *handle) setStreaming(on bool) {
	if on != h.streaming {
		h.streaming = on
		if on {
			h.fsys.streams.Add(1)
		} else {
			h.fsys.streams.Add(-1)
		}
	}
}

// readaheadLimit is the window a sequential reader may have now: the
// sequential readers share half of the read cache, so that the blocks
// fetched ahead for one are not evicted to make room for another's before
// either reads them. It is MaxReadahead while two or fewer read, and never
// below ReadaheadRun.
func (f *FS) readaheadLimit() int {
	rr := f.opt.ReadaheadRun
	share := int(f.opt.ReadCacheSize/f.opt.BlockSize/2) / int(max(1, f.streams.Load()))
	return max(rr, min(f.opt.MaxReadahead, share/rr*rr))
}

// Setattr implements NodeSetattrer: truncate goes to the local copy (and is
// uploaded at once when no handle is open); mode, owner and mtime go with a
// pending upload, or else are set by a self-copy with new metadata.
func (n *File) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	f := n.fsys
	if f.opt.ReadOnly {
		return syscall.EROFS
	}
	key := n.key()
	sz, resize := in.GetSize()
	if resize || n.getMeta().fromListing {
		// (Attributes from a listing alone are made exact first: the
		// change writes them all back.)
		if _, errno := n.refreshExact(ctx); errno != 0 {
			return errno
		}
	}
	n.mu.Lock()
	if resize && sz != 0 && n.ws != nil && n.ws.discarded && int64(sz) != n.ws.size {
		n.mu.Unlock()
		return syscall.EIO // parts of it left the cache after upload; see write
	}
	if resize {
		if err := n._startWrite(false); err != nil {
			n.mu.Unlock()
			return f.errno("truncate", key, err)
		}
		if ws := n.ws; int64(sz) > ws.size {
			// Growing takes cache space, which may mean waiting for
			// uploads: wait without the file's lock, which every stat,
			// read and write of the file takes.
			grow := int64(sz) - ws.size
			n.mu.Unlock()
			if err := ws.wf.Prepay(grow); err != nil {
				return f.errno("truncate", key, err)
			}
			defer ws.wf.Refund()
			n.mu.Lock()
			if n.ws == nil { // dropped meanwhile (it was clean): start again
				if err := n._startWrite(false); err != nil {
					n.mu.Unlock()
					return f.errno("truncate", key, err)
				}
			}
			if n.ws.discarded {
				// Parts left the cache while it waited (see above).
				n.mu.Unlock()
				return syscall.EIO
			}
		}
		if int64(sz) != n.ws.size {
			if err := n._truncate(int64(sz)); err != nil {
				n.mu.Unlock()
				return f.errno("truncate", key, err)
			}
		}
	}
	changed := applySetattr(&n.meta, in)
	if _, ok := in.GetMTime(); ok && n.ws != nil {
		n.ws.mtimeSet = true
	}
	// A file with changes not uploaded takes the new attributes with its
	// upload; an unchanged one (even open) gets them by a self-copy.
	pending := n.ws != nil && n.ws.dirty
	if pending && changed {
		n.ws.gen++
	}
	open := n.opens > 0
	m := n.meta
	n.mu.Unlock()
	switch {
	case pending && open:
		// Goes up with the upload at close.
	case pending:
		if errno := n.flush(ctx); errno != 0 {
			return errno
		}
		n.dropClean()
	case changed:
		if errno := n.deferMeta(key, m); errno != 0 {
			return errno
		}
	}
	m = n.getMetaWithSize()
	f.fillAttr(m, &out.Attr)
	// The kernel takes the inode number of a setattr's answer too (go-fuse
	// fills it in lookups and getattrs only): left at 0, every file
	// touched or chmodded would share inode number 0, and tar and cp -a
	// would take them for hard links of each other.
	out.Ino = n.StableAttr().Ino
	out.SetTimeout(f.opt.StatTTL)
	return 0
}

func (n *File) opensNow() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.opens
}

// _setWS sets the file's local copy (nil: none). Called with n.mu held.
func (n *File) _setWS(ws *writeState) {
	n.ws = ws
	n.hasWS.Store(ws != nil)
}

// dropClean forgets the local copy of a closed file that is uploaded.
func (n *File) dropClean() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ws != nil && !n.ws.dirty && n.opens == 0 {
		n.ws.wf.Remove()
		n._setWS(nil)
		n.fsys.dropDetached(n)
	}
}

// setMetaRemote rewrites a closed object's metadata by copying it onto
// itself with replaced metadata.
func (n *File) setMetaRemote(ctx context.Context, key string, m objMeta) syscall.Errno {
	f := n.fsys
	out, err := f.copier.Copy(ctx, &transport.CopyObjectInput{SrcKey: key, DstKey: key, SrcSize: m.size,
		SrcETag: m.etag, ReplaceMetadata: true, Metadata: f.uploadMeta(m)})
	if err != nil {
		return f.errno("setattr", key, err)
	}
	n.mu.Lock()
	if n.openETag == n.meta.etag {
		n.openETag = out.ETag // same bytes: the page cache stays good
	}
	if n.ws != nil && n.ws.base.etag == n.meta.etag {
		n.ws.base.etag = out.ETag
	}
	n.meta.etag = out.ETag
	m = n.meta
	n.mu.Unlock()
	f.stats.put(key, m, true, f.opt.StatTTL)
	return 0
}

// uploadAfterRelease uploads a file whose last handle went without a close
// by its opener; failures are logged and the data stays in the cache.
func (n *File) uploadAfterRelease() {
	defer n.fsys.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if errno := n.flush(ctx); errno != 0 {
		n.fsys.log.Warn("file not uploaded; its data stays in the cache until the next successful close", "key", n.key(), "errno", errno.Error())
		return
	}
	n.dropClean()
}

// callerTid is the thread that sent a request, 0 when unknown.
func callerTid(ctx context.Context) uint32 {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Pid
	}
	return 0
}

// callerTgid is the thread group (process) id of the FUSE request's caller,
// 0 when unknown. The kernel gives the calling thread's id; the process's is
// the "Tgid:" line near the top of /proc/TID/status, read with three plain
// system calls, as every create, open and flush asks for it.
func callerTgid(ctx context.Context) int {
	c, ok := fuse.FromContext(ctx)
	if !ok || c.Pid == 0 {
		return 0
	}
	var buf [512]byte
	if t, ok := statusTgid(readHead("/proc/"+strconv.Itoa(int(c.Pid))+"/status", buf[:])); ok {
		return t
	}
	return int(c.Pid)
}

// readHead reads the start of a small file (of /proc) into buf with one
// read: nil when it cannot.
func readHead(path string, buf []byte) []byte {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	n, err := syscall.Read(fd, buf)
	syscall.Close(fd)
	if err != nil || n <= 0 {
		return nil
	}
	return buf[:n]
}

// statusTgid finds the Tgid line of /proc/PID/status text.
func statusTgid(b []byte) (int, bool) {
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("Tgid:")); ok {
			t, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			return t, err == nil
		}
	}
	return 0, false
}
