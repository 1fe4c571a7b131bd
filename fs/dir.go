package fs

import (
	"context"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

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
	// listed: the names that listing gave. A lookup of one of them still
	// asks the server when nothing else knows it (its stat cache entry
	// may be gone: a failed HEAD's short TTL, eviction).
	listed map[string]uint32
	// renamed: names this mount gave entries since (renames into d); the
	// listing's own map is not written after it is handed over.
	renamed map[string]bool
	// kids are the subdirectories of the last complete listing, sorted;
	// lastKid the index of the one listed last and fetchedTo the last one
	// prefetched (see prefetch.go).
	kids               []string
	lastKid, fetchedTo int
	// statted: a program asked for the attributes of files listed here;
	// kidsStatted: of files in one of its subdirectories, during a walk.
	statted, kidsStatted atomic.Bool
}

// markComplete records that the listing of d, sent at sent (its first
// page's), gave every name it has (names; nil for a directory made empty
// here), for the stat TTL from then.
func (d *Dir) markComplete(names map[string]uint32, sent time.Time) {
	d.mu.Lock()
	d.completeUntil = sent.Add(d.fsys.opt.StatTTL)
	d.listed, d.renamed = names, nil
	d.mu.Unlock()
}

// forgetListings drops the completeness of the listings of the directory
// n and of those below it, after a rename: the names they knew are known
// under their old keys.
func forgetListings(n *gofs.Inode) {
	if d, ok := n.Operations().(*Dir); ok {
		d.mu.Lock()
		d.completeUntil, d.listed, d.renamed = time.Time{}, nil, nil
		d.mu.Unlock()
	}
	for _, ch := range n.Children() {
		if ch.IsDir() {
			forgetListings(ch)
		}
	}
}

// noteName adds name to d's complete listing, if it has one: a name this
// mount gave an entry there (a rename) is not taken for absent once the
// kernel forgets the entry's inode.
func (d *Dir) noteName(name string) {
	d.mu.Lock()
	if time.Now().Before(d.completeUntil) {
		if d.renamed == nil {
			d.renamed = map[string]bool{}
		}
		d.renamed[name] = true
	}
	d.mu.Unlock()
}

// absent reports whether d's complete listing says name is not there.
func (d *Dir) absent(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !time.Now().Before(d.completeUntil) {
		d.listed, d.renamed = nil, nil
		return false
	}
	_, listed := d.listed[name]
	return !listed && !d.renamed[name]
}

// statChild is FS.stat of the entry name (whose key is key), answered
// without a request when d's listing (or this mount's mkdir) says it is
// not there.
func (d *Dir) statChild(ctx context.Context, name, key string) (objMeta, syscall.Errno) {
	if d.absent(name) && d.GetChild(name) == nil && !d.fsys.stats.known(key) && !d.fsys.lazy.has(key) {
		return objMeta{}, syscall.ENOENT
	}
	return d.fsys.stat(ctx, key)
}

var (
	_ = (gofs.NodeLookuper)((*Dir)(nil))
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
	if !utf8.ValidString(name) {
		return nil, syscall.ENOENT // no key holds it
	}
	key := d.prefix() + name
	if len(key) > maxKeyLen {
		return nil, syscall.ENOENT // nor this (a server may answer 400)
	}
	n, revived := d.childFile(name), false
	if n == nil {
		// Forgotten by the kernel with work pending: it comes back.
		n = d.fsys.takeDetached(key)
		revived = n != nil
	}
	if n != nil && (revived || n.writing()) {
		// Being written here (or its attributes not written yet): the
		// local copy is the truth.
		d.fsys.fillAttr(n.getMetaWithSize(), &out.Attr)
		out.SetEntryTimeout(d.fsys.opt.StatTTL)
		out.SetAttrTimeout(d.fsys.opt.StatTTL)
		return n.EmbeddedInode(), 0
	}
	m, errno := d.statChild(ctx, name, key)
	if errno != 0 {
		return nil, errno
	}
	ch, m := d.child(ctx, name, m)
	d.fsys.fillAttr(m, &out.Attr)
	out.SetEntryTimeout(d.fsys.opt.StatTTL)
	out.SetAttrTimeout(d.fsys.opt.StatTTL)
	return ch, 0
}

// child returns the inode for name, reusing the existing one when its type
// still matches.
func (d *Dir) child(ctx context.Context, name string, m objMeta) (*gofs.Inode, objMeta) {
	if ch := d.GetChild(name); ch != nil {
		switch n := ch.Operations().(type) {
		case *Dir:
			if m.dir {
				return ch, m
			}
		case *File:
			if !m.dir && n.fileType() == m.fileType() {
				return ch, n.setMeta(m) // (attributes set here may be newer)
			}
		}
	}
	if m.dir {
		return d.NewInode(ctx, &Dir{fsys: d.fsys}, gofs.StableAttr{Mode: syscall.S_IFDIR}), m
	}
	f := &File{fsys: d.fsys}
	f.setMeta(m)
	f.setKey(d.prefix() + name)
	return d.NewInode(ctx, f, gofs.StableAttr{Mode: m.fileType()}), m
}

