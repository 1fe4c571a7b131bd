package cache

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Store is the folder of write-back files, bounded in bytes.
//
// Lock order: Store.mu, then WriteFile.mu (reclaimLocked looks whether a
// file closed); no holder of a WriteFile.mu takes Store.mu. Neither is held
// across a wait for space except Store.mu inside its condition variable.
type Store struct {
	dir string
	max int64

	mu    sync.Mutex
	cond  *sync.Cond
	used  int64 // bytes reserved by write-back files
	waits int   // reserves waiting for space (for tests)
	// reclaim: what can give space back when a writer waits for it (the
	// bytes of files already uploaded, see OnPressure), by file, each
	// file's oldest first; a file's go when it is closed.
	reclaim map[*WriteFile][]func() Reclaimed

	outMu      sync.Mutex
	outQueue   []writeOut // ranges to write out and drop from memory, oldest first
	outRunning bool       // a goroutine is working through outQueue
	outDone    int        // ranges written out (or skipped: file closed)
}

type writeOut struct {
	w *WriteFile
	r Range
}

// maxWriteOuts bounds the queue of WriteOut; more are ignored, as the
// request is only a hint.
const maxWriteOuts = 1024

// writeOutAlign is the largest folio the page cache uses for a file (a huge
// page with 4 KiB pages).
const writeOutAlign = 2 << 20

// ErrNoSpace is returned when the cache cannot take more data.
var ErrNoSpace = fmt.Errorf("write-back cache is full: %w", syscall.ENOSPC)

// NewStore uses dir (created 0700 when missing) for at most maxBytes.
func NewStore(dir string, maxBytes int64) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	if maxBytes <= 0 {
		maxBytes = 10 << 30
	}
	s := &Store{dir: dir, max: maxBytes}
	s.cond = sync.NewCond(&s.mu)
	return s, nil
}

// Dir is the store's folder.
func (s *Store) Dir() string { return s.dir }

// Used is how many bytes the store's files hold.
func (s *Store) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// reserve takes n bytes, waiting up to wait for others to release space.
func (s *Store) reserve(n int64, wait time.Duration) error {
	if n <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used+n <= s.max {
		s.used += n
		return nil
	}
	if n > s.max {
		return ErrNoSpace // more than the whole cache: no wait makes room
	}
	s.reclaimLocked(n)
	if s.used+n <= s.max {
		s.used += n
		return nil
	}
	deadline := time.Now().Add(wait)
	// The wake-up takes the lock, so it cannot slip in between the check
	// of the deadline and the Wait.
	timer := time.AfterFunc(wait, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer timer.Stop()
	s.waits++
	defer func() { s.waits-- }()
	for s.used+n > s.max {
		if !time.Now().Before(deadline) {
			return ErrNoSpace
		}
		s.cond.Wait()
		s.reclaimLocked(n) // (parts uploaded meanwhile)
	}
	s.used += n
	return nil
}

// Reclaimed is what a reclaimer did.
type Reclaimed int

const (
	Freed  Reclaimed = iota // gave its bytes back
	Gone                    // has nothing to give any more
	NotNow                  // cannot now (its file is busy): ask again later
)

// OnPressure registers fn, which can give some of w's cache space back
// (bytes that are safe elsewhere, such as parts already uploaded), to be
// called when a writer would otherwise wait for space, until w is closed.
// fn is called with no lock of the store's held.
func (w *WriteFile) OnPressure(fn func() Reclaimed) {
	s := w.s
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if closed {
		return
	}
	if s.reclaim == nil {
		s.reclaim = map[*WriteFile][]func() Reclaimed{}
	}
	s.reclaim[w] = append(s.reclaim[w], fn)
}

// forgetReclaim drops w's reclaimers (w is closed).
func (s *Store) forgetReclaim(w *WriteFile) {
	s.mu.Lock()
	delete(s.reclaim, w)
	s.mu.Unlock()
}

// reclaimLocked calls the reclaimers until n more bytes fit or each was
// asked once. Called with s.mu held; releases it while a reclaimer runs.
func (s *Store) reclaimLocked(n int64) {
	if len(s.reclaim) == 0 {
		return
	}
	files := make([]*WriteFile, 0, len(s.reclaim))
	for w := range s.reclaim {
		files = append(files, w)
	}
	for _, w := range files {
		if s.used+n <= s.max {
			return
		}
		fns := s.reclaim[w]
		delete(s.reclaim, w)
		var later []func() Reclaimed
		for i, fn := range fns {
			if s.used+n <= s.max {
				later = append(later, fns[i:]...)
				break
			}
			s.mu.Unlock()
			r := fn()
			s.mu.Lock()
			if r == NotNow {
				later = append(later, fn)
			}
		}
		if len(later) > 0 {
			// (Unless w was closed meanwhile.)
			w.mu.Lock()
			closed := w.closed
			w.mu.Unlock()
			if !closed {
				s.reclaim[w] = append(later, s.reclaim[w]...)
			}
		}
	}
}

func (s *Store) release(n int64) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	s.used -= n
	s.mu.Unlock()
	s.cond.Broadcast()
}

