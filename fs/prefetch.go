package fs

import (
	"context"
	"sort"
	"sync"
	"syscall"
	"time"

	"cosmount/transport"
)

// Directory prefetch. A program walking a tree (find, du, ls -R, a copy out
// of the mount) lists sibling directories one after another, and each
// listing is a round trip. When the subdirectories of a directory are
// listed in order, the listings of the next prefetchAhead ones are fetched
// ahead, a few at once; when the program also asks for the files'
// attributes (du, ls -lR), their HEADs start with the prefetched listing.
// A prefetched listing is used only if nothing in the mount's namespace
// changed since it was sent, and within the stat TTL.

const (
	prefetchAhead    = 16 // subdirectories listed ahead of a walk
	prefetchParallel = 16 // prefetched LISTs in flight, mount-wide
)

type prefetched struct {
	done chan struct{}
	out  *transport.ListOutput
	err  error
	gen  uint64    // FS.nsGen when the LIST was sent
	at   time.Time // when it was sent
}

// listingCache holds prefetched first pages of listings by prefix until a
// Readdir takes them.
type listingCache struct {
	mu  sync.Mutex
	m   map[string]*prefetched
	sem chan struct{}
}

// take removes and returns the prefetched listing of prefix, if any.
func (l *listingCache) take(prefix string) *prefetched {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.m[prefix]
	delete(l.m, prefix)
	return p
}

// namespaceChanged records a change this mount made to names (create,
// delete, rename, a finished upload): prefetched listings sent before it
// are not used.
func (f *FS) namespaceChanged() { f.nsGen.Add(1) }

// prefetchedPage waits for the prefetched first page of prefix and returns
// it, and when it was sent, if it is still good, else nil.
func (f *FS) prefetchedPage(ctx context.Context, prefix string) (*transport.ListOutput, time.Time) {
	p := f.listings.take(prefix)
	if p == nil {
		return nil, time.Time{}
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, time.Time{}
	}
	if p.err != nil || p.gen != f.nsGen.Load() || time.Since(p.at) > f.opt.StatTTL {
		return nil, time.Time{}
	}
	return p.out, p.at
}

// prefetchListing starts listing prefix in the background; with heads, the
// HEADs of its files start as soon as it is in.
func (f *FS) prefetchListing(prefix string, heads bool) {
	l := &f.listings
	now := time.Now()
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*prefetched{}
		l.sem = make(chan struct{}, prefetchParallel)
	}
	if _, ok := l.m[prefix]; ok {
		l.mu.Unlock()
		return
	}
	if len(l.m) > 4*prefetchAhead {
		for k, p := range l.m { // never taken: the walk went elsewhere
			if now.Sub(p.at) > f.opt.StatTTL {
				delete(l.m, k)
			}
		}
	}
	p := &prefetched{done: make(chan struct{}), gen: f.nsGen.Load(), at: now}
	l.m[prefix] = p
	sem := l.sem
	l.mu.Unlock()
	go func() {
		defer close(p.done)
		select {
		case sem <- struct{}{}:
		case <-f.ctx.Done():
			p.err = f.ctx.Err()
			return
		}
		defer func() { <-sem }()
		ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
		defer cancel()
		p.out, p.err = f.bucket.List(ctx, &transport.ListInput{Prefix: prefix, Delimiter: "/"})
		if p.err == nil && heads && p.out.NextToken == "" && p.gen == f.nsGen.Load() {
			heads, _ := f.absorbPage(p.out, p.at, f.opt.StatTTL-time.Since(p.at), prefix, map[string]uint32{}, nil, nil)
			f.startHeads(heads)
		}
	}()
}

// startHeads queues the HEADs of jobs whose keys nothing else is resolving.
func (f *FS) startHeads(jobs []headJob) {
	q := jobs[:0]
	for _, j := range jobs {
		if e, owner := f.stats.begin(j.key); owner {
			j.e = e
			q = append(q, j)
		}
	}
	if len(q) > 0 {
		f.heads.add(q)
	}
}

// subdirs is the sorted names of the directories among a listing's entries.
func subdirs(names map[string]uint32) []string {
	var kids []string
	for n, mode := range names {
		if mode == syscall.S_IFDIR {
			kids = append(kids, n)
		}
	}
	sort.Strings(kids)
	return kids
}

// setKids records d's subdirectories (sorted) from a complete listing.
func (d *Dir) setKids(kids []string) {
	d.mu.Lock()
	d.kids, d.lastKid, d.fetchedTo = kids, -1, -1
	d.mu.Unlock()
}

// walked is called after d was listed: if d's siblings are being listed in
// order, the next ones are listed ahead.
func (d *Dir) walked() {
	name, parent := d.Parent()
	if parent == nil {
		return
	}
	p, ok := parent.Operations().(*Dir)
	if !ok {
		return
	}
	next, prev := p.nextKids(name)
	if len(next) == 0 {
		return
	}
	// The files of the sibling listed before this one had their attributes
	// asked for: the walk wants them, so their HEADs go with the listings
	// from now on.
	if ch := p.GetChild(prev); ch != nil {
		if pd, ok := ch.Operations().(*Dir); ok && pd.statted.Load() {
			p.kidsStatted.Store(true)
		}
	}
	heads := p.kidsStatted.Load()
	prefix := p.prefix()
	for _, k := range next {
		d.fsys.prefetchListing(prefix+k+"/", heads)
	}
}

// nextKids notes that kid name was listed; if it follows the one listed
// before, it returns the subdirectories to list ahead (not yet asked for)
// and the name of the previous one.
func (d *Dir) nextKids(name string) (next []string, prev string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := sort.SearchStrings(d.kids, name)
	if i >= len(d.kids) || d.kids[i] != name {
		return nil, ""
	}
	seq := d.lastKid >= 0 && i == d.lastKid+1
	d.lastKid = i
	if !seq {
		return nil, ""
	}
	from, to := max(i+1, d.fetchedTo+1), min(len(d.kids), i+1+prefetchAhead)
	if from >= to {
		return nil, ""
	}
	d.fetchedTo = to - 1
	return append([]string(nil), d.kids[from:to]...), d.kids[i-1]
}
