package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Lock order: MultipartWriter.mu is a leaf lock. It is never held while
// waiting for a slot, for a part or for a bucket call.

// writerConfig is what a MultipartWriter takes from its Uploader or Copier.
type writerConfig struct {
	limit, retries int
	minPart        int64
	backoff        func(n int) time.Duration
}

// MultipartWriter is one multipart upload in progress. Parts are added in
// any order, each uploaded in the background with at most the parallel limit
// in flight; Complete waits for them and completes the upload, Abort drops
// it. Any failure ends the writer: Complete then aborts the upload and
// returns the first error, unless KeepOnFailure was called. Safe for
// concurrent use.
type MultipartWriter struct {
	api           multipartAPI
	key, uploadID string
	cfg           writerConfig
	slots         chan struct{} // one token per part in flight
	// ctx runs the parts: it outlives Begin's ctx and is cancelled by Abort
	// or by the first part that fails for good.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	wg     sync.WaitGroup // parts in flight; Add under mu while state is open
	parts  map[int]*partState
	err    error // first failure
	state  writerState
	expect int64 // total size checked by Complete; -1: none
	keep   bool  // KeepOnFailure: failures leave the upload open
	onEnd  func()
	ended  sync.Once
}

type writerState int

const (
	writerOpen writerState = iota
	writerCompleting
	writerDone // completed or aborted
)

// partState is the latest upload of one part number.
type partState struct {
	size int64
	part Part
	ok   bool
	err  error         // why this upload of the part failed
	done chan struct{} // closed when this upload of the part has ended
}

func newMultipartWriter(ctx context.Context, api multipartAPI, key, id string, cfg writerConfig) *MultipartWriter {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &MultipartWriter{api: api, key: key, uploadID: id, cfg: cfg,
		slots: make(chan struct{}, cfg.limit), ctx: pctx, cancel: cancel,
		parts: make(map[int]*partState), expect: -1}
}

// Key is the object's key.
func (mw *MultipartWriter) Key() string { return mw.key }

// UploadID is the server's id of the upload.
func (mw *MultipartWriter) UploadID() string { return mw.uploadID }

// OnEnd has fn called once the upload is gone from the server: completed,
// or aborted with the server's agreement. An abort that fails leaves the
// upload in place and fn uncalled. Set it before adding parts.
func (mw *MultipartWriter) OnEnd(fn func()) {
	mw.mu.Lock()
	mw.onEnd = fn
	mw.mu.Unlock()
}

func (mw *MultipartWriter) end() {
	mw.mu.Lock()
	fn := mw.onEnd
	mw.mu.Unlock()
	if fn != nil {
		mw.ended.Do(fn)
	}
}

// KeepOnFailure makes failures leave the upload open, for an upload whose
// parts exist nowhere else once sent: a part whose upload fails (after its
// retries) is noted (UnsentParts) without stopping the others and may be
// added again, and a Complete that fails leaves the writer open, to be
// completed later. Only Abort drops the upload then.
func (mw *MultipartWriter) KeepOnFailure() {
	mw.mu.Lock()
	mw.keep = true
	mw.mu.Unlock()
}

// UnsentParts waits for the parts in flight (or for ctx) and returns the
// numbers from 1 to n of those whose latest upload failed or that were
// never added.
func (mw *MultipartWriter) UnsentParts(ctx context.Context, n int) ([]int, error) {
	if err := mw.wait(ctx); err != nil {
		return nil, err
	}
	mw.mu.Lock()
	defer mw.mu.Unlock()
	var nums []int
	for num := 1; num <= n; num++ {
		if ps := mw.parts[num]; ps == nil || !ps.ok {
			nums = append(nums, num)
		}
	}
	return nums, nil
}

// ExpectSize makes Complete refuse to complete unless the parts add up to
// exactly size bytes.
func (mw *MultipartWriter) ExpectSize(size int64) {
	mw.mu.Lock()
	mw.expect = size
	mw.mu.Unlock()
}

// AddPart starts uploading size bytes of src from off as part number num
// (1..MaxParts) and returns without waiting for it, once one of the parallel
// slots is free; ctx bounds only that wait, the upload itself runs until
// Complete or Abort. src must keep those bytes unchanged until then. Adding
// a number again replaces the part: the new upload starts after the old one
// ends. The error is the writer's first failure, if any.
func (mw *MultipartWriter) AddPart(ctx context.Context, num int, src io.ReaderAt, off, size int64) error {
	if err := checkPart(num, off, size); err != nil {
		return err
	}
	if err := mw.reserve(ctx); err != nil {
		return err
	}
	return mw.launchData(num, src, off, size, nil)
}