// list pages through d's listing (one page ahead, see transport.ListPages)
// and hands each page's entries to l as it comes in, so that the kernel
// takes the first entries, and with READDIRPLUS builds their inodes, while
// the server prepares the next page. Every entry's attributes go in the stat
// cache; HEADs start for files whose metadata is not cached, so that the
// READDIRPLUS lookups are answered without one request each.
func (d *Dir) list(ctx context.Context, l *listing) {
	f := d.fsys
	prefix := d.prefix()
	names := map[string]uint32{}
	emitted := map[string]bool{}
	var heads []headJob
	var added, held []string
	// eager: more than one page, so HEADs go out as the pages come in;
	// else they wait in f.lazy for a first stat.
	eager := false
	// Pages after the first count as sent when the listing began: an
	// answer the stat cache got since then stays. oldest: when the first
	// page was sent.
	sent := time.Now()
	oldest := sent
	ttl := f.opt.StatTTL
	page := func(out *transport.ListOutput) error {
		heads, added = f.absorbPage(out, sent, ttl, prefix, names, heads, added[:0])
		last := out.NextToken == ""
		if !last {
			eager = true
		}
		if eager && len(heads) > 0 {
			f.startHeads(heads)
			heads = nil
		}
		// A file whose name a later page may still list as a directory
		// (keys sort after this page's last) waits: the directory is shown.
		end := ""
		if n := len(out.Objects); n > 0 {
			end = out.Objects[n-1].Key
		}
		if n := len(out.CommonPrefixes); n > 0 && out.CommonPrefixes[n-1] > end {
			end = out.CommonPrefixes[n-1]
		}
		var ready []string
		wait := func(n string) bool { return !last && prefix+n+"/" > end }
		kept := held[:0]
		for _, n := range held {
			switch {
			case names[n] == syscall.S_IFDIR: // listed as a directory since
			case wait(n):
				kept = append(kept, n)
			default:
				ready = append(ready, n)
			}
		}
		held = kept
		for _, n := range added {
			if names[n] != syscall.S_IFDIR && wait(n) {
				held = append(held, n)
			} else {
				ready = append(ready, n)
			}
		}
		if last {
			if len(heads) > 0 {
				f.lazy.add(heads, f.opt.StatTTL, d)
			}
			local := f.detachedIn(d.prefix())
			for nm, ch := range d.Children() {
				if n, ok := ch.Operations().(*File); ok && n.writing() {
					local = append(local, nm)
				}
			}
			for _, nm := range local {
				if _, ok := names[nm]; !ok {
					names[nm] = syscall.S_IFREG
					ready = append(ready, nm)
				}
			}
			if len(names) <= maxCompleteDir {
				d.markComplete(names, oldest)
				d.setKids(subdirs(names))
			}
		}
		sort.Strings(ready)
		entries := make([]fuse.DirEntry, 0, len(ready))
		for _, n := range ready {
			if emitted[n] {
				continue
			}
			emitted[n] = true
			mode := names[n]
			if mode == syscall.S_IFREG {
				if e, ok := f.stats.fresh(prefix + n); ok && e.exists {
					mode = e.meta.fileType()
				}
			}
			entries = append(entries, fuse.DirEntry{Name: n, Mode: mode})
		}
		l.add(entries, last, 0)
		return nil
	}
	in := transport.ListInput{Prefix: prefix, Delimiter: "/"}
	if first, at := f.prefetchedPage(ctx, prefix); first != nil {
		began := sent
		sent, oldest, ttl = at, at, f.opt.StatTTL-time.Since(at)
		page(first)
		sent, ttl = began, f.opt.StatTTL
		if first.NextToken == "" {
			d.walked()
			return
		}
		in.Token = first.NextToken
	}
	if err := transport.ListPages(ctx, f.bucket, in, page); err != nil {
		l.add(nil, true, f.errno("list", prefix, err))
		return
	}
	d.walked()
}

// listing is an open directory's entries as they come in.
type listing struct {
	mu      sync.Mutex
	entries []fuse.DirEntry
	more    chan struct{} // closed when entries grow or the listing ends
	done    bool
	errno   syscall.Errno
	cancel  context.CancelFunc
	next    int // the entry Readdirent gives next
}

func (d *Dir) startListing() *listing {
	ctx, cancel := context.WithCancel(d.fsys.ctx)
	l := &listing{more: make(chan struct{}), cancel: cancel,
		entries: []fuse.DirEntry{{Name: ".", Mode: syscall.S_IFDIR}, {Name: "..", Mode: syscall.S_IFDIR}}}
	go d.list(ctx, l)
	return l
}

