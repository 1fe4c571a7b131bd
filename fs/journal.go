package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
	// Upload is the multipart upload that holds the parts of a streamed
	// file that left the cache; nil for a file the cache holds whole.
	Upload *keptUpload `json:"upload,omitempty"`
	// Written orders the entries of one key: they are replayed oldest
	// first, so that the newest data is the last uploaded.
	Written time.Time `json:"written,omitempty"`
	// Expect is the object the key held as far as the mount knew when it
	// wrote the entry: its ETag, "" for none; nil when it did not know
	// (after a rename). A replay does not overwrite another object.
	Expect *string `json:"expect,omitempty"`
}

// keptUpload is a streamed file's open multipart upload, as journaled when
// the mount ends with its upload failed: the next mount resumes it.
type keptUpload struct {
	ID string `json:"id"`
	// Key is where the upload is: the file's key, unless a directory
	// above the file was renamed while it began (the object is moved to
	// the entry's key once complete).
	Key       string            `json:"key"`
	PartEnds  []int64           `json:"part_ends"`      // end of each part streamed, from part 1
	ChunkSize int64             `json:"chunk_size"`     // the parts' GrowingPartSize chunk
	Redo      []int             `json:"redo,omitempty"` // parts rewritten since they were sent
	Meta      map[string]string `json:"meta"`           // attributes it was initiated with
}

// writeBack schedules the uploads of closed files after the delay.
//
// Lock order: File.mu, then writeBack.mu.
type writeBack struct {
	f     *FS
	delay time.Duration

	mu      sync.Mutex
	due     map[*File]time.Time
	running map[*File]bool
	// draining: the mount has ended; upload even files still counted open.
	draining bool
	// drainTries counts each file's failed uploads since the drain began;
	// after drainTries of them it is left to the journal (gaveUp).
	drainTries map[*File]int
	gaveUp     int
	wake       chan struct{}
	idle       *sync.Cond
}

// drainTries is how many times the drain at the end of a mount tries a
// pending upload before leaving it to the journal.
const drainTries = 3

func newJournalID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (f *FS) startWriteBack(ctx context.Context) error {
	if err := os.MkdirAll(f.journalDir(), 0o700); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	wb := &writeBack{f: f, delay: f.opt.WriteBackDelay, due: map[*File]time.Time{},
		running: map[*File]bool{}, wake: make(chan struct{}, 1)}
	wb.idle = sync.NewCond(&wb.mu)
	f.wb = wb
	go wb.loop(ctx)
	return nil
}

// journalDir holds the journal: the delayed uploads of --write-back-delay,
// and the files whose upload still failed when a mount ended.
func (f *FS) journalDir() string { return filepath.Join(f.opt.CacheDir, "journal") }

