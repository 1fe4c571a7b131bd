package fs

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sync/errgroup"

	"cosmount/transport"
)

var (
	_ = (gofs.NodeCreater)((*Dir)(nil))
	_ = (gofs.NodeMkdirer)((*Dir)(nil))
	_ = (gofs.NodeRmdirer)((*Dir)(nil))
	_ = (gofs.NodeUnlinker)((*Dir)(nil))
	_ = (gofs.NodeRenamer)((*Dir)(nil))
	_ = (gofs.NodeSymlinker)((*Dir)(nil))
	_ = (gofs.NodeLinker)((*Dir)(nil))
	_ = (gofs.NodeSetattrer)((*Dir)(nil))
)

// owner is the caller's uid and gid, for new files.
func owner(ctx context.Context, f *FS) (uint32, uint32) {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Uid, c.Gid
	}
	return f.opt.UID, f.opt.GID
}

// writable checks that name can be made in d: the mount is writable, and
// the name can be an object's (keys are UTF-8, and at most maxKeyLen
// bytes).
func (d *Dir) writable(name string) syscall.Errno {
	switch {
	case d.fsys.opt.ReadOnly:
		return syscall.EROFS
	case len(name) > 255 || len(d.prefix())+len(name)+1 > maxKeyLen:
		return syscall.ENAMETOOLONG
	case !utf8.ValidString(name):
		return syscall.EILSEQ
	}
	return 0
}

// maxKeyLen is the longest key S3 and COS take, in bytes.
const maxKeyLen = 1024

// Create implements NodeCreater: the file exists locally until its first
// close uploads it (an empty file as a zero-byte PUT).
func (d *Dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	d.fsys.namespaceChanged() // before: listings sent from now on may miss the change
	defer d.fsys.namespaceChanged()
	if errno := d.writable(name); errno != 0 {
		return nil, nil, 0, errno
	}
	f := d.fsys
	key := d.prefix() + name
	uid, gid := owner(ctx, f)
	m := objMeta{mode: syscall.S_IFREG | mode&0o7777, uid: uid, gid: gid, mtime: time.Now()}
	ws, err := f.newWriteState(objMeta{}, 0)
	if err != nil {
		return nil, nil, 0, f.errno("create", key, err)
	}
	ws.dirty = true
	node := &File{fsys: f, meta: m, opens: 1}
	node._setWS(ws) // (nobody else has it yet)
	node.setKey(key)
	if old := f.takeDetached(key); old != nil {
		// A forgotten file with work pending had the name (the kernel
		// had it as absent): the new file replaces it.
		old.markUnlinked(key)
		f.dropDetachedKey(key, old)
	}
	f.unhide(key)
	ch := d.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG})
	f.stats.forget(key)
	f.fillAttr(m, &out.Attr)
	out.SetEntryTimeout(f.opt.StatTTL)
	out.SetAttrTimeout(f.opt.StatTTL)
	return ch, &handle{fsys: f, node: node, key: key, writable: true, opener: callerTgid(ctx)}, fuse.FOPEN_KEEP_CACHE | WriteOnlyFlags(flags), 0
}

// Mkdir implements NodeMkdirer: a "name/" marker object.
func (d *Dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	d.fsys.namespaceChanged() // before: listings sent from now on may miss the change
	defer d.fsys.namespaceChanged()
	if errno := d.writable(name); errno != 0 {
		return nil, errno
	}
	f := d.fsys
	key := d.prefix() + name
	uid, gid := owner(ctx, f)
	m := objMeta{dir: true, mode: syscall.S_IFDIR | mode&0o7777, uid: uid, gid: gid, mtime: time.Now(), size: 4096}
	if _, err := f.bucket.Put(ctx, &transport.PutInput{Key: key + "/", Body: bytes.NewReader(nil), Metadata: f.uploadMeta(m)}); err != nil {
		return nil, f.errno("mkdir", key, err)
	}
	f.stats.put(key, m, true, f.opt.StatTTL)
	f.fillAttr(m, &out.Attr)
	out.SetEntryTimeout(f.opt.StatTTL)
	out.SetAttrTimeout(f.opt.StatTTL)
	nd := &Dir{fsys: f}
	nd.markComplete(nil, time.Now()) // made here, empty
	return d.NewInode(ctx, nd, gofs.StableAttr{Mode: syscall.S_IFDIR}), 0
}

