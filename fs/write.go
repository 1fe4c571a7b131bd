package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"cosmount/cache"
	"cosmount/transport"
)

// writeState is a file's local copy from its first write until it is
// uploaded: the write-back file, what it started from, and the streaming
// multipart upload of its completed parts. Guarded by File.mu.
type writeState struct {
	wf *cache.WriteFile
	// base is the object the local copy started from; untouched ranges
	// are read from it (and copied server-side on upload). Empty etag: no
	// base, untouched ranges are zeros.
	base    objMeta
	baseKey string // where base lives (the file's key, until a rename moves it)
	// baseEnd: the bytes of base that still count, from 0; base.size
	// lowered by a truncate below it (past baseEnd the copy reads as
	// zeros). base.size stays the object's size: blocks of base are
	// fetched and cached by it.
	baseEnd int64
	size    int64
	// lowSince: the smallest size since the upload in flight (if any)
	// started; the bytes past it are not the uploaded object's.
	lowSince int64
	dirty    bool
	gen      uint64 // bumped by every change, to tell an upload raced a write
	// uploaded: the key holds an object (so rename must move it).
	uploaded bool
	unlinked bool
	lastErr  error

	// st is the streaming upload of a file written sequentially from 0;
	// streams counts those begun after the first, numbering them.
	st      stream
	streams uint64
	// mtimeSet: mtime was set explicitly (utimens) since the last write.
	mtimeSet bool
	// journalID names the journal entry of a closed file waiting for its
	// delayed upload ("" when none); committedGen is gen when it was written.
	journalID    string
	committedGen uint64
	// discarded: uploaded parts left the cache (see streamParts).
	discarded bool
	// emptied counts truncates to 0: a streamed upload kept through a
	// failed flush goes back to the file only if it was not emptied since.
	emptied int
	// stray: an object this file's upload left under a name the file no
	// longer has (see moveStreamed); deleted once the file is uploaded
	// under its own.
	stray string
}

// stream is the multipart upload of a file's completed parts, started
// while the file is written sequentially from offset 0: parts
// 1..nextPart-1 (bytes [0, nextOff)) have been handed to mw.
type stream struct {
	mw       *transport.MultipartWriter
	ok       bool
	seqEnd   int64
	nextPart int
	nextOff  int64
	partEnds []int64 // end offset of each streamed part
	redo     map[int]bool
	// meta went with the upload's Initiate (no mtime).
	meta map[string]string
	// chunk sizes its parts (GrowingPartSize); 0: the mount's ChunkSize.
	// A stream resumed by a later mount keeps the sizes it began with.
	chunk int64
	// epoch tells the streams of one local copy apart: parts tracked for
	// one are never sent in another's upload (see streamParts).
	epoch uint64
}

// newStream is a fresh stream, which may start only on an empty file.
func newStream(size int64, epoch uint64) stream {
	return stream{ok: size == 0, nextPart: 1, epoch: epoch}
}

// chunkSize is what st's parts are sized by.
// streamCapacity is the most bytes a stream of chunk-sized parts can hold:
// 10,000 parts of growing sizes (transport.GrowingPartSize).
func streamCapacity(chunk int64) int64 {
	var c int64
	for num := 1; num <= transport.MaxParts; num += 1000 {
		c += 1000 * transport.GrowingPartSize(chunk, num)
	}
	return c
}

func (st *stream) chunkSize(f *FS) int64 {
	if st.chunk > 0 {
		return st.chunk
	}
	return f.opt.ChunkSize
}

// _detachStream hands the streaming upload to a flush: later writes no
// longer touch it. An empty file may stream again from offset 0: dd, for
// one, closes a copy of its descriptor before its first write, which
// flushes the new file. Called with the file's lock held.
func (ws *writeState) _detachStream() stream {
	st := ws.st
	ws.streams++
	ws.st = newStream(ws.size, ws.streams)
	return st
}

// newWriteState starts a local copy of size bytes on top of base. An empty
// one may stream from offset 0, whatever its base: an empty object has no
// bytes the upload would need from it (cp over a file made by touch, whose
// open with O_TRUNC reaches cosmount as an open without it, and no
// truncate, as the file is already empty).
func (f *FS) newWriteState(base objMeta, size int64) (*writeState, error) {
	wf, err := f.store.Create(size)
	if err != nil {
		return nil, err
	}
	return &writeState{wf: wf, base: base, baseEnd: base.size, size: size, st: newStream(size, 0)}, nil
}