// AddPartNotify is AddPart that calls done once this upload of the part
// has ended, with nil when it succeeded. done runs on the part's goroutine
// without the writer's lock; after a nil done the part's bytes are no
// longer read.
func (mw *MultipartWriter) AddPartNotify(ctx context.Context, num int, src io.ReaderAt, off, size int64, done func(error)) error {
	if err := checkPart(num, off, size); err != nil {
		return err
	}
	if err := mw.reserve(ctx); err != nil {
		return err
	}
	return mw.launchData(num, src, off, size, done)
}

// AddCopyPart is AddPart for size bytes of the object srcKey from off,
// copied by the server (UploadPartCopy). srcETag, when set, makes the part
// fail if the source has changed.
func (mw *MultipartWriter) AddCopyPart(ctx context.Context, num int, srcKey, srcETag string, off, size int64) error {
	if err := checkPart(num, off, size); err != nil {
		return err
	}
	if err := mw.reserve(ctx); err != nil {
		return err
	}
	return mw.launch(num, size, func(ctx context.Context) (*Part, error) {
		return mw.api.UploadPartCopy(ctx, &UploadPartCopyInput{Key: mw.key, UploadID: mw.uploadID,
			PartNumber: num, SrcKey: srcKey, SrcIfMatch: srcETag, Offset: off, Length: size})
	}, nil)
}

func checkPart(num int, off, size int64) error {
	if num < 1 || num > MaxParts {
		return fmt.Errorf("transport: part number %d not in 1..%d", num, MaxParts)
	}
	if off < 0 || size <= 0 || size > MaxPartSize {
		return fmt.Errorf("transport: part %d: bad range %d+%d", num, off, size)
	}
	return nil
}

// reserve waits for a free slot; launch or unreserve gives it back.
func (mw *MultipartWriter) reserve(ctx context.Context) error {
	if err := mw.failure(); err != nil {
		return err
	}
	select {
	case mw.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-mw.ctx.Done():
		if err := mw.failure(); err != nil {
			return err
		}
		return errors.New("transport: multipart upload aborted")
	}
}

func (mw *MultipartWriter) unreserve() { <-mw.slots }

func (mw *MultipartWriter) failure() error {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	return mw.err
}

// launchData starts an UploadPart of src[off:off+size]; release (may be nil)
// runs when the part has ended, with its error.
func (mw *MultipartWriter) launchData(num int, src io.ReaderAt, off, size int64, release func(error)) error {
	return mw.launch(num, size, func(ctx context.Context) (*Part, error) {
		body := &partBody{src: src, off: off, size: size}
		p, err := mw.api.UploadPart(ctx, &UploadPartInput{Key: mw.key, UploadID: mw.uploadID,
			PartNumber: num, Body: body, Size: size})
		if body.short {
			return nil, &permanentError{fmt.Errorf("part %d: %w", num, errShortSource)}
		}
		if err == nil {
			err = body.check()
		}
		return p, err
	}, release)
}

// launch runs send for part num in the background, holding a reserved slot
// that it gives back at the end.
func (mw *MultipartWriter) launch(num int, size int64, send func(context.Context) (*Part, error), release func(error)) error {
	mw.mu.Lock()
	if mw.state != writerOpen {
		mw.mu.Unlock()
		mw.unreserve()
		err := errors.New("transport: part added after Complete or Abort")
		if release != nil {
			release(err)
		}
		return err
	}
	prev := mw.parts[num]
	ps := &partState{size: size, done: make(chan struct{})}
	mw.parts[num] = ps
	mw.wg.Add(1)
	mw.mu.Unlock()
	go func() {
		defer mw.wg.Done()
		defer close(ps.done)
		defer mw.unreserve()
		if prev != nil {
			<-prev.done
		}
		p, err := mw.send(send)
		if release != nil {
			defer release(err)
		}
		mw.mu.Lock()
		defer mw.mu.Unlock()
		if err != nil {
			ps.err = err
			if mw.keep {
				return
			}
			if mw.err == nil {
				mw.err = fmt.Errorf("transport: %q part %d: %w", mw.key, num, err)
			}
			mw.cancel()
			return
		}
		ps.part = Part{PartNumber: num, ETag: p.ETag, Size: size, LastModified: p.LastModified}
		ps.ok = true
	}()
	return nil
}

// send calls send, then again up to cfg.retries times while it fails with a
// retryable error, pausing with backoff between the attempts.
func (mw *MultipartWriter) send(send func(context.Context) (*Part, error)) (*Part, error) {
	for attempt := 1; ; attempt++ {
		p, err := send(mw.ctx)
		if err == nil {
			return p, nil
		}
		if attempt > mw.cfg.retries || !retryable(err) || mw.ctx.Err() != nil {
			return nil, err
		}
		t := time.NewTimer(mw.cfg.backoff(attempt))
		select {
		case <-t.C:
		case <-mw.ctx.Done():
			t.Stop()
			return nil, err
		}
	}
}