// Range is [Off, Off+Len).
type Range struct{ Off, Len int64 }

// End is the first byte after r.
func (r Range) End() int64 { return r.Off + r.Len }

// rangeSet is a sorted set of disjoint, non-adjacent ranges.
type rangeSet []Range

func (rs rangeSet) add(r Range) rangeSet {
	if r.Len <= 0 {
		return rs
	}
	out := make(rangeSet, 0, len(rs)+1)
	for _, x := range rs {
		if x.End() < r.Off || x.Off > r.End() {
			out = append(out, x)
			continue
		}
		lo, hi := min(x.Off, r.Off), max(x.End(), r.End())
		r = Range{lo, hi - lo}
	}
	out = append(out, r)
	sort.Slice(out, func(i, j int) bool { return out[i].Off < out[j].Off })
	return out
}

// cut keeps only what lies below size.
func (rs rangeSet) cut(size int64) rangeSet {
	out := rs[:0:0]
	for _, x := range rs {
		if x.Off >= size {
			continue
		}
		if x.End() > size {
			x.Len = size - x.Off
		}
		out = append(out, x)
	}
	return out
}

// missing lists the parts of r not in the set.
func (rs rangeSet) missing(r Range) []Range {
	var out []Range
	pos := r.Off
	for _, x := range rs {
		if x.End() <= pos {
			continue
		}
		if x.Off >= r.End() {
			break
		}
		if x.Off > pos {
			out = append(out, Range{pos, x.Off - pos})
		}
		pos = max(pos, x.End())
	}
	if pos < r.End() {
		out = append(out, Range{pos, r.End() - pos})
	}
	return out
}

// sub removes r from the set.
func (rs rangeSet) sub(r Range) rangeSet {
	var out rangeSet
	for _, x := range rs {
		if x.End() <= r.Off || x.Off >= r.End() {
			out = append(out, x)
			continue
		}
		if x.Off < r.Off {
			out = append(out, Range{x.Off, r.Off - x.Off})
		}
		if x.End() > r.End() {
			out = append(out, Range{r.End(), x.End() - r.End()})
		}
	}
	return out
}

func (rs rangeSet) total() int64 {
	var n int64
	for _, x := range rs {
		n += x.Len
	}
	return n
}

// WriteFile is the local copy of one file being written: a sparse file in
// the store plus the ranges it really holds (written, or fetched from the
// object it started from).
type WriteFile struct {
	s *Store
	f *os.File

	mu         sync.Mutex
	present    rangeSet
	discarded  rangeSet // uploaded, then given back to free the cache
	restores   uint64   // calls of Restore that restored ranges
	writtenOut rangeSet // handed to WriteOut: to stay out of the page cache
	charged    int64    // bytes reserved in the store
	size       int64    // the file's logical size: Fill stops there
	prepaid    int64    // reserved by Prepay, not charged yet
	closed     bool
}

// SpaceWait is how long a writer waits for uploads to free cache space
// before it gets ENOSPC.
const SpaceWait = 60 * time.Second

// Create makes a new, empty write-back file of the given logical size
// (sparse: nothing present).
func (s *Store) Create(size int64) (*WriteFile, error) {
	f, err := os.CreateTemp(s.dir, "wb-*")
	if err != nil {
		return nil, mapDiskErr(err)
	}
	// A new file is empty already. Truncating it to 0 anyway would cost a
	// write to disk: ext4 (auto_da_alloc) then flushes the file's data when
	// it is closed, as it would for a file replaced by truncate-and-write.
	if size > 0 {
		if err := f.Truncate(size); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, mapDiskErr(err)
		}
	}
	return &WriteFile{s: s, f: f, size: size}, nil
}

// Name is the file's path.
func (w *WriteFile) Name() string { return w.f.Name() }