// startWrite makes sure n has a local copy; trunc starts it empty.
// Called with n.mu held.
func (n *File) _startWrite(trunc bool) error {
	if n.ws != nil {
		if trunc && n.ws.size != 0 {
			return n._truncate(0)
		}
		return nil
	}
	base, size := n.meta, n.meta.size
	if trunc || base.etag == "" {
		base, size = objMeta{}, 0
	}
	ws, err := n.fsys.newWriteState(base, size)
	if err != nil {
		return err
	}
	ws.uploaded = n.meta.etag != ""
	ws.baseKey = n.key()
	n._setWS(ws)
	if trunc && n.meta.etag != "" && n.meta.size != 0 {
		ws.dirty = true
	}
	return nil
}

// _truncate changes the local copy's size. Called with n.mu held.
func (n *File) _truncate(size int64) error {
	ws := n.ws
	if err := ws.wf.Truncate(ws.size, size); err != nil {
		return err
	}
	if size < ws.baseEnd && ws.base.etag != "" {
		// Bytes past the new end must not come back from the base.
		ws.baseEnd = size
	}
	ws.lowSince = min(ws.lowSince, size)
	ws.size = size
	ws.dirty = true
	ws.gen++
	ws.st.ok = false
	if size == 0 {
		// Emptied (open with O_TRUNC reaches here): the file can stream
		// again from offset 0; parts of an earlier stream are dropped.
		ws.discarded = false
		ws.emptied++
		if old := ws._detachStream(); old.mw != nil {
			n.fsys.abortLater(old.mw)
		}
	}
	n.meta.mtime = time.Now()
	return nil
}

// write stores data at off in the local copy and hands completed parts of a
// sequentially written file to the background upload.
func (h *handle) write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n := h.node
	f := n.fsys
	n.mu.Lock()
	ws := n.ws
	if ws == nil {
		n.mu.Unlock()
		return 0, syscall.EBADF
	}
	if ws.discarded && (off != ws.st.seqEnd || ws.st.mw == nil) {
		// Parts of this file were uploaded and left the cache: it can
		// only grow from its end, through its streamed upload, until it
		// is closed (not while a close or fsync uploads it).
		n.mu.Unlock()
		f.warnOnce(h.key, "file larger than the cache written out of order or while being uploaded; refused (it can only be written sequentially, until it is closed)")
		return 0, syscall.EIO
	}
	if ws.base.etag != "" && off > ws.size {
		// The gap between the old end and off reads as zeros.
		ws.baseEnd = min(ws.baseEnd, ws.size)
	}
	if end := off + int64(len(data)); ws.st.ok && off != ws.st.seqEnd {
		// A rewrite of streamed parts: they are sent again at close, and
		// marked so before the write, so that an upload of one of them
		// ending meanwhile does not let its bytes leave the cache.
		ws.st.markRedo(off, end)
		if end > ws.st.seqEnd {
			// Out of order (past the end, or over it): the stream
			// cannot complete the file, and from now on no part may
			// leave the cache (see streamParts), which must hold the
			// whole file for its upload at close.
			ws.st.ok = false
		}
	}
	if end := off + int64(len(data)); ws.st.ok && end > streamCapacity(ws.st.chunkSize(f)) {
		// Past what 10,000 parts of the stream's growing sizes hold.
		n.mu.Unlock()
		return 0, syscall.EFBIG
	}
	n.mu.Unlock()
	w, err := ws.wf.WriteAt(data, off)
	n.mu.Lock()
	end := off + int64(w)
	var parts []streamPart
	if w > 0 { // (a write that stored nothing changes nothing, not even the size)
		if end > ws.size {
			ws.size = end
		}
		ws.dirty = true
		ws.gen++
		n.meta.mtime = time.Now()
		ws.mtimeSet = false
		if ws.st.ok {
			parts = n._streamTrack(off, end)
		}
	}
	if err != nil {
		// The cache held the range for this write until it failed: an
		// upload running meanwhile may have taken it as written, and sent
		// what the cache file had there.
		ws.gen++
	}
	n.mu.Unlock()
	if err != nil {
		return uint32(w), f.errno("write", h.key, err)
	}
	if errno := n.streamParts(ctx, parts); errno != 0 {
		return uint32(w), errno
	}
	return uint32(w), 0
}