// Rmdir implements NodeRmdirer.
func (d *Dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	ctx = uninterrupted(ctx)
	d.fsys.namespaceChanged() // before: listings sent from now on may miss the change
	defer d.fsys.namespaceChanged()
	if d.fsys.opt.ReadOnly {
		return syscall.EROFS
	}
	f := d.fsys
	key := d.prefix() + name
	if empty, errno := f.dirEmpty(ctx, key+"/"); errno != 0 {
		return errno
	} else if !empty {
		return syscall.ENOTEMPTY
	}
	if d.pendingUnder(name, key) {
		return syscall.ENOTEMPTY
	}
	if err := f.bucket.Delete(ctx, key+"/"); err != nil {
		return f.errno("rmdir", key, err)
	}
	f.stats.put(key, objMeta{}, false, f.opt.NegativeTTL)
	return 0
}

// pendingUnder reports whether the directory name (key) in d holds files
// not uploaded yet, in the tree or forgotten by the kernel.
func (d *Dir) pendingUnder(name, key string) bool {
	ch := d.GetChild(name)
	return (ch != nil && hasPendingFiles(ch)) || len(d.fsys.detachedUnder(key+"/")) > 0
}

// hasPendingFiles reports whether a directory node holds files not
// uploaded yet.
func hasPendingFiles(dir *gofs.Inode) bool {
	for _, ch := range dir.Children() {
		if n, ok := ch.Operations().(*File); ok && n.writing() {
			return true
		}
	}
	return false
}

// dirEmpty reports whether nothing but the marker lies under prefix.
func (f *FS) dirEmpty(ctx context.Context, prefix string) (bool, syscall.Errno) {
	if err := f.awaitDelete(ctx, prefix, true); err != nil {
		return false, f.errno("list", prefix, err)
	}
	out, err := f.bucket.List(ctx, &transport.ListInput{Prefix: prefix, MaxKeys: 2})
	if err != nil {
		return false, f.errno("list", prefix, err)
	}
	for _, o := range out.Objects {
		if o.Key != prefix {
			return false, 0
		}
	}
	return len(out.CommonPrefixes) == 0, 0
}

// Unlink implements NodeUnlinker. A file still open stays readable through
// its handles: its object is deleted at the last close (unless it was
// replaced meanwhile), and the name is gone from the mount at once.
func (d *Dir) Unlink(ctx context.Context, name string) syscall.Errno {
	ctx = uninterrupted(ctx)
	d.fsys.namespaceChanged() // before: listings sent from now on may miss the change
	defer d.fsys.namespaceChanged()
	if d.fsys.opt.ReadOnly {
		return syscall.EROFS
	}
	f := d.fsys
	key := d.prefix() + name
	remote := true
	if n := d.childFile(name); n != nil {
		remote = n.markUnlinked(key)
	}
	if remote {
		if err := f.bucket.Delete(ctx, key); err != nil {
			return f.errno("unlink", key, err)
		}
	}
	f.stats.put(key, objMeta{}, false, f.opt.NegativeTTL)
	return 0
}

// markUnlinked records that n's name is gone: no upload of it will happen
// (one in flight finishes first), its journal entry goes, and while it is
// open its object stays readable until the last close. It reports whether
// the object must be deleted now.
func (n *File) markUnlinked(key string) bool {
	n.upMu.Lock()
	defer n.upMu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.unlinked = true
	n.lastKey.Store(nil)
	n.metaDirty = false
	remote := true
	if ws := n.ws; ws != nil {
		ws.unlinked = true
		if ws.journalID != "" {
			n.fsys.removeEntry(ws.journalID)
			ws.journalID = ""
		}
		if ws.st.mw != nil {
			n.fsys.abortLater(ws._detachStream().mw)
		}
		remote = ws.uploaded
		if n.opens == 0 {
			// Closed with its upload pending or failed: no release will
			// come to drop its local copy, and no upload will run.
			ws.wf.Remove()
			n._setWS(nil)
			n.fsys.setFailed(n, false)
			n.fsys.dropDetachedKey(key, n)
		}
	}
	if n.opens > 0 && remote && n.meta.etag != "" {
		n.deletes = append(n.deletes, objectVersion{key, n.meta.etag})
		n.fsys.hide(key, n)
		return false
	}
	return remote
}