// reserveFor reserves the bytes adding r would make newly present, as the
// file stands now, using prepaid bytes first. addLocked settles the
// reservation against what the add really grew by, which a concurrent
// change of the file (another write of the same range, a truncate) may
// have made smaller or larger.
func (w *WriteFile) reserveFor(r Range) (int64, error) {
	w.mu.Lock()
	grow := w.present.add(r).total() - w.present.total()
	use := min(grow, w.prepaid)
	w.prepaid -= use
	w.mu.Unlock()
	if rest := grow - use; rest > 0 {
		if err := w.s.reserve(rest, SpaceWait); err != nil {
			w.mu.Lock()
			if w.closed {
				// (Close gave back the prepaid bytes it still saw.)
				w.mu.Unlock()
				w.s.release(use)
				return 0, err
			}
			w.prepaid += use
			w.mu.Unlock()
			return 0, err
		}
	}
	return grow, nil
}

// addLocked marks r present and charges the file for what that grew it
// by, out of reserved (from reserveFor); it returns the difference for
// settle. Called with w.mu held. A closed file takes nothing: its space
// went back at Close.
func (w *WriteFile) addLocked(r Range, reserved int64) (surplus int64) {
	if w.closed {
		return reserved
	}
	before := w.present.total()
	w.present = w.present.add(r)
	grow := w.present.total() - before
	w.charged += grow
	return reserved - grow
}

// subLocked drops r from the present ranges and from the file's charge; it
// returns the bytes to give back to the store. Called with w.mu held.
func (w *WriteFile) subLocked(r Range) (freed int64) {
	before := w.present.total()
	w.present = w.present.sub(r)
	freed = before - w.present.total()
	if w.closed {
		return 0
	}
	w.charged -= freed
	return freed
}

// settle gives back a reservation's surplus, or takes what a reservation
// fell short by (a few bytes past --cache-size for a moment rather than a
// wait under a lock).
func (s *Store) settle(surplus int64) {
	if surplus > 0 {
		s.release(surplus)
	} else if surplus < 0 {
		s.mu.Lock()
		s.used -= surplus
		s.mu.Unlock()
	}
}

// Prepay reserves n bytes for a change about to be made (a truncate that
// grows the file), waiting for space as a write does, so that the change
// itself, made under the caller's locks, need not wait. Refund gives back
// what the change did not use.
func (w *WriteFile) Prepay(n int64) error {
	if err := w.s.reserve(n, SpaceWait); err != nil {
		return err
	}
	w.mu.Lock()
	w.prepaid += n
	w.mu.Unlock()
	return nil
}

// Refund gives back the prepaid bytes no change used.
func (w *WriteFile) Refund() {
	w.mu.Lock()
	n := w.prepaid
	w.prepaid = 0
	w.mu.Unlock()
	w.s.release(n)
}

// punchHole is punchFile; tests replace it.
var punchHole = punchFile

// ErrDiscarded refuses access to bytes given back after their upload.
var ErrDiscarded = errors.New("these bytes were uploaded and dropped from the cache to make room; the file can only be written on from its end until it is closed")

// WriteAt writes p at off and marks it present. A full cache gives
// ErrNoSpace (ENOSPC) after waiting for space, a full disk ENOSPC. The range
// counts as present before the bytes land, so that a concurrent Fill never
// writes over them.
func (w *WriteFile) WriteAt(p []byte, off int64) (int, error) {
	r := Range{off, int64(len(p))}
	if w.Discarded(r) {
		return 0, ErrDiscarded
	}
	reserved, err := w.reserveFor(r)
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	fresh := w.present.missing(r) // what this write makes present
	surplus := w.addLocked(r, reserved)
	w.mu.Unlock()
	w.s.settle(surplus)
	n, err := w.f.WriteAt(p, off)
	w.mu.Lock()
	var regrown int64
	if n > 0 {
		// The size grows once the bytes have landed: a Fill never writes
		// past what the disk file holds. A truncate meanwhile may have cut
		// what the write marked; the bytes are on the disk now, so they
		// are held again.
		landed := Range{off, int64(n)}
		w.size = max(w.size, landed.End())
		regrown = -w.addLocked(landed, 0)
	}
	var freed int64
	if err != nil {
		// What did not land is not held, unless it was before: the
		// object's bytes must still be fetched for it.
		for _, m := range fresh {
			lo, hi := max(m.Off, off+int64(n)), m.End()
			if lo < hi {
				freed += w.subLocked(Range{lo, hi - lo})
			}
		}
	}
	w.mu.Unlock()
	w.s.settle(-regrown)
	w.s.release(freed)
	return n, mapDiskErr(err)
}