// markRedo marks the parts handed over that [off, end) overlaps, to be sent
// again at close.
func (st *stream) markRedo(off, end int64) {
	for i, pe := range st.partEnds {
		start := int64(0)
		if i > 0 {
			start = st.partEnds[i-1]
		}
		if off < pe && end > start {
			if st.redo == nil {
				st.redo = map[int]bool{}
			}
			st.redo[i+1] = true
		}
	}
}

type streamPart struct {
	num      int
	off, len int64
	epoch    uint64 // of the stream it belongs to
}

// _streamTrack notes a write of [off, end) for the streaming upload and
// returns the parts it completed. Called with n.mu held.
func (n *File) _streamTrack(off, end int64) []streamPart {
	ws := n.ws
	switch {
	case off == ws.st.seqEnd:
		ws.st.seqEnd = end
	case end <= ws.st.seqEnd:
		// A rewrite of bytes written before: parts already handed over
		// are sent again at close.
		ws.st.markRedo(off, end)
		return nil
	default:
		ws.st.ok = false
		return nil
	}
	var parts []streamPart
	chunk := ws.st.chunkSize(n.fsys)
	for {
		ps := transport.GrowingPartSize(chunk, ws.st.nextPart)
		if ws.st.seqEnd-ws.st.nextOff < ps {
			break
		}
		parts = append(parts, streamPart{ws.st.nextPart, ws.st.nextOff, ps, ws.st.epoch})
		ws.st.nextOff += ps
		ws.st.partEnds = append(ws.st.partEnds, ws.st.nextOff)
		ws.st.nextPart++
	}
	return parts
}

// streamParts starts the background upload of completed parts.
func (n *File) streamParts(ctx context.Context, parts []streamPart) syscall.Errno {
	if len(parts) == 0 {
		return 0
	}
	f := n.fsys
	epoch := parts[0].epoch
	n.mu.Lock()
	ws := n.ws
	if ws == nil || ws.st.epoch != epoch {
		// Their stream was taken meanwhile (by a flush, a truncate, a
		// rename): what takes it sends them, or the whole file.
		n.mu.Unlock()
		return 0
	}
	mw := ws.st.mw
	n.mu.Unlock()
	// ours reports whether the file's stream is still theirs.
	ours := func() bool { return n.ws == ws && ws.st.epoch == epoch }
	key := n.key()
	if mw == nil {
		var err error
		n.mu.Lock()
		meta := f.uploadMeta(n.meta)
		n.mu.Unlock()
		delete(meta, metaMtime)
		delete(meta, metaMtimeN)
		mw, err = f.beginUpload(ctx, key, meta)
		if err != nil {
			// Not fatal: the whole file goes up at close instead.
			n.mu.Lock()
			if ours() {
				ws.st.ok = false
			}
			n.mu.Unlock()
			f.log.Debug("starting a streaming upload failed; uploading at close", "key", key, "err", err)
			return 0
		}
		if f.wb == nil {
			// Its parts may leave the cache once uploaded (see done
			// below): from then on this upload holds their only copy, so
			// a failure must leave it open for the next try.
			mw.KeepOnFailure()
		}
		n.mu.Lock()
		if ws.st.mw != nil || !ws.st.ok || !ours() {
			// Another write started one first, or a flush took the stream.
			n.mu.Unlock()
			n.fsys.abortLater(mw)
			return 0
		}
		ws.st.mw = mw
		ws.st.meta = meta
		n.mu.Unlock()
	}
	for _, p := range parts {
		r := cache.Range{Off: p.off, Len: p.len}
		num := p.num
		done := func(err error) {
			if err != nil {
				return
			}
			// Once a part is safely uploaded its bytes may leave the cache
			// when it is more than half full, so that a file larger than
			// the cache can still be written (sequentially). Never with
			// the write-back journal, which must be able to upload the
			// whole file after a crash, never a part rewritten since it
			// was handed over, and never once the file was written out
			// of order (the stream will not complete it).
			// (Called with n.mu held.)
			droppable := func() bool { return n.ws == ws && !ws.st.redo[num] && ws.st.mw == mw && ws.st.ok }
			if f.wb == nil && f.store.Pressure() {
				n.mu.Lock()
				if droppable() {
					ws.discarded = true
					ws.wf.Discard(r)
					n.mu.Unlock()
					return
				}
				n.mu.Unlock()
			}
			if f.wb == nil {
				// They may leave it later, when a writer needs the space.
				ws.wf.OnPressure(func() cache.Reclaimed {
					if !n.mu.TryLock() {
						return cache.NotNow
					}
					defer n.mu.Unlock()
					if !droppable() {
						return cache.Gone
					}
					ws.discarded = true
					ws.wf.Discard(r)
					return cache.Freed
				})
			}
			// Otherwise they stay in the cache, on its disk rather than
			// in memory.
			ws.wf.WriteOut(r)
		}
		if err := mw.AddPartNotify(ctx, p.num, ws.wf, p.off, p.len, done); err != nil {
			n.mu.Lock()
			if ours() {
				ws.st.ok = false
			}
			n.mu.Unlock()
			f.log.Debug("streamed part failed; uploading at close", "key", key, "err", err)
			return 0
		}
	}
	return 0
}

