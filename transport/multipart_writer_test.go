package transport

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// The tests' names start with Upload so that -run 'Upload|Copier|Copy' runs them.

func TestUploadWriterOutOfOrder(t *testing.T) {
	data := testBytes(5*mib+100, 9)
	f := newFakeBucket()
	u := newTestUploader(f, UploaderOptions{ChunkSize: mib, ChunkParallelLimit: 2})
	ctx := context.Background()
	mw, err := u.Begin(ctx, "k", "application/x-test", map[string]string{"uid": "7"})
	if err != nil {
		t.Fatal(err)
	}
	src := bytes.NewReader(data)
	for _, num := range []int{6, 2, 4, 1, 5, 3} {
		off := int64(num-1) * mib
		if err := mw.AddPart(ctx, num, src, off, min(mib, int64(len(data))-off)); err != nil {
			t.Fatal(err)
		}
	}
	mw.ExpectSize(int64(len(data)))
	if _, err := mw.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	o := f.object("k")
	if o == nil || !bytes.Equal(o.data, data) || o.ctype != "application/x-test" || o.meta["uid"] != "7" {
		t.Fatal("object differs")
	}
	if err := mw.Abort(ctx); err != nil || len(f.aborted) != 0 {
		t.Errorf("Abort after Complete: %v, %d aborted", err, len(f.aborted))
	}
	if err := mw.AddPart(ctx, 7, src, 0, 1); err == nil {
		t.Error("AddPart after Complete accepted")
	}
	if _, err := mw.Complete(ctx); err == nil {
		t.Error("second Complete accepted")
	}
}