// objectVersion names an object and the version of it seen.
type objectVersion struct{ key, etag string }

// deleteUnlinked deletes the object of n, unlinked while open, after its
// last close, unless the name holds another object by now: one made
// through this mount (even with the same bytes, hence the same ETag), or
// by someone else.
func (f *FS) deleteUnlinked(key, etag string, n *File) {
	f.hiddenMu.Lock()
	if f.hidden[key] != n {
		f.hiddenMu.Unlock()
		return // the name was taken since
	}
	// From hidden to deleting: what is made under the name from now on
	// waits for this delete (deferred.go).
	delete(f.hidden, key)
	p, prev := f.beginDeleteLocked(key)
	f.hiddenMu.Unlock()
	deleted := false
	defer func() { f.endDelete(key, p, deleted) }()
	if prev != nil {
		<-prev.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := f.bucket.Head(ctx, &transport.HeadInput{Key: key})
	if err != nil || o.ETag != etag {
		return // someone else's object by now
	}
	if err := f.bucket.Delete(ctx, key); err != nil {
		f.log.Warn("deleting an unlinked file after its last close failed", "key", key, "err", err)
		return
	}
	deleted = true
}

// Symlink implements NodeSymlinker: an object whose body is the target and
// whose mode says S_IFLNK, as cosfs and s3fs write it.
func (d *Dir) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	d.fsys.namespaceChanged() // before: listings sent from now on may miss the change
	defer d.fsys.namespaceChanged()
	if errno := d.writable(name); errno != 0 {
		return nil, errno
	}
	f := d.fsys
	key := d.prefix() + name
	uid, gid := owner(ctx, f)
	m := objMeta{mode: syscall.S_IFLNK | 0o777, uid: uid, gid: gid, mtime: time.Now(), size: int64(len(target))}
	put, err := f.bucket.Put(ctx, &transport.PutInput{Key: key, Body: strings.NewReader(target), Size: m.size, Metadata: f.uploadMeta(m)})
	if err != nil {
		return nil, f.errno("symlink", key, err)
	}
	m.etag = put.ETag
	f.unhide(key)
	f.stats.put(key, m, true, f.opt.StatTTL)
	node := &File{fsys: f, meta: m, target: target}
	node.setKey(key)
	f.fillAttr(m, &out.Attr)
	return d.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFLNK}), 0
}

// Link implements NodeLinker: objects cannot share their data.
func (d *Dir) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

// Setattr implements NodeSetattrer for directories: mode, owner and times
// are written to the marker object (for other tools) and kept for this
// mount's stat cache TTL.
func (d *Dir) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	f := d.fsys
	if f.opt.ReadOnly {
		return syscall.EROFS
	}
	key := strings.TrimSuffix(d.prefix(), "/")
	m := f.dirMeta(f.mountTime)
	if e, ok := f.stats.fresh(key); ok && e.exists && e.meta.dir {
		m = e.meta
	}
	applySetattr(&m, in)
	if !d.IsRoot() {
		if _, err := f.bucket.Put(ctx, &transport.PutInput{Key: key + "/", Body: bytes.NewReader(nil), Metadata: f.uploadMeta(m)}); err != nil {
			return f.errno("setattr", key, err)
		}
		f.stats.put(key, m, true, f.opt.StatTTL)
	}
	f.fillAttr(m, &out.Attr)
	out.Ino = d.StableAttr().Ino // see File.Setattr
	return 0
}

// applySetattr applies mode, owner and mtime changes; it reports whether
// any was asked for.
func applySetattr(m *objMeta, in *fuse.SetAttrIn) bool {
	changed := false
	if mode, ok := in.GetMode(); ok {
		m.mode = m.mode&syscall.S_IFMT | mode&0o7777
		changed = true
	}
	if uid, ok := in.GetUID(); ok {
		m.uid, changed = uid, true
	}
	if gid, ok := in.GetGID(); ok {
		m.gid, changed = gid, true
	}
	if mt, ok := in.GetMTime(); ok {
		m.mtime, changed = mt, true
	}
	return changed
}

