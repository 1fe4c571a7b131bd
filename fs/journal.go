package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"cosmount/cache"
	"cosmount/transport"
)

// With --write-back-delay, close returns once the file's data is durable in
// the cache and a journal entry names it; uploads run later from the
// journal. After a crash the next mount of the same cache dir uploads what
// the journal lists before it is ready. Each uploaded object carries its
// entry's id (metadata "cosmount-wb"), so an entry whose upload completed
// just before a crash is recognised and not uploaded again.
const metaJournalID = "cosmount-wb"

// journalEntry is one pending upload, as written to the journal.
type journalEntry struct {
	ID       string            `json:"id"`
	Key      string            `json:"key"`
	Cache    string            `json:"cache"` // write-back file, in the store's folder
	Size     int64             `json:"size"`
	Meta     map[string]string `json:"meta"`
	BaseETag string            `json:"base_etag,omitempty"`
	BaseKey  string            `json:"base_key,omitempty"`
	BaseSize int64             `json:"base_size,omitempty"` // the bytes of the base that count
	// BaseObjectSize is the base object's own size, which its blocks are
	// fetched by; larger than BaseSize after a truncate.
	BaseObjectSize int64         `json:"base_object_size,omitempty"`
	Present        []cache.Range `json:"present,omitempty"`
}

// writeBack schedules the uploads of closed files after the delay.
//
// Lock order: File.mu, then writeBack.mu.
type writeBack struct {
	f     *FS
	dir   string // journal folder
	delay time.Duration

	mu      sync.Mutex
	due     map[*File]time.Time
	running map[*File]bool
	// draining: the mount has ended; upload even files still counted open.
	draining bool
	wake     chan struct{}
	idle     *sync.Cond
}

func newJournalID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (f *FS) startWriteBack(ctx context.Context) error {
	dir := filepath.Join(f.opt.CacheDir, "journal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	wb := &writeBack{f: f, dir: dir, delay: f.opt.WriteBackDelay, due: map[*File]time.Time{},
		running: map[*File]bool{}, wake: make(chan struct{}, 1)}
	wb.idle = sync.NewCond(&wb.mu)
	f.wb = wb
	if err := wb.recover(ctx); err != nil {
		return err
	}
	go wb.loop(ctx)
	return nil
}

// writeEntry stores e durably: a temporary file, synced, renamed into place.
func (wb *writeBack) writeEntry(e *journalEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := writeDurable(filepath.Join(wb.dir, e.ID+".json"), b); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// writeDurable replaces the file at path with b, whole or not at all: a
// temporary file in the same folder (not matching *.json), synced, renamed
// over path, and the folder synced.
func writeDurable(path string, b []byte) error {
	fd, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := fd.Name()
	if _, err = fd.Write(b); err == nil {
		err = fd.Sync()
	}
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func (wb *writeBack) removeEntry(id string) {
	if id != "" {
		os.Remove(filepath.Join(wb.dir, id+".json"))
	}
}

// commit makes a closed file's data durable and journals its upload.
// Called with n.upMu held.
func (n *File) commit() syscall.Errno {
	f := n.fsys
	n.mu.Lock()
	ws := n.ws
	if ws == nil || !ws.dirty || ws.unlinked {
		n.mu.Unlock()
		return 0
	}
	// Every commit gets a new id: an upload already running carries the
	// old one, so after a crash this entry is not mistaken for it.
	old := ws.journalID
	ws.journalID = newJournalID()
	ws.committedGen = ws.gen
	e := n._journalEntry(n.key())
	n.mu.Unlock()
	if err := ws.wf.Sync(); err != nil {
		return f.errno("write-back", e.Key, err)
	}
	if err := f.wb.writeEntry(e); err != nil {
		return f.errno("write-back", e.Key, err)
	}
	f.wb.removeEntry(old)
	f.wb.schedule(n)
	return 0
}

// _journalEntry describes n's pending upload. Called with n.mu held.
func (n *File) _journalEntry(key string) *journalEntry {
	ws := n.ws
	return &journalEntry{ID: ws.journalID, Key: key, Cache: filepath.Base(ws.wf.Name()), Size: ws.size,
		Meta: n.fsys.uploadMeta(n.meta), BaseETag: ws.base.etag, BaseKey: ws.baseKey, BaseSize: ws.baseEnd, BaseObjectSize: ws.base.size, Present: ws.wf.Present()}
}

// rejournal rewrites a pending file's entry after a rename (to key) or an
// attribute change, so that a crash uploads it under its new name and
// attributes.
func (n *File) rejournal(key string) {
	f := n.fsys
	if f.wb == nil {
		return
	}
	n.mu.Lock()
	if n.ws == nil || n.ws.journalID == "" {
		n.mu.Unlock()
		return
	}
	e := n._journalEntry(key)
	n.mu.Unlock()
	if err := f.wb.writeEntry(e); err != nil {
		f.log.Warn("journal update failed", "key", e.Key, "err", err)
	}
}

func (wb *writeBack) schedule(n *File) {
	wb.mu.Lock()
	wb.due[n] = time.Now().Add(wb.delay)
	wb.mu.Unlock()
	select {
	case wb.wake <- struct{}{}:
	default:
	}
}

// loop starts the uploads that are due, at most FileParallelLimit at once.
func (wb *writeBack) loop(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wb.wake:
		}
		wb.startDue(ctx, time.Now())
	}
}

