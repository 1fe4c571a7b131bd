package fs

import (
	"context"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"cosmount/transport"
)

// Dir is a directory: a key prefix, with or without a marker object.
//
// Lock order: mu guards completeUntil and the walk state (kids, lastKid,
// fetchedTo); it is never held across a request.
type Dir struct {
	gofs.Inode
	noXattrs
	fsys *FS

	mu sync.Mutex
	// completeUntil: until then every name in the directory is known (from
	// a full listing, or because this mount made it empty), so a lookup of
	// an unknown name needs no request.
	completeUntil time.Time
	// kids are the subdirectories of the last complete listing, sorted;
	// lastKid the index of the one listed last and fetchedTo the last one
	// prefetched (see prefetch.go).
	kids               []string
	lastKid, fetchedTo int
	// statted: a program asked for the attributes of files listed here;
	// kidsStatted: of files in one of its subdirectories, during a walk.
	statted, kidsStatted atomic.Bool
}

// markComplete records that every entry of d is known, for the stat TTL.
func (d *Dir) markComplete() {
	d.mu.Lock()
	d.completeUntil = time.Now().Add(d.fsys.opt.StatTTL)
	d.mu.Unlock()
}

func (d *Dir) complete() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Now().Before(d.completeUntil)
}

// statChild is FS.stat of the entry name (whose key is key), answered
// without a request when d's listing (or this mount's mkdir) says it is
// not there.
func (d *Dir) statChild(ctx context.Context, name, key string) (objMeta, syscall.Errno) {
	if d.complete() && d.GetChild(name) == nil && !d.fsys.stats.known(key) && !d.fsys.lazy.has(key) {
		return objMeta{}, syscall.ENOENT
	}
	return d.fsys.stat(ctx, key)
}

var (
	_ = (gofs.NodeLookuper)((*Dir)(nil))
	_ = (gofs.NodeReaddirer)((*Dir)(nil))
	_ = (gofs.NodeGetattrer)((*Dir)(nil))
	_ = (gofs.NodeStatfser)((*Dir)(nil))
)

// prefix is the directory's key prefix: "" or "a/b/" (plus the mount's).
func (d *Dir) prefix() string {
	p := d.Path(d.fsys.root.EmbeddedInode())
	if p == "" {
		return d.fsys.opt.Prefix
	}
	return d.fsys.keyOf(p) + "/"
}

// Getattr implements NodeGetattrer.
func (d *Dir) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	m := d.fsys.dirMeta(d.fsys.mountTime)
	if !d.IsRoot() {
		key := strings.TrimSuffix(d.prefix(), "/")
		if e, ok := d.fsys.stats.fresh(key); ok && e.exists && e.meta.dir {
			m = e.meta
		}
	}
	d.fsys.fillAttr(m, &out.Attr)
	out.SetTimeout(d.fsys.opt.StatTTL)
	return 0
}

// Statfs implements NodeStatfser: a bucket has no fixed size, so report
// large round numbers that keep `df` and free-space checks happy.
func (d *Dir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	const blocks = 1 << 40 // 4 PiB of 4 KiB blocks
	out.Bsize = 4096
	out.Frsize = 4096
	out.Blocks = blocks
	out.Bfree = blocks
	out.Bavail = blocks
	out.Files = 1 << 40
	out.Ffree = 1 << 40
	out.NameLen = 255
	return 0
}

// Lookup implements NodeLookuper.
func (d *Dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	if len(name) > 255 {
		return nil, syscall.ENAMETOOLONG
	}
	key := d.prefix() + name
	if n := d.childFile(name); n != nil && n.writing() {
		// Being written here: the local copy is the truth.
		m, _ := n.refresh(ctx)
		d.fsys.fillAttr(m, &out.Attr)
		out.SetEntryTimeout(d.fsys.opt.StatTTL)
		out.SetAttrTimeout(d.fsys.opt.StatTTL)
		return n.EmbeddedInode(), 0
	}
	m, errno := d.statChild(ctx, name, key)
	if errno != 0 {
		return nil, errno
	}
	ch := d.child(ctx, name, m)
	d.fsys.fillAttr(m, &out.Attr)
	out.SetEntryTimeout(d.fsys.opt.StatTTL)
	out.SetAttrTimeout(d.fsys.opt.StatTTL)
	return ch, 0
}