func TestUploadWriterReplacePart(t *testing.T) {
	f := newFakeBucket()
	f.delay = 10 * time.Millisecond
	u := newTestUploader(f, UploaderOptions{ChunkSize: mib, ChunkParallelLimit: 4})
	ctx := context.Background()
	mw, err := u.Begin(ctx, "k", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := testBytes(mib, 1), testBytes(mib, 2)
	_ = mw.AddPart(ctx, 1, bytes.NewReader(a), 0, mib)
	_ = mw.AddPart(ctx, 1, bytes.NewReader(b), 0, mib) // the later one wins
	_ = mw.AddPart(ctx, 2, bytes.NewReader(a), 0, 10)
	if _, err := mw.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	if want := append(bytes.Clone(b), a[:10]...); !bytes.Equal(f.object("k").data, want) {
		t.Error("replaced part lost")
	}
}

func TestUploadWriterChecks(t *testing.T) {
	ctx := context.Background()
	type step struct {
		num       int
		off, size int64
	}
	for name, tc := range map[string]struct {
		parts  []step
		expect int64
	}{
		"gap":         {parts: []step{{1, 0, mib}, {3, 2 * mib, mib}}, expect: -1},
		"small part":  {parts: []step{{1, 0, mib - 1}, {2, mib, mib}}, expect: -1},
		"size":        {parts: []step{{1, 0, mib}, {2, mib, 5}}, expect: mib + 6},
		"no parts":    {expect: -1},
		"not from 1":  {parts: []step{{2, 0, mib}}, expect: -1},
		"short input": {parts: []step{{1, 0, mib}, {2, 3 * mib, mib}}, expect: -1},
	} {
		f := newFakeBucket()
		u := newTestUploader(f, UploaderOptions{ChunkSize: mib})
		mw, err := u.Begin(ctx, "k", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		src := bytes.NewReader(testBytes(3*mib+1, 1))
		for _, p := range tc.parts {
			_ = mw.AddPart(ctx, p.num, src, p.off, p.size)
		}
		if tc.expect >= 0 {
			mw.ExpectSize(tc.expect)
		}
		if _, err := mw.Complete(ctx); err == nil {
			t.Errorf("%s: completed", name)
		}
		if f.nCalls("Complete") != 0 {
			t.Errorf("%s: Complete sent", name)
		}
		assertAborted(t, f, "k")
	}
	f := newFakeBucket()
	mw, _ := newTestUploader(f, UploaderOptions{}).Begin(ctx, "k", "", nil)
	for _, p := range []step{{0, 0, 1}, {MaxParts + 1, 0, 1}, {1, -1, 1}, {1, 0, 0}, {1, 0, MaxPartSize + 1}} {
		if err := mw.AddPart(ctx, p.num, bytes.NewReader(nil), p.off, p.size); err == nil {
			t.Errorf("AddPart%v accepted", p)
		}
	}
	if err := mw.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mw.Abort(ctx); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	assertAborted(t, f, "k")
}

// beginOnFake begins an upload of "k" on f, 1 MiB parts one at a time.
func beginOnFake(t *testing.T, f *fakeBucket) *MultipartWriter {
	t.Helper()
	u := newTestUploader(f, UploaderOptions{ChunkSize: mib, ChunkParallelLimit: 1})
	mw, err := u.Begin(context.Background(), "k", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return mw
}

func TestUploadWriterPartFailure(t *testing.T) {
	f := newFakeBucket()
	f.failPart = func(num, attempt int) error {
		if num == 2 {
			return &Error{Op: "UploadPart", StatusCode: 404, Code: "NoSuchUpload", Kind: ErrNotFound}
		}
		return nil
	}
	ctx := context.Background()
	mw := beginOnFake(t, f)
	src := bytes.NewReader(testBytes(4*mib, 1))
	var addErr error
	for num := 1; num <= 4 && addErr == nil; num++ {
		addErr = mw.AddPart(ctx, num, src, int64(num-1)*mib, mib)
	}
	if _, err := mw.Complete(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("Complete: %v", err)
	}
	if !errors.Is(addErr, ErrNotFound) {
		t.Errorf("a later AddPart did not report the failure: %v", addErr)
	}
	assertAborted(t, f, "k")
}

// With KeepOnFailure a failed part and a failed Complete leave the upload
// open: the other parts go on, the failed part is named and can be sent
// again, and Complete can be called again.
func TestUploadWriterKeepOnFailure(t *testing.T) {
	f := newFakeBucket()
	var failing atomic.Bool
	failing.Store(true)
	denied := &Error{Op: "UploadPart", StatusCode: 403, Code: "AccessDenied", Kind: ErrAccessDenied}
	f.failPart = func(num, attempt int) error {
		if num == 2 && failing.Load() {
			return denied
		}
		return nil
	}
	ctx := context.Background()
	mw := beginOnFake(t, f)
	mw.KeepOnFailure()
	data := testBytes(4*mib, 5)
	src := bytes.NewReader(data)
	for num := 1; num <= 4; num++ {
		if err := mw.AddPart(ctx, num, src, int64(num-1)*mib, mib); err != nil {
			t.Fatalf("AddPart %d after a failed part: %v", num, err)
		}
	}
	mw.ExpectSize(int64(len(data)))
	if _, err := mw.Complete(ctx); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("Complete with part 2 failed: %v, want access denied", err)
	}
	if unsent, err := mw.UnsentParts(ctx, 5); err != nil || !slices.Equal(unsent, []int{2, 5}) {
		t.Fatalf("UnsentParts up to 5: %v %v, want [2 5] (failed, never added)", unsent, err)
	}
	if n := f.nUploads(); n != 1 || len(f.aborted) != 0 {
		t.Fatalf("%d uploads open and %d aborted after the failure, want 1 and 0", n, len(f.aborted))
	}

	failing.Store(false)
	if err := mw.AddPart(ctx, 2, src, mib, mib); err != nil {
		t.Fatal(err)
	}
	var completeFails atomic.Int32
	completeFails.Store(1)
	f.failComplete = func() error {
		if completeFails.Add(-1) >= 0 {
			return &Error{Op: "Complete", StatusCode: 503, Code: "SlowDown", Kind: ErrThrottled}
		}
		return nil
	}
	if _, err := mw.Complete(ctx); err == nil {
		t.Fatal("Complete succeeded through a failing CompleteMultipart")
	}
	if n := f.nUploads(); n != 1 {
		t.Fatalf("%d uploads open after a failed Complete, want 1", n)
	}
	if _, err := mw.Complete(ctx); err != nil {
		t.Fatalf("Complete again: %v", err)
	}
	if o := f.object("k"); o == nil || !bytes.Equal(o.data, data) {
		t.Fatal("object differs")
	}
}

func TestUploadWriterCopyParts(t *testing.T) {
	f := newFakeBucket()
	data := testBytes(3*mib, 5)
	f.putObject("src", data, nil, "")
	u := newTestUploader(f, UploaderOptions{ChunkSize: mib})
	ctx := context.Background()
	mw, err := u.Begin(ctx, "dst", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tail := []byte("new tail")
	etag := f.object("src").etag
	_ = mw.AddCopyPart(ctx, 1, "src", etag, 0, 2*mib)
	_ = mw.AddPart(ctx, 2, bytes.NewReader(tail), 0, int64(len(tail)))
	if _, err := mw.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	if want := append(bytes.Clone(data[:2*mib]), tail...); !bytes.Equal(f.object("dst").data, want) {
		t.Error("content differs")
	}
	// A stale ETag fails the part and the upload, without retries.
	mw, _ = u.Begin(ctx, "dst2", "", nil)
	_ = mw.AddCopyPart(ctx, 1, "src", "stale", 0, mib)
	if _, err := mw.Complete(ctx); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("stale ETag: %v", err)
	}
	if f.attempts[1] != 2 { // one good copy above, one failed here
		t.Errorf("attempts %v", f.attempts)
	}
	assertAborted(t, f, "dst2")
}

func TestUploadWriterCompleteCancelled(t *testing.T) {
	f := newFakeBucket()
	f.delay = 5 * time.Second
	u := newTestUploader(f, UploaderOptions{ChunkSize: mib})
	mw, err := u.Begin(context.Background(), "k", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = mw.AddPart(context.Background(), 1, bytes.NewReader(make([]byte, 10)), 0, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := mw.Complete(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Complete: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Error("Complete waited for the part")
	}
	assertAborted(t, f, "k")
}

// OnEnd runs once the upload is gone from the server, and only then.
func TestUploadWriterOnEnd(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		abortErr error
		complete bool
		want     int
	}{
		{"completed", nil, true, 1},
		{"aborted", nil, false, 1},
		{"abort refused", errFlaky, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeBucket()
			f.abortErr = tc.abortErr
			u := newTestUploader(f, UploaderOptions{ChunkSize: mib, ChunkParallelLimit: 2})
			mw, err := u.Begin(ctx, "k", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			ended := 0
			mw.OnEnd(func() { ended++ })
			data := testBytes(mib, 3)
			if err := mw.AddPart(ctx, 1, bytes.NewReader(data), 0, mib); err != nil {
				t.Fatal(err)
			}
			if tc.complete {
				_, err = mw.Complete(ctx)
			} else {
				err = mw.Abort(ctx)
			}
			if (err != nil) != (tc.abortErr != nil) {
				t.Fatalf("err = %v", err)
			}
			_ = mw.Abort(ctx) // a second end changes nothing
			if ended != tc.want {
				t.Errorf("OnEnd ran %d times, want %d", ended, tc.want)
			}
		})
	}
}

// testResume is the contract of Uploader.Resume, run against the fake and
// the test server: a writer that sent parts 1 and 2 and was dropped without
// Complete or Abort (as by a process that ended) is taken up by a new one.
// Parts 1 and 2 count as uploaded, part 3 is unsent; once it is added (and
// part 2 replaced) the upload completes with every byte, and sum reads the
// object's MD5. An upload that is gone cannot be resumed.
func testResume(t *testing.T, api multipartAPI, opt UploaderOptions, sum func(key string) [16]byte) {
	ctx := context.Background()
	ps := opt.MinPartSize
	u := newTestUploader(api, opt)
	mw, err := u.Begin(ctx, "resumed", "", map[string]string{"mode": "33188"})
	if err != nil {
		t.Fatal(err)
	}
	data := testBytes(3*ps-7, 9)
	src := bytes.NewReader(data)
	for num := 1; num <= 2; num++ {
		if err := mw.AddPart(ctx, num, src, int64(num-1)*ps, ps); err != nil {
			t.Fatal(err)
		}
	}
	if unsent, err := mw.UnsentParts(ctx, 2); err != nil || len(unsent) != 0 {
		t.Fatalf("parts 1 and 2 not sent: %v %v", unsent, err)
	}

	r, err := u.Resume(ctx, "resumed", mw.UploadID())
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if unsent, err := r.UnsentParts(ctx, 3); err != nil || !slices.Equal(unsent, []int{3}) {
		t.Fatalf("UnsentParts of the resumed upload: %v %v, want [3]", unsent, err)
	}
	if err := r.AddPart(ctx, 3, src, 2*ps, int64(len(data))-2*ps); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPart(ctx, 2, src, ps, ps); err != nil {
		t.Fatalf("replacing a part of the resumed upload: %v", err)
	}
	r.ExpectSize(int64(len(data)))
	if _, err := r.Complete(ctx); err != nil {
		t.Fatalf("Complete of the resumed upload: %v", err)
	}
	if got := sum("resumed"); got != md5.Sum(data) {
		t.Fatal("the resumed upload's object differs from what was sent")
	}
	if _, err := u.Resume(ctx, "resumed", mw.UploadID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Resume of a completed upload: %v, want ErrNotFound", err)
	}
}

func TestUploadWriterResume(t *testing.T) {
	f := newFakeBucket()
	testResume(t, f, UploaderOptions{MinPartSize: mib}, func(key string) [16]byte {
		o := f.object(key)
		if o == nil {
			t.Fatalf("no object %q", key)
		}
		return md5.Sum(o.data)
	})
}