// Fill writes p at off only where the file does not hold data yet: bytes
// fetched from the object the file started from never replace written ones,
// and none land past the file's size, which a truncate may have cut since
// they were fetched.
func (w *WriteFile) Fill(p []byte, off int64) error {
	w.mu.Lock()
	r := Range{off, min(int64(len(p)), w.size-off)}
	w.mu.Unlock()
	if r.Len <= 0 {
		return nil
	}
	reserved, err := w.reserveFor(r)
	if err != nil {
		return err
	}
	w.mu.Lock()
	r.Len = min(r.Len, w.size-off) // (a truncate meanwhile)
	surplus := reserved
	if r.Len > 0 && !w.closed {
		for _, m := range w.present.missing(r) {
			if _, err = w.f.WriteAt(p[m.Off-off:m.End()-off], m.Off); err != nil {
				break
			}
		}
		if err == nil {
			surplus = w.addLocked(r, reserved)
		}
	}
	w.mu.Unlock()
	w.s.settle(surplus)
	return mapDiskErr(err)
}

// ReadAt reads from the local file; ranges never written read as zeros.
func (w *WriteFile) ReadAt(p []byte, off int64) (int, error) {
	r := Range{off, int64(len(p))}
	if w.Discarded(r) {
		return 0, ErrDiscarded
	}
	n, err := w.f.ReadAt(p, off)
	// Discard marks a range before it punches the hole: a range marked
	// after the check above may have been read as the hole's zeros.
	if w.Discarded(r) {
		return 0, ErrDiscarded
	}
	return n, err
}

// Missing lists the parts of r that the file does not hold.
func (w *WriteFile) Missing(r Range) []Range {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.present.missing(r)
}

// Truncate changes the logical size; data past it is dropped (and its
// space given back), a grown tail is present (zeros).
func (w *WriteFile) Truncate(oldSize, size int64) error {
	var reserved int64
	if size > oldSize {
		var err error
		if reserved, err = w.reserveFor(Range{oldSize, size - oldSize}); err != nil {
			return err
		}
	}
	w.mu.Lock()
	if err := w.truncateFile(size); err != nil {
		w.mu.Unlock()
		w.s.release(reserved)
		return mapDiskErr(err)
	}
	freed := w.subLocked(Range{size, math.MaxInt64 - size}) // (all past the new end)
	w.discarded = w.discarded.cut(size)
	w.size = size
	surplus := reserved
	if size > oldSize {
		surplus = w.addLocked(Range{oldSize, size - oldSize}, reserved)
	}
	w.mu.Unlock()
	w.s.release(freed)
	w.s.settle(surplus)
	return nil
}

// truncateFile sets the size of the file on disk, unless it has that size
// already: a truncate to 0 of an empty file (an O_TRUNC open of a new file,
// dd's ftruncate) would make ext4 flush the data written next to disk when
// the file is closed (auto_da_alloc).
func (w *WriteFile) truncateFile(size int64) error {
	if fi, err := w.f.Stat(); err == nil && fi.Size() == size {
		return nil
	}
	return w.f.Truncate(size)
}

// Discard gives back the space of r, whose bytes are safely elsewhere (an
// uploaded part). Reading or writing r afterwards is refused.
func (w *WriteFile) Discard(r Range) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	held := r.Len
	for _, m := range w.present.missing(r) {
		held -= m.Len
	}
	w.present = w.present.sub(r)
	w.discarded = w.discarded.add(r)
	w.charged -= held
	w.mu.Unlock()
	if err := punchHole(w.f, r); err != nil {
		// The bytes stay on the cache disk until the file goes (no hole
		// punching here), and so does their share of --cache-size.
		w.mu.Lock()
		if !w.closed {
			w.charged += held
			w.mu.Unlock()
			return
		}
		w.mu.Unlock() // (closed meanwhile: its close left these to us)
	}
	w.s.release(held)
}