// Rename implements NodeRenamer: a server-side copy then a delete; for a
// directory, every key under it, copies in parallel. A file not uploaded yet
// is only renamed here: its upload goes to the new name.
func (d *Dir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) (errno syscall.Errno) {
	ctx = uninterrupted(ctx)
	d.fsys.namespaceChanged() // before: listings sent from now on may miss the change
	defer d.fsys.namespaceChanged()
	f := d.fsys
	if f.opt.ReadOnly {
		return syscall.EROFS
	}
	if flags&^uint32(1) != 0 { // only RENAME_NOREPLACE
		return syscall.EINVAL
	}
	np, ok := newParent.(*Dir)
	if !ok {
		return syscall.EXDEV
	}
	if errno := np.writable(newName); errno != 0 {
		return errno
	}
	src, dst := d.prefix()+name, np.prefix()+newName
	if src == dst {
		return 0
	}
	srcMeta, errno := d.statChild(ctx, name, src)
	if errno != 0 {
		if n := d.childFile(name); n == nil || !n.writing() {
			return errno
		}
	}
	defer func() {
		if errno == 0 {
			np.noteName(newName)
		}
	}()
	dstMeta, dstErr := np.statChild(ctx, newName, dst)
	if dstErr != 0 && dstErr != syscall.ENOENT {
		// Not known to be absent: it may be a directory with files.
		return dstErr
	}
	if dstErr == 0 {
		if flags&1 != 0 {
			return syscall.EEXIST
		}
		switch {
		case srcMeta.dir && !dstMeta.dir:
			return syscall.ENOTDIR
		case !srcMeta.dir && dstMeta.dir:
			return syscall.EISDIR
		case dstMeta.dir:
			if empty, errno := f.dirEmpty(ctx, dst+"/"); errno != 0 {
				return errno
			} else if !empty || np.pendingUnder(newName, dst) {
				return syscall.ENOTEMPTY
			}
		}
	}
	if srcMeta.dir {
		if ch := d.GetChild(name); ch != nil {
			// Uploads of files below that are running finish first (under
			// the names they started with, which the rename then moves),
			// and none starts until the rename is done.
			defer lockUploadsBelow(ch)()
			if errno := holdStreamsBelow(ch); errno != 0 {
				return errno
			}
		}
		errno := f.renameDir(ctx, src+"/", dst+"/")
		if errno == 0 {
			if ch := d.GetChild(name); ch != nil {
				rejournalTree(ch, src+"/", dst+"/", dst+"/")
				forgetListings(ch)
			}
			f.moveDetached(src+"/", dst+"/")
		}
		return errno
	}
	if dn := np.childFile(newName); dn != nil && dn != d.childFile(name) {
		// The file being replaced must never be uploaded over the new one.
		dn.markUnlinked(dst)
	}
	// The name is taken: a file unlinked or renamed away while open no
	// longer deletes it at its last close (one deleting it already is
	// waited for by the copy, see deferred.go).
	f.unhide(dst)
	if n := d.childFile(name); n != nil {
		var holds *string // what dst holds, as far as its stat says
		switch {
		case dstErr == syscall.ENOENT:
			holds = new(string)
		case dstErr == 0 && !dstMeta.dir && dstMeta.etag != "":
			holds = &dstMeta.etag
		}
		return n.rename(ctx, src, dst, holds)
	}
	return f.renameObject(ctx, src, dst, srcMeta)
}