func (wb *writeBack) startDue(ctx context.Context, now time.Time) {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	for n, at := range wb.due {
		if len(wb.running) >= wb.f.opt.FileParallelLimit {
			return
		}
		if at.After(now) || wb.running[n] {
			continue
		}
		delete(wb.due, n)
		wb.running[n] = true
		go wb.upload(ctx, n)
	}
}

func (wb *writeBack) upload(ctx context.Context, n *File) {
	wb.mu.Lock()
	draining := wb.draining
	wb.mu.Unlock()
	if !draining && n.opensNow() > 0 {
		// Open again: wait until it is closed.
		wb.mu.Lock()
		delete(wb.running, n)
		if _, ok := wb.due[n]; !ok {
			wb.due[n] = time.Now().Add(time.Second)
		}
		wb.mu.Unlock()
		wb.idle.Broadcast()
		return
	}
	errno := n.flushNow(ctx)
	wb.mu.Lock()
	delete(wb.running, n)
	if errno != 0 && ctx.Err() == nil {
		// Try again later; the data stays in the cache meanwhile.
		wb.due[n] = time.Now().Add(max(wb.delay, 5*time.Second))
	}
	wb.mu.Unlock()
	wb.idle.Broadcast()
	if errno == 0 {
		n.dropClean()
	}
	select {
	case wb.wake <- struct{}{}:
	default:
	}
}

// Drain uploads every pending file now and waits for them, logging
// progress; cosmount calls it when the mount ends.
func (f *FS) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { f.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("uploads of released files still running: %w", ctx.Err())
	}
	// Attributes that could not be written are reported, after the
	// journal's uploads, which must not wait on them.
	metaErr := f.flushMetas(ctx)
	wb := f.wb
	if wb == nil {
		return metaErr
	}
	wb.mu.Lock()
	wb.draining = true
	for n := range wb.due {
		wb.due[n] = time.Time{}
	}
	wb.mu.Unlock()
	last := time.Time{}
	for {
		wb.startDue(ctx, time.Now())
		wb.mu.Lock()
		pending := len(wb.due) + len(wb.running)
		wb.mu.Unlock()
		if pending == 0 {
			// Attributes the uploads could not write with the data.
			if err := f.flushMetaFiles(ctx, nil); metaErr == nil {
				metaErr = err
			}
			return metaErr
		}
		if time.Since(last) > 2*time.Second {
			f.log.Info("waiting for pending uploads", "files", pending)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%d uploads still pending; they stay in the journal for the next mount: %w", pending, ctx.Err()), metaErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// recover uploads what a previous mount journaled but did not upload.
func (wb *writeBack) recover(ctx context.Context) error {
	f := wb.f
	names, _ := filepath.Glob(filepath.Join(wb.dir, "*.json"))
	for _, p := range names {
		b, err := os.ReadFile(p)
		var e journalEntry
		if err == nil {
			err = json.Unmarshal(b, &e)
		}
		if err != nil || e.ID+".json" != filepath.Base(p) || !strings.HasPrefix(e.Key, f.opt.Prefix) {
			f.log.Warn("journal entry unreadable or for another prefix; left in place", "file", p, "err", err)
			continue
		}
		if err := wb.replay(ctx, &e); err != nil {
			f.log.Error("upload from the journal failed; the data stays in the cache", "key", e.Key, "cache_file", e.Cache, "err", err)
			continue
		}
		f.log.Info("uploaded from the journal", "key", e.Key, "bytes", e.Size)
	}
	return nil
}

func (wb *writeBack) replay(ctx context.Context, e *journalEntry) error {
	f := wb.f
	wf, err := f.store.Adopt(e.Cache, e.Present)
	if err != nil {
		return err
	}
	o, err := f.bucket.Head(ctx, &transport.HeadInput{Key: e.Key})
	switch {
	case err == nil && o.Metadata[metaJournalID] == e.ID:
		// Uploaded before the crash; only the journal was left behind.
	case err != nil && !errors.Is(err, transport.ErrNotFound):
		wf.Close()
		return err
	default:
		baseSize := e.BaseObjectSize
		if baseSize == 0 {
			baseSize = e.BaseSize // an entry from before BaseObjectSize
		}
		ws := &writeState{wf: wf, base: objMeta{etag: e.BaseETag, size: baseSize}, baseEnd: e.BaseSize, baseKey: e.BaseKey, size: e.Size, dirty: true}
		if ws.baseKey == "" {
			ws.baseKey = e.Key
		}
		meta := map[string]string{}
		for k, v := range e.Meta {
			meta[k] = v
		}
		meta[metaJournalID] = e.ID
		if _, err := f.upload(ctx, e.Key, ws.baseKey, ws.wf, ws.base, ws.baseEnd, stream{}, e.Size, meta); err != nil {
			wf.Close()
			return err
		}
	}
	wb.removeEntry(e.ID)
	wf.Remove()
	f.stats.forget(e.Key)
	wb.abortStale(ctx, e.Key)
	return nil
}

// abortStale aborts the multipart uploads of key that a crashed mount left
// behind (a file streamed while it was written).
func (wb *writeBack) abortStale(ctx context.Context, key string) {
	b := wb.f.bucket
	ups, err := b.ListMultipartUploads(ctx, key)
	if err != nil {
		return
	}
	for _, u := range ups {
		if u.Key == key && u.Initiated.Before(wb.f.mountTime) {
			_ = b.AbortMultipart(ctx, key, u.UploadID)
		}
	}
}