// flush is what close does: with --write-back-delay it makes the data
// durable in the cache and journals the upload; otherwise it uploads.
func (n *File) flush(ctx context.Context) syscall.Errno {
	if n.fsys.wb == nil {
		return n.flushNow(ctx)
	}
	n.upMu.Lock()
	defer n.upMu.Unlock()
	return n.commit()
}

// flushNow uploads the file if it changed: the object is complete in the
// bucket when it returns 0. On failure the data stays in the cache and the
// error is returned (and returned again by the next flush until an upload
// works).
func (n *File) flushNow(ctx context.Context) syscall.Errno {
	n.upMu.Lock()
	defer n.upMu.Unlock()
	return n.flushNowLocked(ctx)
}

// flushNowLocked is flushNow with n.upMu held.
func (n *File) flushNowLocked(ctx context.Context) syscall.Errno {
	for try := 1; ; try++ {
		errno, cut := n.flushOnceLocked(ctx)
		if errno == 0 || !cut || try == 3 {
			return errno
		}
		// A truncate cut the file while it was being uploaded, and the
		// upload ran short of bytes: upload what the file holds now.
	}
}

// flushOnceLocked uploads the file once; cut reports a failure of an upload
// during which a truncate cut the file below the size being uploaded.
func (n *File) flushOnceLocked(ctx context.Context) (errno syscall.Errno, cut bool) {
	n.mu.Lock()
	ws := n.ws
	if ws == nil || !ws.dirty || ws.unlinked {
		n.mu.Unlock()
		return 0, false
	}
	gen, size, base, baseKey, baseEnd, emptied, discarded := ws.gen, ws.size, ws.base, ws.baseKey, ws.baseEnd, ws.emptied, ws.discarded
	ws.lowSince = size
	st := ws._detachStream()
	meta := n._uploadMetaWith(st)
	journalID := ws.journalID
	if journalID != "" {
		meta[metaJournalID] = journalID
	}
	n.mu.Unlock()
	key := n.key()
	upKey := key
	if st.mw != nil && st.mw.Key() != key {
		// Streamed under a name the file no longer has: a directory above
		// it was renamed while the stream began.
		if discarded {
			// Parts of it left the cache and exist only in that upload:
			// it is completed under the old name, and the object moved.
			upKey = st.mw.Key()
		} else {
			// Start over under the new one.
			_ = st.mw.Abort(ctx)
			st = stream{}
		}
	}
	etag, err := n.fsys.upload(ctx, upKey, baseKey, ws.wf, base, baseEnd, st, size, meta)
	if upKey != key && (err == nil || errors.As(err, new(metaNotApplied))) {
		// The move's copy carries the attributes.
		etag, err = n.moveStreamed(ctx, upKey, key, etag, size, emptied, meta)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var metaErr metaNotApplied
	if err != nil && !errors.As(err, &metaErr) {
		ws.lastErr = err
		n.fsys.setFailed(n, true)
		if errors.As(err, new(streamKept)) {
			// Parts of the file are only in the streamed upload: the
			// next flush finishes it, unless the file was emptied
			// meanwhile (those parts are not wanted any more).
			if ws.emptied == emptied && ws.st.mw == nil {
				if ws.size > st.seqEnd && len(ws.wf.Missing(cache.Range{Off: st.seqEnd, Len: ws.size - st.seqEnd})) == 0 {
					// Appended by a write that began before this flush.
					st.seqEnd = ws.size
				}
				ws.st = st
			} else {
				n.fsys.abortLater(st.mw)
			}
		}
		return n.fsys.errno("upload", key, err), ws.lowSince < size && !errors.As(err, new(streamKept))
	}
	ws.lastErr = nil
	n.fsys.setFailed(n, false)
	n.keyUnknown, n.keyHolds = false, nil // it holds what was just uploaded
	if stray := ws.stray; stray != "" && stray != key {
		ws.stray = ""
		n.fsys.deleteStray(stray)
	}
	ws.uploaded = true
	n.fsys.namespaceChanged() // a new object, or a new version of one
	if journalID != "" && ws.journalID == journalID && ws.gen == gen {
		n.fsys.removeEntry(journalID)
		ws.journalID = ""
	}
	n.meta.etag = etag
	n.meta.size = size
	n.meta.fromListing = false
	n.metaDirty = false // they went up with the data
	// (A truncate during the upload cut the file below what went up: the
	// bytes past that cut must not come back from the new base.)
	ws.base, ws.baseKey, ws.baseEnd = n.meta, key, min(n.meta.size, ws.lowSince)
	if ws.emptied == emptied && ws.st.mw == nil {
		// The parts that left the cache are in the object just uploaded,
		// the base from now on: the file may be written anywhere again
		// (after an fsync, or a rename, while it is still open). Not when
		// a new stream began meanwhile: parts of it may have left the
		// cache too, and that upload holds them.
		ws.discarded = false
		ws.wf.Restore()
	}
	n.openETag = etag
	if ws.gen == gen {
		ws.dirty = false
	}
	n.fsys.stats.put(key, n.meta, true, n.fsys.opt.StatTTL)
	if metaErr.error != nil {
		// The data is up; its attributes are written a moment later, as
		// a chmod's are (see metaflush.go).
		n.metaDirty = true
		n.fsys.log.Warn("attributes not written with the upload; trying again shortly", "key", key, "err", err)
		if !n.scheduleMeta() {
			// The mount is draining: the drain writes them after its
			// uploads.
			mf := &n.fsys.metas
			mf.mu.Lock()
			mf.late = append(mf.late, n)
			mf.mu.Unlock()
		}
	}
	return 0, false
}

// moveStreamed moves the object a stream completed under the file's former
// key to its key. When the move fails, that object holds the file's data,
// including the parts that left the cache: it becomes the base the next
// upload copies them from.
func (n *File) moveStreamed(ctx context.Context, from, to, etag string, size int64, emptied int, meta map[string]string) (string, error) {
	newETag, err := n.fsys.moveUploaded(ctx, from, to, etag, size, meta)
	if err == nil {
		return newETag, nil
	}
	n.mu.Lock()
	if ws := n.ws; ws.emptied == emptied {
		ws.base, ws.baseKey, ws.baseEnd, ws.discarded = objMeta{etag: etag, size: size}, from, min(size, ws.size), false
		ws.wf.Restore()
	}
	n.ws.stray = from
	n.mu.Unlock()
	return "", err
}

// moveUploaded moves the object an upload completed under a file's former
// key to its key, with meta (the copy carries the attributes).
func (f *FS) moveUploaded(ctx context.Context, from, to, etag string, size int64, meta map[string]string) (string, error) {
	newETag, errno := f.moveObject(ctx, from, to, objMeta{etag: etag, size: size}, meta, false)
	if errno != 0 {
		return "", fmt.Errorf("uploaded under its former name %q, not moved to its name: %w", from, errno)
	}
	return newETag, nil
}

// deleteStray deletes, in the background, the object an upload left under
// a file's former name once the file is uploaded under its own. Drain waits
// for it.
func (f *FS) deleteStray(key string) {
	f.bg.Add(1)
	go func() {
		defer f.bg.Done()
		ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
		defer cancel()
		if err := f.bucket.Delete(ctx, key); err != nil {
			f.log.Warn("object left under a file's former name not deleted", "key", key, "err", err)
			return
		}
		f.stats.put(key, objMeta{}, false, f.opt.NegativeTTL)
		f.namespaceChanged()
	}()
}

// _uploadMetaWith is the metadata n's upload through st is completed
// with. Called with n.mu held.
func (n *File) _uploadMetaWith(st stream) map[string]string {
	meta := n.fsys.uploadMeta(n.meta)
	if !n.ws.mtimeSet && st.mw != nil {
		// A streamed upload keeps the server's time of completion.
		delete(meta, metaMtime)
		delete(meta, metaMtimeN)
	}
	return meta
}

// uploadMeta is the metadata an object is written with, in the form cosfs
// and s3fs read: decimal st_mode, uid, gid and whole-second mtime, plus
// cosmount's own nanosecond mtime.
func (f *FS) uploadMeta(m objMeta) map[string]string {
	mt := m.mtime
	if mt.IsZero() {
		mt = time.Now()
	}
	meta := map[string]string{
		metaMode:   strconv.FormatUint(uint64(m.mode), 10),
		metaUID:    strconv.FormatUint(uint64(m.uid), 10),
		metaGID:    strconv.FormatUint(uint64(m.gid), 10),
		metaMtime:  strconv.FormatInt(mt.Unix(), 10),
		metaMtimeN: strconv.FormatInt(mt.Unix(), 10) + "." + pad9(mt.Nanosecond()),
	}
	if len(m.xattrs) > 0 {
		meta[metaXattr] = encodeXattrs(m.xattrs)
	}
	return meta
}

func pad9(ns int) string {
	s := strconv.Itoa(ns)
	for len(s) < 9 {
		s = "0" + s
	}
	return s
}

// upload writes the local copy to key: finishing the streaming upload when
// the file was written sequentially, one PUT below SliceSize, else a
// multipart upload whose untouched ranges are copied from the base object
// by the server.
func (f *FS) upload(ctx context.Context, key, baseKey string, wf *cache.WriteFile, base objMeta, baseEnd int64, st stream, size int64, meta map[string]string) (string, error) {
	if st.mw != nil {
		var err error
		if st.ok && st.seqEnd == size {
			var etag string
			if etag, err = f.finishStream(ctx, wf, st, size, meta); err == nil || errors.As(err, new(metaNotApplied)) {
				return etag, err
			}
		} else {
			err = errors.New("the file was not written in one sequential pass")
		}
		if wf.Discarded(cache.Range{Off: 0, Len: size}) {
			// Uploaded parts left the cache: the streamed upload holds
			// their only copy. It stays open, to be finished by the next
			// flush.
			return "", streamKept{err}
		}
		f.log.Debug("finishing the streamed upload failed; uploading again", "key", key, "err", err)
		_ = st.mw.Abort(ctx)
	}
	if size <= f.opt.SliceSize {
		if err := f.fillFromBase(ctx, baseKey, wf, base, baseEnd, cache.Range{Off: 0, Len: size}); err != nil {
			return "", err
		}
		out, err := f.bucket.Put(ctx, &transport.PutInput{Key: key, Body: io.NewSectionReader(wf, 0, size), Size: size, Metadata: meta})
		if err != nil {
			return "", err
		}
		return out.ETag, nil
	}
	ps, err := transport.PartSize(size, f.opt.ChunkSize)
	if err != nil {
		return "", err
	}
	mw, err := f.beginUpload(ctx, key, meta)
	if err != nil {
		return "", err
	}
	for num, off := 1, int64(0); off < size; num, off = num+1, off+ps {
		r := cache.Range{Off: off, Len: min(ps, size-off)}
		missing := wf.Missing(r)
		untouched := len(missing) == 1 && missing[0] == r
		if base.etag != "" && untouched && r.End() <= baseEnd {
			err = mw.AddCopyPart(ctx, num, baseKey, base.etag, r.Off, r.Len)
		} else {
			if err = f.fillFromBase(ctx, baseKey, wf, base, baseEnd, r); err == nil {
				err = mw.AddPart(ctx, num, wf, r.Off, r.Len)
			}
		}
		if err != nil {
			_ = mw.Abort(ctx)
			return "", err
		}
	}
	mw.ExpectSize(size)
	out, err := mw.Complete(ctx)
	if err != nil {
		return "", err
	}
	return out.ETag, nil
}

// streamKept is an upload's failure that left the file's streamed upload
// open: it holds parts no longer in the cache.
type streamKept struct{ error }

func (e streamKept) Unwrap() error { return e.error }

// finishStream sends the tail and the rewritten parts of a streamed upload,
// and again the parts whose upload failed, and completes it. The metadata
// goes with Complete's Initiate, which happened before the file was closed:
// a metadata change since then is applied by a self-copy afterwards. On
// failure the upload is left as it is; the caller aborts it or keeps it.
// It may be called again on the same stream after a failure.
func (f *FS) finishStream(ctx context.Context, wf *cache.WriteFile, st stream, size int64, meta map[string]string) (string, error) {
	mw := st.mw
	// Where each part lies in the file, to send it again.
	parts := map[int]cache.Range{}
	for i, pe := range st.partEnds {
		start := int64(0)
		if i > 0 {
			start = st.partEnds[i-1]
		}
		parts[i+1] = cache.Range{Off: start, Len: pe - start}
	}
	send := func(num int) error {
		r := parts[num]
		if len(wf.Missing(r)) > 0 {
			// Never zeros for bytes the cache lost: a part not in the
			// cache must be on the server already.
			return fmt.Errorf("part %d of the streamed upload is neither uploaded nor in the cache", num)
		}
		return mw.AddPart(ctx, num, wf, r.Off, r.Len)
	}
	num, off := st.nextPart, st.nextOff
	for off < size {
		ps := min(transport.GrowingPartSize(st.chunkSize(f), num), size-off)
		parts[num] = cache.Range{Off: off, Len: ps}
		if err := send(num); err != nil {
			return "", err
		}
		num, off = num+1, off+ps
	}
	for p := range st.redo {
		if err := send(p); err != nil {
			return "", err
		}
	}
	// A part whose upload failed (its retries spent), or that a write
	// handed over too late to reach the upload, goes once more, from the
	// cache, which keeps every part not safely uploaded.
	failed, err := mw.UnsentParts(ctx, num-1)
	if err != nil {
		return "", err
	}
	for _, p := range failed {
		if err := send(p); err != nil {
			return "", err
		}
	}
	mw.ExpectSize(size)
	out, err := mw.Complete(ctx)
	if err != nil {
		return "", err
	}
	if sameMeta(st.meta, meta) {
		return out.ETag, nil
	}
	// Attributes changed after the upload began: set them now.
	key := mw.Key()
	cp, err := f.copier.Copy(ctx, &transport.CopyObjectInput{SrcKey: key, DstKey: key, SrcSize: size,
		SrcETag: out.ETag, ReplaceMetadata: true, Metadata: meta})
	if err != nil {
		return out.ETag, metaNotApplied{err}
	}
	return cp.ETag, nil
}

// metaNotApplied is the failure of the self-copy that sets a streamed
// file's attributes after its upload completed: the data is in the
// bucket, its attributes wait for the next metadata flush.
type metaNotApplied struct{ error }

func (e metaNotApplied) Unwrap() error { return e.error }

func sameMeta(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// fillFromBase fetches into the local copy the parts of r it lacks that the
// base object (at key) holds up to baseEnd; past it they stay zeros. Blocks
// are fetched and cached as blocks of the whole object (base.size), which
// other readers of it share.
func (f *FS) fillFromBase(ctx context.Context, key string, wf *cache.WriteFile, base objMeta, baseEnd int64, r cache.Range) error {
	if base.etag == "" {
		return nil
	}
	for _, m := range wf.Missing(r) {
		if err := f.eachBaseSlice(ctx, key, base, baseEnd, m, wf.Fill); err != nil {
			return err
		}
	}
	return nil
}

// eachBaseSlice hands the bytes of m that the base object (at key) holds up
// to baseEnd to fn, a block's worth at a time, in order; fn must not keep
// the slice. The blocks go through the read cache, asked for in runs of
// blocks, one request each.
func (f *FS) eachBaseSlice(ctx context.Context, key string, base objMeta, baseEnd int64, m cache.Range, fn func(b []byte, off int64) error) error {
	bs := f.blocks.BlockSize()
	run := int64(f.opt.ReadaheadRun)
	end := min(m.End(), baseEnd, base.size)
	for i := m.Off / bs; i*bs < end; i += run {
		n := min(run, (end-1)/bs-i+1)
		f.blocks.Fetch(cache.BlockKey{Key: key, ETag: base.etag, Index: i}, int(n), base.size)
	}
	for off := m.Off; off < end; {
		idx := off / bs
		r, err := f.blocks.Block(ctx, cache.BlockKey{Key: key, ETag: base.etag, Index: idx}, base.size)
		if err != nil {
			return err
		}
		b := r.Data()
		lo := off - idx*bs
		hi := min(int64(len(b)), end-idx*bs)
		err = fn(b[lo:hi], off)
		r.Release()
		if err != nil {
			return err
		}
		off = idx*bs + hi
	}
	return nil
}

var _ = (gofs.FileWriter)((*handle)(nil))

// Write implements FileWriter.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	if !h.writable {
		return 0, syscall.EBADF
	}
	return h.write(ctx, data, off)
}