// rename moves a file: a server-side copy and a delete, or, for a file not
// uploaded yet, nothing remote at all.
func (n *File) rename(ctx context.Context, src, dst string, dstHolds *string) syscall.Errno {
	f := n.fsys
	n.upMu.Lock()
	defer n.upMu.Unlock()
	n.mu.Lock()
	ws := n.ws
	local := ws != nil && !ws.uploaded
	if local {
		if ws.discarded {
			n.mu.Unlock()
			return syscall.EBUSY // its streamed parts are uploaded under the old name
		}
		if ws.st.mw != nil {
			// The streamed upload was for the old name.
			f.abortLater(ws._detachStream().mw)
		}
		ws.st.ok = false
	}
	dirty := ws != nil && ws.dirty
	n.mu.Unlock()
	if local {
		n.rejournal(dst, dstHolds)
		f.stats.put(src, objMeta{}, false, f.opt.NegativeTTL)
		f.stats.forget(dst)
		return 0
	}
	if dirty {
		// Upload under the old name first; then move it like any other.
		if errno := n.flushNowLocked(ctx); errno != 0 {
			return errno
		}
	}
	m, withMeta := n.takeMeta()
	var meta map[string]string
	if withMeta {
		meta = f.uploadMeta(m) // the copy carries the attributes set since
	}
	// Files open for reading read the object they opened, by its key: it
	// goes at their last close, as an unlinked file's does.
	n.mu.Lock()
	keepSrc := n.opens > 0 && n.ws == nil
	n.mu.Unlock()
	etag, errno := f.moveObject(ctx, src, dst, m, meta, keepSrc)
	if errno != 0 {
		if withMeta {
			n.restoreMeta()
		}
		return errno
	}
	if keepSrc {
		f.hide(src, n)
	}
	n.setKey(dst)
	n.mu.Lock()
	released := false
	if keepSrc {
		if n.opens > 0 {
			n.deletes = append(n.deletes, objectVersion{src, m.etag})
		} else {
			released = true
		}
	}
	if n.ws != nil && n.ws.base.etag == n.meta.etag {
		n.ws.base.etag, n.ws.baseKey = etag, dst
	}
	if n.openETag == n.meta.etag {
		n.openETag = etag
	}
	n.meta.etag = etag
	n.mu.Unlock()
	if released {
		// The last close came during the copy (the kernel sends it after
		// close has returned, so often after a rename that follows at
		// once): no release will delete the old name.
		f.deleteLater(src)
		f.unhideBy(src, n)
	}
	return 0
}

// renameObject moves an object the tree holds no node for.
func (f *FS) renameObject(ctx context.Context, src, dst string, m objMeta) syscall.Errno {
	_, errno := f.moveObject(ctx, src, dst, m, nil, false)
	return errno
}

// moveObject copies src to dst server-side, with metadata replaced by meta
// unless it is nil, and deletes src unless keepSrc; it returns the new
// object's ETag.
func (f *FS) moveObject(ctx context.Context, src, dst string, m objMeta, meta map[string]string, keepSrc bool) (string, syscall.Errno) {
	out, err := f.copier.Copy(ctx, &transport.CopyObjectInput{SrcKey: src, DstKey: dst, SrcSize: m.size, SrcETag: m.etag,
		ReplaceMetadata: meta != nil, Metadata: meta})
	if err != nil {
		return "", f.errno("rename", src, err)
	}
	// The absence first: a delete that fails at once drops it again.
	f.stats.put(src, objMeta{}, false, f.opt.NegativeTTL)
	if !keepSrc {
		f.deleteLater(src)
	}
	if m.fromListing || m.etag == "" {
		f.stats.forget(dst)
	} else {
		// Same bytes and attributes under the new name: a stat of it
		// after the rename costs no request.
		m.etag = out.ETag
		f.stats.put(dst, m, true, f.opt.StatTTL)
	}
	return out.ETag, 0
}

// rejournalTree follows a directory rename (from the prefix src to dst) for
// the files under it being written: their journal entries get the new
// names, and so do the objects they started from that the rename moved (not
// one left under a former name, see moveStreamed). prefix is dir's new one.
func rejournalTree(dir *gofs.Inode, src, dst, prefix string) {
	for name, ch := range dir.Children() {
		switch n := ch.Operations().(type) {
		case *File:
			n.mu.Lock()
			if ws := n.ws; ws != nil {
				if rest, ok := strings.CutPrefix(ws.baseKey, src); ok && ws.base.etag != "" {
					ws.baseKey = dst + rest
				}
				if rest, ok := strings.CutPrefix(ws.stray, src); ok {
					ws.stray = dst + rest // moved with the directory
				}
			}
			n.mu.Unlock()
			n.rejournal(prefix+name, nil)
		case *Dir:
			rejournalTree(ch, src, dst, prefix+name+"/")
		}
	}
}

// lockUploadsBelow takes the upload lock of every file under dir that has
// a local copy, in the order of their keys (so that two renames of
// directories sharing files take them in the same order), and returns
// what gives them back.
func lockUploadsBelow(dir *gofs.Inode) (unlock func()) {
	var files []*File
	var walk func(*gofs.Inode)
	walk = func(dir *gofs.Inode) {
		for _, ch := range dir.Children() {
			switch n := ch.Operations().(type) {
			case *File:
				n.mu.Lock()
				if n.ws != nil {
					files = append(files, n)
				}
				n.mu.Unlock()
			case *Dir:
				walk(ch)
			}
		}
	}
	walk(dir)
	keys := make(map[*File]string, len(files))
	for _, n := range files {
		keys[n] = n.key()
	}
	slices.SortFunc(files, func(a, b *File) int { return strings.Compare(keys[a], keys[b]) })
	for _, n := range files {
		n.upMu.Lock()
	}
	return func() {
		for _, n := range files {
			n.upMu.Unlock()
		}
	}
}

