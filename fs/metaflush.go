package fs

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// Attributes set on a file whose data is unchanged (chmod, chown, touch of
// a closed file) change the object's metadata, which takes a self-copy. They
// are written a moment later (Options.MetaDelay) rather than at once, so
// that the usual sequence of a copy tool — close, set times, set mode,
// rename — costs one copy, the rename's, which carries them. An fsync, the
// next upload of the file and the unmount write them too. Until then this
// mount shows the new attributes and other clients the old ones.

// metaFlusher holds the files whose attributes wait to be written.
type metaFlusher struct {
	mu      sync.Mutex
	pending map[*File]*time.Timer
	running sync.WaitGroup // timers that fired and are writing
	closed  bool           // drained: changes from now on are written at once
	late    []*File        // for the drain: failed in a timer as it began, or left by an upload during it
}

// deferMeta records that n's attributes changed; they are written after
// MetaDelay unless something writes them sooner.
func (n *File) deferMeta(key string, m objMeta) syscall.Errno {
	f := n.fsys
	n.mu.Lock()
	n.metaDirty = true
	n.mu.Unlock()
	f.stats.put(key, m, true, f.opt.StatTTL)
	if !n.scheduleMeta() {
		return n.flushMeta(context.Background())
	}
	return 0
}

// scheduleMeta has n's pending attributes written after MetaDelay, or
// reports false when they are to be written now (no delay, or the mount
// is draining).
func (n *File) scheduleMeta() bool {
	f := n.fsys
	mf := &f.metas
	mf.mu.Lock()
	defer mf.mu.Unlock()
	if f.opt.MetaDelay < 0 || mf.closed {
		return false
	}
	if _, ok := mf.pending[n]; !ok {
		if mf.pending == nil {
			mf.pending = map[*File]*time.Timer{}
		}
		mf.pending[n] = time.AfterFunc(f.opt.MetaDelay, func() { n.metaDue() })
	}
	return true
}

// metaDue writes n's pending attributes when their delay is over; on failure
// it tries again later (the data itself is safe in the object).
func (n *File) metaDue() {
	f := n.fsys
	f.metas.mu.Lock()
	if f.metas.closed {
		f.metas.mu.Unlock()
		return // the drain writes it
	}
	delete(f.metas.pending, n)
	f.metas.running.Add(1)
	f.metas.mu.Unlock()
	defer f.metas.running.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errno := n.flushMeta(ctx)
	switch errno {
	case 0:
	case syscall.ESTALE, syscall.ENOENT:
		// The object changed or went behind our back: its own attributes
		// win, as for any change made elsewhere.
		f.log.Warn("attributes not written: the object changed or was deleted meanwhile", "key", n.key(), "errno", errno.Error())
		n.mu.Lock()
		n.metaDirty = false
		n.mu.Unlock()
		f.stats.forget(n.key())
	default:
		f.metas.mu.Lock()
		if f.metas.closed {
			// The drain is waiting for this timer: it tries once more.
			f.metas.late = append(f.metas.late, n)
		} else if _, ok := f.metas.pending[n]; !ok {
			f.log.Warn("attributes not written to the object; trying again in 10s", "key", n.key(), "errno", errno.Error())
			f.metas.pending[n] = time.AfterFunc(10*time.Second, func() { n.metaDue() })
		}
		f.metas.mu.Unlock()
	}
}

// flushMeta writes n's pending attributes now.
func (n *File) flushMeta(ctx context.Context) syscall.Errno {
	n.upMu.Lock()
	defer n.upMu.Unlock()
	n.mu.Lock()
	if !n.metaDirty || n.unlinked || (n.ws != nil && n.ws.dirty) {
		// Nothing to write, no object any more, or the attributes go up
		// with the data.
		n.mu.Unlock()
		return 0
	}
	n.metaDirty = false
	m := n.meta
	n.mu.Unlock()
	errno := n.setMetaRemote(ctx, n.key(), m)
	if errno != 0 {
		n.mu.Lock()
		n.metaDirty = true
		n.mu.Unlock()
	}
	return errno
}

// takeMeta returns n's attributes (with the local copy's size) and whether
// some of them wait to be written, and clears that mark in the same
// step: the caller writes them (a rename's copy, an xattr's self-copy).
// Call with upMu held; give them back with restoreMeta if that fails.
func (n *File) takeMeta() (objMeta, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.meta
	if n.ws != nil {
		m.size = n.ws.size
	}
	d := n.metaDirty
	n.metaDirty = false
	return m, d
}

func (n *File) restoreMeta() {
	n.mu.Lock()
	n.metaDirty = true
	n.mu.Unlock()
}

// flushMetas writes every pending attribute change now (unmount); later
// changes are written at once.
func (f *FS) flushMetas(ctx context.Context) error {
	f.metas.mu.Lock()
	f.metas.closed = true
	var files []*File
	for n, t := range f.metas.pending {
		t.Stop()
		files = append(files, n)
	}
	f.metas.pending = nil
	f.metas.mu.Unlock()
	f.metas.running.Wait()
	return f.flushMetaFiles(ctx, files)
}

// flushMetaFiles writes the attributes of files and of the files left for
// the drain (metas.late).
func (f *FS) flushMetaFiles(ctx context.Context, files []*File) error {
	f.metas.mu.Lock()
	files = append(files, f.metas.late...)
	f.metas.late = nil
	f.metas.mu.Unlock()
	failed := 0
	for _, n := range files {
		if errno := n.flushMeta(ctx); errno != 0 {
			failed++
			f.log.Warn("attributes not written to the object", "key", n.key(), "errno", errno.Error())
		}
	}
	if failed > 0 {
		return fmt.Errorf("the attributes of %d files were not written to their objects", failed)
	}
	return nil
}