// add appends entries; with done the listing ends, with errno as its result.
func (l *listing) add(entries []fuse.DirEntry, done bool, errno syscall.Errno) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	l.entries = append(l.entries, entries...)
	l.done, l.errno = done, errno
	close(l.more)
	l.more = make(chan struct{})
}

// wait returns once the listing has more than n entries or has ended: the
// number of entries, and whether it ended.
func (l *listing) wait(n int) (int, bool, syscall.Errno) {
	for {
		l.mu.Lock()
		have, done, errno, more := len(l.entries), l.done, l.errno, l.more
		l.mu.Unlock()
		if have > n || done {
			return have, done, errno
		}
		<-more
	}
}

// readdirent gives the next entry: nil at the end.
func (l *listing) readdirent() (*fuse.DirEntry, syscall.Errno) {
	have, _, errno := l.wait(l.next)
	if l.next >= have {
		return nil, errno
	}
	l.mu.Lock()
	e := l.entries[l.next]
	l.mu.Unlock()
	l.next++
	e.Off = uint64(l.next)
	return &e, 0
}

// seekdir moves to entry off (as numbered by readdirent), once listed.
func (l *listing) seekdir(off uint64) syscall.Errno {
	if off > 0 {
		if have, _, _ := l.wait(int(off) - 1); int(off) > have {
			return syscall.EINVAL
		}
	}
	l.next = int(off)
	return 0
}

// absorbPage takes one page of a directory's listing, sent at sent: names
// gets each entry's type (and added the names set), the stat cache the
// directories' attributes (and the files' with --fast-list or when
// unchanged), and heads the files whose metadata needs a HEAD. An answer
// the stat cache got after the page was sent (this mount's own upload,
// delete or rmdir, a HEAD) is newer than the page and stays.
//
// What the page says goes in the stat cache for ttl: the stat TTL, less
// the time a page prefetched a while ago waited.
func (f *FS) absorbPage(out *transport.ListOutput, sent time.Time, ttl time.Duration, prefix string, names map[string]uint32, heads []headJob, added []string) ([]headJob, []string) {
	for _, cp := range out.CommonPrefixes {
		name := strings.TrimSuffix(strings.TrimPrefix(cp, prefix), "/")
		if !f.validName(cp, name) {
			continue
		}
		mode, seen := names[name] // (an object of this name, on an earlier page)
		if seen && mode != syscall.S_IFDIR {
			f.warnOnce(prefix+name, "an object and a directory share this name; the directory is shown")
		}
		names[name] = syscall.S_IFDIR
		added = append(added, name)
		key := prefix + name
		// Known now for another TTL (the listing answers lookups).
		if e, ok := f.stats.fresh(key); ok && e.exists && e.meta.dir {
			f.stats.put(key, e.meta, true, ttl)
		} else if ok && e.at.After(sent) && !seen {
			// (Removed, or made a file, since.)
		} else {
			f.stats.put(key, f.dirMeta(f.mountTime), true, ttl)
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
				added = append(added, name)
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
		e, ok := f.stats.fresh(o.Key)
		if ok && !e.exists && e.at.After(sent) {
			continue // removed since the page was sent (unlinked, renamed)
		}
		names[name] = syscall.S_IFREG
		added = append(added, name)
		listed := f.metaFromListing(o)
		if ok && e.exists && !e.meta.dir && e.meta.etag == o.ETag {
			// Unchanged: what is cached holds for another TTL.
			f.stats.put(o.Key, e.meta, true, ttl)
			continue
		} else if ok && e.at.After(sent) {
			continue // changed or removed since the page was sent
		}
		if f.opt.FastList {
			f.stats.put(o.Key, listed, true, ttl)
			continue
		}
		f.stats.forgetIfResolved(o.Key)
		if !f.stats.known(o.Key) {
			heads = append(heads, headJob{key: o.Key, listed: listed})
		}
	}
	return heads, added
}

// WarmRoot takes the first page of the root's listing, sent to prove the
// bucket answers, so that looking up a top-level name costs no request when
// that page is the whole listing.
func (f *FS) WarmRoot(out *transport.ListOutput) {
	names := map[string]uint32{}
	heads, _ := f.absorbPage(out, time.Time{}, f.opt.StatTTL, f.opt.Prefix, names, nil, nil) // (nothing is known yet)
	if out.NextToken != "" {
		return
	}
	if len(heads) > 0 {
		f.lazy.add(heads, f.opt.StatTTL, f.root)
	}
	if len(names) <= maxCompleteDir {
		f.root.markComplete(names, time.Now())
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
	mu sync.Mutex // guards l
	l  *listing
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

func (h *dirHandle) listing() *listing {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.l == nil {
		h.l = h.d.startListing()
	}
	return h.l
}

// Readdirent implements FileReaddirenter.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return h.listing().readdirent()
}

// Seekdir implements FileSeekdirer.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return h.listing().seekdir(off)
}

// Releasedir implements FileReleasedirer: a listing still coming in stops.
func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.l != nil {
		h.l.cancel()
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