// holdStreamsBelow readies the files being written under dir for dir's
// rename. A file whose streamed parts left the cache refuses it, as its own
// rename does (EBUSY): those parts are in an upload under the old name. The
// streamed uploads of the others are dropped, under the same lock that
// would let a part leave the cache, and the files are uploaded whole under
// their new names when closed.
func holdStreamsBelow(dir *gofs.Inode) syscall.Errno {
	for _, ch := range dir.Children() {
		switch n := ch.Operations().(type) {
		case *File:
			n.mu.Lock()
			ws := n.ws
			if ws != nil && ws.dirty && ws.discarded {
				n.mu.Unlock()
				return syscall.EBUSY
			}
			if ws != nil {
				if ws.st.mw != nil {
					n.fsys.abortLater(ws._detachStream().mw)
				}
				ws.st.ok = false // nor does a stream start under the old name
			}
			n.mu.Unlock()
		case *Dir:
			if errno := holdStreamsBelow(ch); errno != 0 {
				return errno
			}
		}
	}
	return 0
}

func (d *Dir) childFile(name string) *File {
	if ch := d.GetChild(name); ch != nil {
		if n, ok := ch.Operations().(*File); ok {
			return n
		}
	}
	return nil
}

// renameDir moves every key under src to dst: copies in parallel, starting
// as the listing's pages come in, then, once every copy is made, the
// originals deleted in batches.
func (f *FS) renameDir(ctx context.Context, src, dst string) syscall.Errno {
	if err := f.awaitDelete(ctx, src, true); err != nil {
		return f.errno("rename", src, err)
	}
	var keys []transport.ObjectInfo
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.opt.RenameParallel)
	listErr := transport.ListPages(gctx, f.bucket, transport.ListInput{Prefix: src}, func(out *transport.ListOutput) error {
		for _, o := range out.Objects {
			if f.isHidden(o.Key) {
				// Unlinked, and still read by an open file: it goes at
				// that file's last close, and does not move.
				continue
			}
			keys = append(keys, o)
			g.Go(func() error {
				if strings.HasSuffix(o.Key, "/") {
					// A marker: write a new one rather than copy it (some
					// stores refuse to copy onto a directory key).
					return f.copyMarker(gctx, o.Key, dst+strings.TrimPrefix(o.Key, src))
				}
				_, err := f.copier.Copy(gctx, &transport.CopyObjectInput{SrcKey: o.Key, DstKey: dst + strings.TrimPrefix(o.Key, src), SrcSize: o.Size, SrcETag: o.ETag})
				return err
			})
		}
		return nil
	})
	// A failed copy stops the listing too: its error is the one to report.
	if err := g.Wait(); err != nil {
		return f.errno("rename", src, err)
	}
	if listErr != nil {
		return f.errno("rename", src, listErr)
	}
	names := make([]string, len(keys))
	for i, o := range keys {
		names[i] = o.Key
	}
	failed, err := f.bucket.DeleteMany(ctx, names)
	if err == nil && len(failed) > 0 {
		err = errors.New(failed[0].Key + ": " + failed[0].Code + " " + failed[0].Message)
	}
	if err != nil {
		return f.errno("rename", src, err)
	}
	f.stats.forgetPrefix(src)
	f.stats.forgetPrefix(dst)
	f.stats.forget(strings.TrimSuffix(src, "/"))
	f.stats.forget(strings.TrimSuffix(dst, "/"))
	return 0
}

// copyMarker writes a directory marker at dst with src's metadata.
func (f *FS) copyMarker(ctx context.Context, src, dst string) error {
	o, err := f.bucket.Head(ctx, &transport.HeadInput{Key: src})
	if err != nil {
		return err
	}
	_, err = f.bucket.Put(ctx, &transport.PutInput{Key: dst, Body: bytes.NewReader(nil), Metadata: o.Metadata})
	return err
}