// WriteOut writes r to the cache disk and then drops it from the page
// cache, in the background, one range at a time per store. The bytes stay
// in the file: reading or rewriting r still works, from the disk. Called
// for parts already uploaded, so that a large file being written does not
// hold its whole size in memory until it is closed: fresh page-cache pages
// are costly, and the server's own files need them.
func (w *WriteFile) WriteOut(r Range) {
	if r.Len <= 0 {
		return
	}
	// The page cache drops only whole folios inside the range, and a
	// folio may be as large as 2 MiB: one across the boundary of two parts
	// goes with the later part, which starts from the boundary before it.
	// Pages of the part before that are still being uploaded are read back
	// from the disk if need be.
	if lo := r.Off &^ (writeOutAlign - 1); lo < r.Off {
		r = Range{lo, r.Len + r.Off - lo}
	}
	w.mu.Lock()
	w.writtenOut = w.writtenOut.add(r)
	w.mu.Unlock()
	s := w.s
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if len(s.outQueue) >= maxWriteOuts {
		return
	}
	s.outQueue = append(s.outQueue, writeOut{w, r})
	if !s.outRunning {
		s.outRunning = true
		go s.writeOutLoop()
	}
}

func (s *Store) writeOutLoop() {
	for {
		s.outMu.Lock()
		if len(s.outQueue) == 0 {
			s.outRunning = false
			s.outMu.Unlock()
			return
		}
		o := s.outQueue[0]
		s.outQueue[0] = writeOut{}
		s.outQueue = s.outQueue[1:]
		s.outMu.Unlock()
		// Pages still referenced elsewhere (a socket buffer of the part's
		// upload not freed yet) cannot be dropped: every write-out of the
		// file tries again for all the ranges written out before it.
		o.w.mu.Lock()
		again := append(rangeSet(nil), o.w.writtenOut...)
		o.w.mu.Unlock()
		// Control holds the descriptor open for the call and fails once
		// the file is closed, so no other file's descriptor is touched.
		if c, err := o.w.f.SyscallConn(); err == nil {
			_ = c.Control(func(fd uintptr) {
				writeOutPages(int(fd), o.r)
				for _, r := range again {
					dropPages(int(fd), r)
				}
			})
		}
		s.outMu.Lock()
		s.outDone++
		s.outMu.Unlock()
	}
}

// Restore forgets which ranges were discarded: their bytes are available
// elsewhere again (the object an upload of the file completed), and they
// count as ranges the file never held, to be fetched or copied from there.
func (w *WriteFile) Restore() {
	w.mu.Lock()
	if len(w.discarded) > 0 {
		w.discarded = nil
		w.restores++
	}
	w.mu.Unlock()
}

// Restores counts the calls of Restore that restored ranges: a reader that
// took the ranges missing from the file for the base's may check that none
// became so meanwhile.
func (w *WriteFile) Restores() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.restores
}

// Discarded reports whether any of r was discarded.
func (w *WriteFile) Discarded(r Range) bool {
	if r.Len <= 0 {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.discarded.missing(r)) != 1 || w.discarded.missing(r)[0] != r
}

// Pressure reports whether the store is more than half full.
func (s *Store) Pressure() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used > s.max/2
}

// Remove deletes the file and gives its space back.
func (w *WriteFile) Remove() {
	if w.Close() {
		os.Remove(w.f.Name())
	}
}

func mapDiskErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("cache disk full: %w", syscall.ENOSPC)
	}
	return err
}

// Sync makes the file's data durable on the cache disk.
func (w *WriteFile) Sync() error { return mapDiskErr(w.f.Sync()) }

// Present lists the ranges the file holds.
func (w *WriteFile) Present() []Range {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Range(nil), w.present...)
}

// Adopt takes back a write-back file a previous mount left in the store's
// folder (named by its base name), of the given logical size, with the
// ranges it was known to hold.
func (s *Store) Adopt(name string, size int64, present []Range) (*WriteFile, error) {
	if filepath.Base(name) != name || !strings.HasPrefix(name, "wb-") {
		return nil, fmt.Errorf("not a write-back file name: %q", name)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	w := &WriteFile{s: s, f: f, size: size}
	for _, r := range present {
		w.present = w.present.add(r)
	}
	held := w.present.total()
	s.mu.Lock()
	s.used += held
	s.mu.Unlock()
	w.charged = held
	return w, nil
}

// Close lets go of the file but keeps it on disk (for a later mount); it
// reports whether this call closed it.
func (w *WriteFile) Close() bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.closed = true
	charged := w.charged + w.prepaid
	w.charged, w.prepaid = 0, 0
	w.mu.Unlock()
	w.s.forgetReclaim(w)
	w.f.Close()
	w.s.release(charged)
	return true
}