// writeEntry stores e durably: a temporary file, synced, renamed into place.
func (f *FS) writeEntry(e *journalEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.journalDir(), 0o700); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := writeDurable(filepath.Join(f.journalDir(), e.ID+".json"), b); err != nil {
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

// claimCacheDir records origin as the one dir serves, unless dir holds
// journaled uploads for another origin: their keys are another bucket's
// (or another prefix's), and uploading them here would write them where
// they do not belong.
func claimCacheDir(dir, origin string) error {
	if origin == "" {
		return nil
	}
	p := filepath.Join(dir, "origin")
	old, err := os.ReadFile(p)
	switch {
	case err == nil && string(old) == origin:
		return nil
	case err == nil:
		if pending, _ := filepath.Glob(filepath.Join(dir, "journal", "*.json")); len(pending) > 0 {
			return fmt.Errorf("cache dir %s holds %d uploads journaled for %s, not %s: mount that with this cache dir to upload them, or give this mount another --cache-dir", dir, len(pending), old, origin)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("cache dir: %w", err)
	}
	if err := writeDurable(p, []byte(origin)); err != nil {
		return fmt.Errorf("cache dir: %w", err)
	}
	return nil
}

func (f *FS) removeEntry(id string) {
	if id != "" {
		os.Remove(filepath.Join(f.journalDir(), id+".json"))
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
	old, oldGen := ws.journalID, ws.committedGen
	ws.journalID = newJournalID()
	ws.committedGen = ws.gen
	e := n._journalEntry(n.key())
	n.mu.Unlock()
	err := ws.wf.Sync()
	if err == nil {
		err = f.writeEntry(e)
	}
	if err != nil {
		// Not journaled: close reports it, and the upload is still
		// scheduled (a failed one is retried, and the unmount journals
		// it or tries again), so that the data is not left behind.
		n.mu.Lock()
		if ws.journalID == e.ID {
			ws.journalID, ws.committedGen = old, oldGen
		}
		ws.lastErr = err
		n.mu.Unlock()
		f.setFailed(n, true)
		f.wb.schedule(n)
		return f.errno("write-back", e.Key, err)
	}
	f.removeEntry(old)
	f.wb.schedule(n)
	return 0
}

// _journalEntry describes n's pending upload. Called with n.mu held.
func (n *File) _journalEntry(key string) *journalEntry {
	ws := n.ws
	e := &journalEntry{ID: ws.journalID, Key: key, Cache: filepath.Base(ws.wf.Name()), Size: ws.size,
		Meta: n.fsys.uploadMeta(n.meta), BaseETag: ws.base.etag, BaseKey: ws.baseKey, BaseSize: ws.baseEnd, BaseObjectSize: ws.base.size, Present: ws.wf.Present(),
		Written: time.Now()}
	switch {
	case !n.keyUnknown:
		etag := n.meta.etag
		e.Expect = &etag
	case n.keyHolds != nil:
		etag := *n.keyHolds
		e.Expect = &etag
	}
	return e
}

// headOrNone is key's HEAD, nil when there is no object.
func (f *FS) headOrNone(ctx context.Context, key string) (*transport.ObjectInfo, error) {
	o, err := f.bucket.Head(ctx, &transport.HeadInput{Key: key})
	if errors.Is(err, transport.ErrNotFound) {
		return nil, nil
	}
	return o, err
}

// checkExpected reports an error when key holds another object than e
// expects (o is its HEAD, nil when there is none): someone else wrote or
// deleted it since e was journaled, and e's older data must not replace
// that.
func checkExpected(e *journalEntry, o *transport.ObjectInfo) error {
	if e.Expect == nil {
		return nil
	}
	got := ""
	if o != nil {
		got = o.ETag
	}
	if got == *e.Expect {
		return nil
	}
	return fmt.Errorf("the object changed after this file was journaled (someone else wrote or deleted it), so it is not overwritten; the data stays in the cache file %s; delete the journal entry %s.json to drop it", e.Cache, e.ID)
}

// rejournal rewrites a pending file's entry after a rename (to key) or an
// attribute change, so that a crash uploads it under its new name and
// attributes.
//
// holds is what the key holds as far as the caller knows (an ETag, ""
// for nothing), nil when it does not know: a replay of the entry after a
// crash checks it, as it checks a file's own key.
func (n *File) rejournal(key string, holds *string) {
	f := n.fsys
	n.setKey(key)
	n.mu.Lock()
	n.keyUnknown, n.keyHolds = true, holds
	n.mu.Unlock()
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
	if err := f.writeEntry(e); err != nil {
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
	switch {
	case errno == 0 || ctx.Err() != nil:
	case draining:
		// The mount is ending: a few tries, then its journal entry
		// takes it to the next mount, rather than holding this one.
		if wb.drainTries[n]++; wb.drainTries[n] < drainTries {
			wb.due[n] = time.Now().Add(time.Second)
		} else {
			wb.gaveUp++
			wb.f.log.Warn("file not uploaded; it stays in the journal for the next mount on the cache dir", "key", n.key(), "errno", errno.Error())
		}
	default:
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
	f.deleteUnreleased()
	if err := f.waitBackground(ctx); err != nil {
		// Given up: what is known to have failed is journaled still.
		return errors.Join(fmt.Errorf("uploads of released files still running: %w", err), f.keepFailed(ctx))
	}
	err := f.drain(ctx)
	// The deletes and aborts the drain's own work started (an unlinked
	// file's object, a stray key, an upload given up).
	if werr := f.waitBackground(ctx); werr != nil {
		err = errors.Join(err, fmt.Errorf("deletes still running: %w", werr))
	}
	return err
}

// deleteUnreleased starts the deletes whose last close the kernel never
// reported (it drops a release still queued when the mount ends): the
// objects of files unlinked or renamed away while open.
func (f *FS) deleteUnreleased() {
	f.hiddenMu.Lock()
	held := slices.Collect(maps.Values(f.hidden))
	f.hiddenMu.Unlock()
	for _, n := range held {
		n.mu.Lock()
		n._startDeletes()
		n.mu.Unlock()
	}
}

// waitBackground waits for the work started in the background (f.bg).
func (f *FS) waitBackground(ctx context.Context) error {
	// A deferred delete is counted under hiddenMu (deleteLater): taking it
	// here orders the count of one registered before this call (by a
	// rename that has returned) before the Wait.
	f.hiddenMu.Lock()
	f.hiddenMu.Unlock()
	done := make(chan struct{})
	go func() { f.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *FS) drain(ctx context.Context) error {
	// Files whose upload failed get one more try, and the journal.
	failErr := f.keepFailed(ctx)
	// Attributes that could not be written are reported, after the
	// journal's uploads, which must not wait on them.
	metaErr := errors.Join(failErr, f.flushMetas(ctx))
	wb := f.wb
	if wb == nil {
		return metaErr
	}
	wb.mu.Lock()
	wb.draining = true
	wb.drainTries = map[*File]int{}
	for n := range wb.due {
		wb.due[n] = time.Time{}
	}
	wb.mu.Unlock()
	last := time.Time{}
	for {
		wb.startDue(ctx, time.Now())
		wb.mu.Lock()
		pending := len(wb.due) + len(wb.running)
		gaveUp := wb.gaveUp
		wb.mu.Unlock()
		if pending == 0 {
			if gaveUp > 0 {
				metaErr = errors.Join(metaErr, fmt.Errorf("%d files could not be uploaded; the next mount on %s uploads them", gaveUp, f.opt.CacheDir))
			}
			// Attributes the uploads could not write with the data.
			return errors.Join(metaErr, f.flushMetaFiles(ctx, nil))
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

// readJournal returns the entries a previous mount left in the journal.
func (f *FS) readJournal() []*journalEntry {
	names, _ := filepath.Glob(filepath.Join(f.journalDir(), "*.json"))
	var entries []*journalEntry
	for _, p := range names {
		b, err := os.ReadFile(p)
		e := new(journalEntry)
		if err == nil {
			err = json.Unmarshal(b, e)
		}
		if err != nil || e.ID+".json" != filepath.Base(p) || !strings.HasPrefix(e.Key, f.opt.Prefix) {
			f.log.Warn("journal entry unreadable or for another prefix; left in place", "file", p, "err", err)
			continue
		}
		entries = append(entries, e)
	}
	slices.SortStableFunc(entries, func(a, b *journalEntry) int { return a.Written.Compare(b.Written) })
	// One cache file, one pending upload: the newest entry. An older one
	// survives its removal only by a crash before the folder reached the
	// disk; replaying it would upload stale bytes, then drop the file the
	// newer one needs.
	newest := map[string]*journalEntry{}
	for _, e := range entries {
		newest[e.Cache] = e
	}
	kept := entries[:0]
	for _, e := range entries {
		if newest[e.Cache] != e {
			f.log.Info("journal entry replaced by a newer one for the same cache file; dropped", "key", e.Key, "entry", e.ID)
			f.removeEntry(e.ID)
			continue
		}
		kept = append(kept, e)
	}
	return kept
}

// keptUploads is the ids of the multipart uploads that entries resume.
func keptUploads(entries []*journalEntry) map[string]bool {
	ids := map[string]bool{}
	for _, e := range entries {
		if e.Upload != nil {
			ids[e.Upload.ID] = true
		}
	}
	return ids
}

// recoverJournal uploads what a previous mount journaled but did not
// upload.
func (f *FS) recoverJournal(ctx context.Context, entries []*journalEntry) {
	keep := keptUploads(entries)
	for _, e := range entries {
		if err := f.replay(ctx, e, keep); err != nil {
			f.log.Error("upload from the journal failed; the data stays in the cache", "key", e.Key, "cache_file", e.Cache, "err", err)
			continue
		}
		f.log.Info("uploaded from the journal", "key", e.Key, "bytes", e.Size)
	}
}

// replay uploads e; keep is the multipart uploads that entries resume,
// which it does not abort.
func (f *FS) replay(ctx context.Context, e *journalEntry, keep map[string]bool) error {
	wf, err := f.store.Adopt(e.Cache, e.Size, e.Present)
	if err != nil {
		return err
	}
	if e.Upload != nil {
		err = f.resumeKept(ctx, e, wf)
	} else {
		err = f.replayWhole(ctx, e, wf)
	}
	if err != nil {
		wf.Close()
		return err
	}
	f.removeEntry(e.ID)
	wf.Remove()
	f.stats.forget(e.Key)
	f.abortStale(ctx, e.Key, keep)
	return nil
}

// replayWhole uploads a journaled file the cache holds whole.
func (f *FS) replayWhole(ctx context.Context, e *journalEntry, wf *cache.WriteFile) error {
	o, err := f.headOrNone(ctx, e.Key)
	if err != nil {
		return err
	}
	if o != nil && o.Metadata[metaJournalID] == e.ID {
		// Uploaded before the crash; only the journal was left behind.
		return nil
	}
	if err := checkExpected(e, o); err != nil {
		return err
	}
	baseSize := e.BaseObjectSize
	if baseSize == 0 {
		baseSize = e.BaseSize // an entry from before BaseObjectSize
	}
	base := objMeta{etag: e.BaseETag, size: baseSize}
	baseKey := e.BaseKey
	if baseKey == "" {
		baseKey = e.Key
	}
	meta := maps.Clone(e.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[metaJournalID] = e.ID
	_, err = f.upload(ctx, e.Key, baseKey, wf, base, e.BaseSize, stream{}, e.Size, meta)
	return err
}

// resumeKept finishes the multipart upload of a streamed file whose parts
// left the cache: the parts the upload lacks (the tail, rewritten and
// failed parts) are sent from the cache, and it is completed.
func (f *FS) resumeKept(ctx context.Context, e *journalEntry, wf *cache.WriteFile) error {
	u := e.Upload
	upKey := u.Key
	if upKey == "" {
		upKey = e.Key
	}
	o, err := f.headOrNone(ctx, e.Key)
	if err == nil {
		err = checkExpected(e, o)
	}
	if err != nil {
		return err
	}
	mw, err := f.up.Resume(ctx, upKey, u.ID)
	if errors.Is(err, transport.ErrNotFound) {
		// Completed by a Complete whose answer was lost, or aborted by
		// someone else (a lifecycle rule): nothing here tells which, and
		// the object under the key may be an older version of the same
		// size. The entry stays, for a person to decide.
		return fmt.Errorf("its multipart upload %s under %q is gone, with the parts that had left the cache; if the object is whole, delete the journal entry %s.json: %w", u.ID, upKey, e.ID, err)
	}
	if err != nil {
		return err
	}
	note := uploadNotePath(f.uploadNotesDir(), u.ID)
	mw.OnEnd(func() { os.Remove(note) })
	st := stream{mw: mw, ok: true, seqEnd: e.Size, nextPart: len(u.PartEnds) + 1, partEnds: u.PartEnds, meta: u.Meta, chunk: u.ChunkSize}
	if n := len(u.PartEnds); n > 0 {
		st.nextOff = u.PartEnds[n-1]
	}
	for _, p := range u.Redo {
		if st.redo == nil {
			st.redo = map[int]bool{}
		}
		st.redo[p] = true
	}
	etag, err := f.finishStream(ctx, wf, st, e.Size, e.Meta)
	if upKey != e.Key && (err == nil || errors.As(err, new(metaNotApplied))) {
		if _, err := f.moveUploaded(ctx, upKey, e.Key, etag, e.Size, e.Meta); err != nil {
			return err
		}
		err = nil
	}
	if errors.As(err, new(metaNotApplied)) {
		f.log.Warn("attributes of a file uploaded from the journal not written", "key", e.Key, "err", err)
		err = nil
	}
	return err
}

// abortStale aborts the multipart uploads of key that a crashed mount left
// behind (a file streamed while it was written), but those in keep.
func (f *FS) abortStale(ctx context.Context, key string, keep map[string]bool) {
	b := f.bucket
	ups, err := b.ListMultipartUploads(ctx, key)
	if err != nil {
		return
	}
	for _, u := range ups {
		if u.Key == key && u.Initiated.Before(f.mountTime) && !keep[u.UploadID] {
			_ = b.AbortMultipart(ctx, key, u.UploadID)
		}
	}
}

// setFailed notes whether n's last upload failed.
func (f *FS) setFailed(n *File, failed bool) {
	f.failedMu.Lock()
	defer f.failedMu.Unlock()
	if failed {
		f.failed[n] = true
	} else {
		delete(f.failed, n)
	}
}

// keepFailed runs when the mount ends. Each file whose last upload failed
// (its close or fsync reported it) is journaled, so that the next mount on
// this cache dir uploads it from the cache before it is ready, as it does
// after a crash; then it is uploaded once more, and its entry dropped if
// that works. Journaling first needs no network: a mount killed during the
// retries still leaves every file journaled. With ctx done (a second
// signal) files are only journaled, those not being uploaded right now.
// Files the write-back journal already names are the write-back's.
func (f *FS) keepFailed(ctx context.Context) error {
	f.failedMu.Lock()
	files := make([]*File, 0, len(f.failed))
	for n := range f.failed {
		files = append(files, n)
	}
	f.failedMu.Unlock()
	var kept, lost int
	for _, n := range files {
		if n.journaledNow() {
			continue
		}
		if ctx.Err() == nil {
			n.upMu.Lock()
		} else if !n.upMu.TryLock() {
			continue
		}
		key, id, err := n.journalFailed()
		if id != "" && ctx.Err() == nil {
			if n.flushNowLocked(ctx) == 0 {
				f.removeEntry(id)
				key, err = "", nil
			} else {
				// Journaled again from what the retry left: it may have
				// completed a kept upload, or moved where the data is.
				f.removeEntry(id)
				key, _, err = n.journalFailed()
			}
		}
		n.upMu.Unlock()
		switch {
		case err != nil:
			lost++
			f.log.Error("file not uploaded and not journaled; its data is lost when the cache dir is emptied", "key", key, "err", err)
		case key != "":
			kept++
			f.log.Warn("file not uploaded; journaled for the next mount on this cache dir", "key", key)
		default:
			n.dropClean()
		}
	}
	switch {
	case lost > 0:
		return fmt.Errorf("%d files could not be uploaded nor journaled, and %d were journaled for the next mount on %s", lost, kept, f.opt.CacheDir)
	case kept > 0:
		return fmt.Errorf("%d files could not be uploaded; the next mount on %s uploads them", kept, f.opt.CacheDir)
	}
	return nil
}

// journaledNow reports whether n's pending upload is in the journal.
func (n *File) journaledNow() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ws != nil && n.ws.journalID != ""
}

// journalFailed writes a journal entry for n's failed upload, with its
// kept multipart upload if parts of it left the cache. It returns the key
// ("" when nothing needs uploading any more) and the entry's id. A file the cache holds whole
// carries the entry's id from then on, as a --write-back-delay file does:
// its next upload is marked with it (so the entry is not replayed after
// it) and drops the entry. Called with n.upMu held.
func (n *File) journalFailed() (key, id string, err error) {
	f := n.fsys
	key = n.key()
	n.mu.Lock()
	ws := n.ws
	if ws == nil || !ws.dirty || ws.unlinked {
		n.mu.Unlock()
		return "", "", nil
	}
	e := n._journalEntry(key)
	e.ID = newJournalID()
	switch st := ws.st; {
	case st.mw != nil && ws.discarded:
		e.Upload = &keptUpload{ID: st.mw.UploadID(), Key: st.mw.Key(), PartEnds: slices.Clone(st.partEnds),
			ChunkSize: st.chunkSize(f), Meta: st.meta}
		for p := range st.redo {
			e.Upload.Redo = append(e.Upload.Redo, p)
		}
		slices.Sort(e.Upload.Redo)
		e.Meta = n._uploadMetaWith(st)
	case ws.wf.Discarded(cache.Range{Off: 0, Len: ws.size}) && ws.base.etag == "":
		// (With a base, the parts that left the cache are in it: see
		// moveStreamed.)
		n.mu.Unlock()
		return key, "", errors.New("parts of it left the cache and the multipart upload holding them is gone")
	default:
		ws.journalID, ws.committedGen = e.ID, ws.gen
	}
	n.mu.Unlock()
	if err := ws.wf.Sync(); err != nil {
		return key, e.ID, err
	}
	return key, e.ID, f.writeEntry(e)
}