// wait waits for every part in flight, or for ctx.
func (mw *MultipartWriter) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { mw.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Complete waits for the parts, checks them — every one succeeded, numbered
// 1..n without gaps, all but the last at least the minimum part size, their
// sizes adding up to ExpectSize's — and completes the upload. On any failure
// (ctx included) the upload is aborted and the first error returned; with
// KeepOnFailure the writer is left open instead.
func (mw *MultipartWriter) Complete(ctx context.Context) (*PutOutput, error) {
	mw.mu.Lock()
	if mw.state != writerOpen {
		mw.mu.Unlock()
		return nil, errors.New("transport: Complete after Complete or Abort")
	}
	mw.state = writerCompleting
	mw.mu.Unlock()
	if err := mw.wait(ctx); err != nil {
		return nil, mw.completeFailed(ctx, err)
	}
	parts, err := mw.checkedParts()
	if err != nil {
		return nil, mw.completeFailed(ctx, err)
	}
	out, err := mw.api.CompleteMultipart(ctx, &CompleteInput{Key: mw.key, UploadID: mw.uploadID, Parts: parts})
	if err != nil {
		return nil, mw.completeFailed(ctx, err)
	}
	mw.mu.Lock()
	mw.state = writerDone
	mw.mu.Unlock()
	mw.cancel()
	mw.end()
	return out, nil
}

func (mw *MultipartWriter) checkedParts() ([]Part, error) {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	if mw.err != nil {
		return nil, mw.err
	}
	if len(mw.parts) == 0 {
		return nil, fmt.Errorf("transport: %q: no parts to complete", mw.key)
	}
	parts := make([]Part, 0, len(mw.parts))
	var total int64
	for num := 1; num <= len(mw.parts); num++ {
		ps := mw.parts[num]
		switch {
		case ps == nil:
			return nil, fmt.Errorf("transport: %q: part %d missing", mw.key, num)
		case !ps.ok && ps.err != nil:
			return nil, fmt.Errorf("transport: %q: part %d not uploaded: %w", mw.key, num, ps.err)
		case !ps.ok:
			return nil, fmt.Errorf("transport: %q: part %d not uploaded", mw.key, num)
		case num < len(mw.parts) && ps.size < mw.cfg.minPart:
			return nil, fmt.Errorf("transport: %q: part %d of %d bytes is below the %d-byte minimum",
				mw.key, num, ps.size, mw.cfg.minPart)
		}
		parts = append(parts, ps.part)
		total += ps.size
	}
	if mw.expect >= 0 && total != mw.expect {
		return nil, fmt.Errorf("transport: %q: parts hold %d bytes, expected %d", mw.key, total, mw.expect)
	}
	return parts, nil
}

// completeFailed ends a Complete that failed with err: the writer opens
// again under KeepOnFailure, else the upload is aborted (fail).
func (mw *MultipartWriter) completeFailed(ctx context.Context, err error) error {
	mw.mu.Lock()
	if mw.keep {
		mw.state = writerOpen
		mw.mu.Unlock()
		return err
	}
	mw.mu.Unlock()
	return mw.fail(ctx, err)
}

// fail aborts the upload after err and returns err, or ctx's error when
// ctx is done.
func (mw *MultipartWriter) fail(ctx context.Context, err error) error {
	mw.mu.Lock()
	mw.state = writerCompleting // no more parts; abort will finish it
	mw.mu.Unlock()
	_ = mw.abort(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Abort stops the parts in flight, waits for them to end and aborts the
// upload on the server, with a fresh context so that it goes out even when
// ctx is cancelled. Abort after Complete has begun does nothing more than
// cancel the parts.
func (mw *MultipartWriter) Abort(ctx context.Context) error {
	mw.mu.Lock()
	open := mw.state == writerOpen
	mw.state = max(mw.state, writerCompleting)
	mw.mu.Unlock()
	if !open {
		mw.cancel()
		return nil
	}
	return mw.abort(ctx)
}

func (mw *MultipartWriter) abort(ctx context.Context) error {
	mw.cancel()
	mw.wg.Wait() // parts end promptly once cancelled
	mw.mu.Lock()
	mw.state = writerDone
	cut := false
	for _, ps := range mw.parts {
		cut = cut || !ps.ok
	}
	mw.mu.Unlock()
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	err := mw.api.AbortMultipart(actx, mw.key, mw.uploadID)
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	if err == nil && cut {
		go mw.abortAgain()
	}
	if err == nil {
		mw.end()
	}
	return err
}

// abortAgain makes sure an aborted upload stays gone. A part whose request
// was cut off (or failed) may still be written by the server after the
// abort, which can bring the upload back; S3 asks for another abort then.
// In the background, it looks at the upload a few times over the next 16
// seconds and aborts it again whenever it is there.
func (mw *MultipartWriter) abortAgain() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for wait := 250 * time.Millisecond; wait <= 8*time.Second; wait *= 2 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		if _, err := mw.api.ListParts(ctx, mw.key, mw.uploadID); err == nil {
			_ = mw.api.AbortMultipart(ctx, mw.key, mw.uploadID)
		}
	}
}