// child returns the inode for name, reusing the existing one when its type
// still matches.
func (d *Dir) child(ctx context.Context, name string, m objMeta) *gofs.Inode {
	if ch := d.GetChild(name); ch != nil {
		switch n := ch.Operations().(type) {
		case *Dir:
			if m.dir {
				return ch
			}
		case *File:
			if !m.dir && n.fileType() == m.fileType() {
				n.setMeta(m)
				return ch
			}
		}
	}
	if m.dir {
		return d.NewInode(ctx, &Dir{fsys: d.fsys}, gofs.StableAttr{Mode: syscall.S_IFDIR})
	}
	f := &File{fsys: d.fsys}
	f.setMeta(m)
	return d.NewInode(ctx, f, gofs.StableAttr{Mode: m.fileType()})
}

// Readdir implements NodeReaddirer. It pages through the listing and puts
// every entry's attributes in the stat cache, starting HEADs for those whose
// metadata is not cached, so that the kernel's READDIRPLUS lookups that
// follow are answered without one request each.
func (d *Dir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ctx = uninterrupted(ctx)
	f := d.fsys
	prefix := d.prefix()
	names := map[string]uint32{}
	var heads []headJob
	// eager: more than one page, so HEADs go out as the pages come in;
	// else they wait in f.lazy for a first stat.
	eager := false
	token := ""
	first := f.prefetchedPage(ctx, prefix)
	for {
		out := first
		first = nil
		if out == nil {
			var err error
			out, err = f.bucket.List(ctx, &transport.ListInput{Prefix: prefix, Delimiter: "/", Token: token})
			if err != nil {
				return nil, f.errno("list", prefix, err)
			}
		}
		heads = f.absorbPage(out, prefix, names, heads)
		if out.NextToken != "" {
			eager = true
		}
		if eager && len(heads) > 0 {
			f.startHeads(heads)
			heads = nil
		}
		if out.NextToken == "" {
			break
		}
		token = out.NextToken
	}
	if len(heads) > 0 {
		f.lazy.add(heads, f.opt.StatTTL, d)
	}
	for nm, ch := range d.Children() {
		if n, ok := ch.Operations().(*File); ok && n.writing() {
			if _, ok := names[nm]; !ok {
				names[nm] = syscall.S_IFREG
			}
		}
	}
	entries := make([]fuse.DirEntry, 0, len(names)+2)
	entries = append(entries, fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR}, fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR})
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		mode := names[n]
		if mode == syscall.S_IFREG {
			if e, ok := f.stats.fresh(prefix + n); ok && e.exists {
				mode = e.meta.fileType()
			}
		}
		entries = append(entries, fuse.DirEntry{Name: n, Mode: mode})
	}
	if len(names) <= maxCompleteDir {
		d.markComplete()
		d.setKids(subdirs(names))
	}
	d.walked()
	return gofs.NewListDirStream(entries), 0
}

// absorbPage takes one page of a directory's listing: names gets each
// entry's type, the stat cache the directories' attributes (and the files'
// with --fast-list or when unchanged), and heads the files whose metadata
// needs a HEAD.
func (f *FS) absorbPage(out *transport.ListOutput, prefix string, names map[string]uint32, heads []headJob) []headJob {
	for _, cp := range out.CommonPrefixes {
		name := strings.TrimSuffix(strings.TrimPrefix(cp, prefix), "/")
		if !f.validName(cp, name) {
			continue
		}
		if mode, ok := names[name]; ok && mode != syscall.S_IFDIR {
			f.warnOnce(prefix+name, "an object and a directory share this name; the directory is shown")
		}
		names[name] = syscall.S_IFDIR
		key := prefix + name
		// Known now for another TTL (the listing answers lookups).
		if e, ok := f.stats.fresh(key); ok && e.exists && e.meta.dir {
			f.stats.put(key, e.meta, true, f.opt.StatTTL)
		} else {
			f.stats.put(key, f.dirMeta(f.mountTime), true, f.opt.StatTTL)
		}
	}
	for i := range out.Objects {
		o := &out.Objects[i]
		name := strings.TrimPrefix(o.Key, prefix)
		if name == "" {
			continue // the directory's own marker
		}
		if strings.HasSuffix(name, "/") {
			// A marker listed as an object (some stores): a directory.
			name = strings.TrimSuffix(name, "/")
			if f.validName(o.Key, name) {
				names[name] = syscall.S_IFDIR
			}
			continue
		}
		if !f.validName(o.Key, name) || f.isHidden(o.Key) {
			continue
		}
		if _, ok := names[name]; ok {
			f.warnOnce(o.Key, "an object and a directory share this name; the directory is shown")
			continue
		}
		names[name] = syscall.S_IFREG
		listed := f.metaFromListing(o)
		if e, ok := f.stats.fresh(o.Key); ok && e.exists && !e.meta.dir && e.meta.etag == o.ETag {
			// Unchanged: what is cached holds for another TTL.
			f.stats.put(o.Key, e.meta, true, f.opt.StatTTL)
			continue
		}
		if f.opt.FastList {
			f.stats.put(o.Key, listed, true, f.opt.StatTTL)
			continue
		}
		f.stats.forgetIfResolved(o.Key)
		if !f.stats.known(o.Key) {
			heads = append(heads, headJob{key: o.Key, listed: listed})
		}
	}
	return heads
}

// WarmRoot takes the first page of the root's listing, sent to prove the
// bucket answers, so that looking up a top-level name costs no request when
// that page is the whole listing.
func (f *FS) WarmRoot(out *transport.ListOutput) {
	names := map[string]uint32{}
	heads := f.absorbPage(out, f.opt.Prefix, names, nil)
	if out.NextToken != "" {
		return
	}
	if len(heads) > 0 {
		f.lazy.add(heads, f.opt.StatTTL, f.root)
	}
	if len(names) <= maxCompleteDir {
		f.root.markComplete()
		f.root.setKids(subdirs(names))
	}
}

// maxCompleteDir bounds the directories whose listing answers lookups of
// absent names: every entry must stay in the stat cache meanwhile.
const maxCompleteDir = 50000

// validName applies the rules for keys that cannot be a file name here (see
// docs/semantics.md): such keys are left out of the listing and logged once.
func (f *FS) validName(key, name string) bool {
	switch {
	case name == "":
		f.warnOnce(key, "key has an empty path component (\"//\"); not shown")
	case name == "." || name == "..":
		f.warnOnce(key, "key has a \".\" or \"..\" path component; not shown")
	case len(name) > 255:
		f.warnOnce(key, "key has a path component longer than 255 bytes; not shown")
	case strings.IndexByte(name, 0) >= 0:
		f.warnOnce(key, "key holds a NUL byte; not shown")
	default:
		return true
	}
	return false
}

// dirHandle is an open directory: the listing is made at the first read.
// Its Lookup answers the kernel's READDIRPLUS: an entry whose attributes are
// known, or whose HEAD is in flight, goes with them; one whose HEAD waits
// for a first stat (see lazyHeads) goes without, and the kernel looks it up
// when a program asks for it. So `find` over small directories never waits
// for a HEAD, and `ls -l` of a large one gets every entry's attributes in
// the listing.
type dirHandle struct {
	d  *Dir
	ds gofs.DirStream
}

var (
	_ = (gofs.NodeOpendirHandler)((*Dir)(nil))
	_ = (gofs.FileReaddirenter)((*dirHandle)(nil))
	_ = (gofs.FileLookuper)((*dirHandle)(nil))
	_ = (gofs.FileSeekdirer)((*dirHandle)(nil))
	_ = (gofs.FileReleasedirer)((*dirHandle)(nil))
)

// OpendirHandle implements NodeOpendirHandler.
func (d *Dir) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{d: d}, 0, 0
}

func (h *dirHandle) stream(ctx context.Context) syscall.Errno {
	if h.ds != nil {
		return 0
	}
	ds, errno := h.d.Readdir(ctx)
	if errno != 0 {
		return errno
	}
	h.ds = ds
	return 0
}

// Readdirent implements FileReaddirenter.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if errno := h.stream(ctx); errno != 0 {
		return nil, errno
	}
	if !h.ds.HasNext() {
		return nil, 0
	}
	e, errno := h.ds.Next()
	return &e, errno
}

// Seekdir implements FileSeekdirer.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if errno := h.stream(ctx); errno != 0 {
		return errno
	}
	if sd, ok := h.ds.(gofs.FileSeekdirer); ok {
		return sd.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

// Releasedir implements FileReleasedirer.
func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if h.ds != nil {
		h.ds.Close()
	}
}

// Lookup implements FileLookuper, for READDIRPLUS.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	d := h.d
	if n := d.childFile(name); n != nil && n.writing() {
		return d.Lookup(ctx, name, out)
	}
	if d.fsys.stats.known(d.prefix() + name) {
		return d.Lookup(ctx, name, out) // from the stat cache, or its HEAD
	}
	// No attributes for this entry (zero node id): not an error for the
	// kernel, which looks the name up when it needs to.
	return nil, syscall.EAGAIN
}
