package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testBytes(n int64, seed uint64) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func newTestUploader(api multipartAPI, opt UploaderOptions) *Uploader {
	u := NewUploader(api, opt)
	u.backoff = func(int) time.Duration { return time.Millisecond }
	return u
}

// onlyReader hides every method but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestUploadPartSize(t *testing.T) {
	const gib = int64(1) << 30
	for _, tc := range []struct {
		size, chunk, want int64
	}{
		{0, 8 * mib, 8 * mib},
		{100 * mib, 8 * mib, 8 * mib},
		{MaxParts * 8 * mib, 8 * mib, 8 * mib},
		{MaxParts*8*mib + 1, 8 * mib, 9 * mib},
		{200 * gib, 8 * mib, 21 * mib}, // 200 GiB / 10,000 = 20.48 MiB
		{200 * gib, 64 * mib, 64 * mib},
		{MaxParts * MaxPartSize, 8 * mib, MaxPartSize},
	} {
		got, err := PartSize(tc.size, tc.chunk)
		if err != nil || got != tc.want {
			t.Errorf("PartSize(%d, %d) = %d, %v; want %d", tc.size, tc.chunk, got, err, tc.want)
			continue
		}
		if parts := ceilDiv(tc.size, got); parts > MaxParts {
			t.Errorf("PartSize(%d, %d) = %d: %d parts", tc.size, tc.chunk, got, parts)
		}
		if got%mib != 0 {
			t.Errorf("PartSize(%d, %d) = %d: not whole MiB", tc.size, tc.chunk, got)
		}
	}
	if _, err := PartSize(MaxParts*MaxPartSize+1, 8*mib); !errors.Is(err, ErrTooLarge) {
		t.Errorf("PartSize over the limit: %v, want ErrTooLarge", err)
	}
}

func TestUploadGrowingPartSize(t *testing.T) {
	var total int64
	prev := int64(0)
	for num := 1; num <= MaxParts; num++ {
		ps := GrowingPartSize(8*mib, num)
		if ps < prev || ps > MaxPartSize {
			t.Fatalf("part %d: size %d after %d", num, ps, prev)
		}
		prev = ps
		total += ps
	}
	if GrowingPartSize(8*mib, 1) != 8*mib || GrowingPartSize(8*mib, 1000) != 8*mib ||
		GrowingPartSize(8*mib, 1001) != 16*mib || GrowingPartSize(8*mib, MaxParts) != 4096*mib {
		t.Errorf("unexpected doubling")
	}
	if total < 7<<40 {
		t.Errorf("10,000 growing 8 MiB parts hold only %d bytes", total)
	}
	if GrowingPartSize(1<<30, MaxParts) != MaxPartSize {
		t.Errorf("not capped at MaxPartSize")
	}
}

func TestUploadSinglePut(t *testing.T) {
	for _, size := range []int64{0, 1, 3 * mib, 4 * mib} {
		data := testBytes(size, uint64(size))
		for name, in := range map[string]*UploadInput{
			"known":   {Body: onlyReader{bytes.NewReader(data)}, Size: size},
			"unknown": {Body: onlyReader{bytes.NewReader(data)}, Size: -1},
			"at":      {BodyAt: bytes.NewReader(data), Size: size},
		} {
			f := newFakeBucket()
			u := newTestUploader(f, UploaderOptions{SliceSize: 4 * mib, ChunkSize: mib})
			in.Key, in.ContentType, in.Metadata = "k", "text/plain", map[string]string{"mode": "420"}
			out, err := u.Upload(context.Background(), in)
			if err != nil {
				t.Fatalf("%s %d: %v", name, size, err)
			}
			o := f.object("k")
			if !bytes.Equal(o.data, data) || o.ctype != "text/plain" || o.meta["mode"] != "420" {
				t.Errorf("%s %d: object differs", name, size)
			}
			if f.nCalls("Put") != 1 || f.nCalls("Initiate") != 0 || out.Parts != 0 || out.Size != size {
				t.Errorf("%s %d: calls %v, out %+v", name, size, f.calls, out)
			}
		}
	}
}

func TestUploadMultipartContent(t *testing.T) {
	for _, size := range []int64{4*mib + 1, 5 * mib, 7*mib + 123, 12 * mib} {
		data := testBytes(size, uint64(size))
		for name, in := range map[string]*UploadInput{
			"known":   {Body: onlyReader{bytes.NewReader(data)}, Size: size},
			"unknown": {Body: onlyReader{bytes.NewReader(data)}, Size: -1},
			"at":      {BodyAt: bytes.NewReader(data), Size: size},
		} {
			f := newFakeBucket()
			u := newTestUploader(f, UploaderOptions{SliceSize: 4 * mib, ChunkSize: mib, ChunkParallelLimit: 3})
			in.Key, in.Metadata = "big", map[string]string{"mtime": "1"}
			out, err := u.Upload(context.Background(), in)
			if err != nil {
				t.Fatalf("%s %d: %v", name, size, err)
			}
			o := f.object("big")
			if o == nil || !bytes.Equal(o.data, data) || o.meta["mtime"] != "1" {
				t.Fatalf("%s %d: object differs", name, size)
			}
			if want := int(ceilDiv(size, mib)); out.Parts != want || f.nCalls("UploadPart") != want || f.nCalls("Put") != 0 {
				t.Errorf("%s %d: %d parts, calls %v; want %d", name, size, out.Parts, f.calls, want)
			}
			if out.Size != size || out.UploadID == "" || f.nUploads() != 0 {
				t.Errorf("%s %d: out %+v, %d uploads left", name, size, out, f.nUploads())
			}
		}
	}
}

// progressReader counts the bytes read from it.
type progressReader struct {
	r    io.Reader
	read atomic.Int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.read.Add(int64(n))
	return n, err
}

func TestUploadParallelismBound(t *testing.T) {
	const limit, parts = 3, 24
	data := testBytes(parts*mib, 7)
	f := newFakeBucket()
	f.delay = 20 * time.Millisecond
	f.gate = limit // the first parts wait for each other: the limit is reached for sure
	src := &progressReader{r: bytes.NewReader(data)}
	var done atomic.Int64
	var over atomic.Int64
	f.onPart = func(string, int) {
		// Bytes read but not yet uploaded sit in buffers: at most one per slot.
		if ahead := src.read.Load() - done.Load()*mib; ahead > limit*mib {
			over.Store(ahead)
		}
	}
	api := &countingAPI{fakeBucket: f, done: &done}
	u := newTestUploader(api, UploaderOptions{SliceSize: mib, ChunkSize: mib, ChunkParallelLimit: limit})
	if _, err := u.Upload(context.Background(), &UploadInput{Key: "k", Body: src, Size: -1}); err != nil {
		t.Fatal(err)
	}
	if err := f.gateFailure(); err != nil {
		t.Errorf("the uploader did not run %d parts at once: %v", limit, err)
	}
	if f.maxFlight > limit {
		t.Errorf("%d parts in flight at once, more than the limit %d", f.maxFlight, limit)
	} else if f.maxFlight != limit {
		t.Errorf("at most %d parts in flight, want exactly %d", f.maxFlight, limit)
	}
	if v := over.Load(); v != 0 {
		t.Errorf("%d bytes buffered ahead of the uploads, more than %d parts", v, limit)
	}
	if !bytes.Equal(f.object("k").data, data) {
		t.Error("content differs")
	}
}

// countingAPI counts finished UploadParts.
type countingAPI struct {
	*fakeBucket
	done *atomic.Int64
}

func (c *countingAPI) UploadPart(ctx context.Context, in *UploadPartInput) (*Part, error) {
	p, err := c.fakeBucket.UploadPart(ctx, in)
	c.done.Add(1)
	return p, err
}

var errFlaky = &Error{Op: "UploadPart", StatusCode: 503, Code: "SlowDown", Kind: ErrThrottled}

func TestUploadRetriesPerPart(t *testing.T) {
	data := testBytes(8*mib, 3)
	f := newFakeBucket()
	f.failPart = func(num, attempt int) error {
		if num == 3 && attempt <= 2 {
			return errFlaky
		}
		return nil
	}
	u := newTestUploader(f, UploaderOptions{SliceSize: mib, ChunkSize: mib, ChunkRetryTimes: 2})
	if _, err := u.Upload(context.Background(), &UploadInput{Key: "k", BodyAt: bytes.NewReader(data), Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if f.attempts[3] != 3 || f.attempts[2] != 1 || !bytes.Equal(f.object("k").data, data) {
		t.Errorf("attempts %v", f.attempts)
	}

	// One failure more than the retries: the upload fails and is aborted.
	f = newFakeBucket()
	f.failPart = func(num, attempt int) error {
		if num == 3 {
			return errFlaky
		}
		return nil
	}
	u = newTestUploader(f, UploaderOptions{SliceSize: mib, ChunkSize: mib, ChunkRetryTimes: 2})
	_, err := u.Upload(context.Background(), &UploadInput{Key: "k", Body: bytes.NewReader(data), Size: -1})
	if !errors.Is(err, ErrThrottled) || f.attempts[3] != 3 {
		t.Errorf("err %v, attempts %v", err, f.attempts)
	}
	assertAborted(t, f, "k")

	// A permanent error is not retried.
	f = newFakeBucket()
	f.failPart = func(num, attempt int) error {
		if num == 2 {
			return &Error{Op: "UploadPart", StatusCode: 403, Kind: ErrAccessDenied}
		}
		return nil
	}
	u = newTestUploader(f, UploaderOptions{SliceSize: mib, ChunkSize: mib, ChunkRetryTimes: 5})
	_, err = u.Upload(context.Background(), &UploadInput{Key: "k", BodyAt: bytes.NewReader(data), Size: int64(len(data))})
	if !errors.Is(err, ErrAccessDenied) || f.attempts[2] != 1 {
		t.Errorf("err %v, attempts %v", err, f.attempts)
	}
	assertAborted(t, f, "k")
}

func assertAborted(t *testing.T, f *fakeBucket, key string) {
	t.Helper()
	if n := f.nUploads(); n != 0 {
		t.Errorf("%d multipart uploads left", n)
	}
	if f.nCalls("Initiate") > f.nCalls("Complete") && len(f.aborted) == 0 {
		t.Errorf("no upload aborted")
	}
	if f.object(key) != nil {
		t.Errorf("object %q exists", key)
	}
}

// failingReader returns data then err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestUploadAbortOnReaderError(t *testing.T) {
	boom := errors.New("disk on fire")
	f := newFakeBucket()
	u := newTestUploader(f, UploaderOptions{SliceSize: mib, ChunkSize: mib})
	_, err := u.Upload(context.Background(), &UploadInput{Key: "k",
		Body: &failingReader{data: testBytes(5*mib+7, 1), err: boom}, Size: 10 * mib})
	if !errors.Is(err, boom) {
		t.Errorf("err %v", err)
	}
	assertAborted(t, f, "k")
}

func TestUploadByteCountMismatch(t *testing.T) {
	data := testBytes(6*mib, 2)
	for name, in := range map[string]*UploadInput{
		"short body":     {Body: bytes.NewReader(data[:5*mib]), Size: 6 * mib},
		"long body":      {Body: bytes.NewReader(data), Size: 5 * mib},
		"short body put": {Body: bytes.NewReader(data[:mib/2]), Size: mib / 2 * 3},
		"long body put":  {Body: bytes.NewReader(data), Size: mib / 2},
		"short at":       {BodyAt: bytes.NewReader(data[:5*mib+1]), Size: 6 * mib},
		"short at put":   {BodyAt: bytes.NewReader(data[:10]), Size: 20},
	} {
		f := newFakeBucket()
		u := newTestUploader(f, UploaderOptions{SliceSize: mib, ChunkSize: mib})
		in.Key = "k"
		if _, err := u.Upload(context.Background(), in); err == nil {
			t.Errorf("%s: no error", name)
		}
		assertAborted(t, f, "k")
		for num, n := range f.attempts {
			if n > 1 {
				t.Errorf("%s: part %d sent %d times from a short source", name, num, n)
			}
		}
	}
}

func TestUploadContextCancelAborts(t *testing.T) {
	f := newFakeBucket()
	f.delay = 5 * time.Second
	data := testBytes(8*mib, 4)
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	f.onPart = func(string, int) { once.Do(func() { time.AfterFunc(50*time.Millisecond, cancel) }) }
	u := newTestUploader(f, UploaderOptions{SliceSize: mib, ChunkSize: mib, ChunkParallelLimit: 2})
	start := time.Now()
	_, err := u.Upload(ctx, &UploadInput{Key: "k", Body: bytes.NewReader(data), Size: -1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancel took %v: parts in flight were not cut short", d)
	}
	assertAborted(t, f, "k")
}

func TestUploadBadInput(t *testing.T) {
	u := newTestUploader(newFakeBucket(), UploaderOptions{})
	for _, in := range []*UploadInput{
		{Key: "k"},
		{Key: "k", Body: bytes.NewReader(nil), BodyAt: bytes.NewReader(nil)},
		{Key: "k", BodyAt: bytes.NewReader(nil), Size: -1},
	} {
		if _, err := u.Upload(context.Background(), in); err == nil {
			t.Errorf("%+v: no error", in)
		}
	}
	if _, err := u.Upload(context.Background(), &UploadInput{Key: "k", BodyAt: bytes.NewReader(nil),
		Size: MaxParts*MaxPartSize + 1}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	o := u.Options()
	if o.SliceSize != DefaultSliceSize || o.ChunkSize != DefaultChunkSize || o.ChunkParallelLimit != DefaultChunkParallelLimit ||
		o.ChunkRetryTimes != DefaultChunkRetryTimes || o.MinPartSize != DefaultMinPartSize {
		t.Errorf("defaults %+v", o)
	}
	if o := NewUploader(nil, UploaderOptions{ChunkSize: 1, MinPartSize: 5 * mib, ChunkRetryTimes: -1}).Options(); o.ChunkSize != 5*mib || o.ChunkRetryTimes != 0 {
		t.Errorf("clamped %+v", o)
	}
}

func TestUploadBufPool(t *testing.T) {
	for n, want := range map[int]int{1: 4096, 4096: 4096, 4097: 8192, mib: mib, mib + 1: 2 * mib, 8 * mib: 8 * mib, 16*mib + 1: 17 * mib} {
		if got := sizeClass(n); got != want {
			t.Errorf("sizeClass(%d) = %d, want %d", n, got, want)
		}
	}
	p := newBufPool()
	b := p.get(3 * mib)
	if len(*b) != 3*mib {
		t.Fatalf("len %d", len(*b))
	}
	p.put(b)
	if b2 := p.get(3*mib - 5); len(*b2) != 3*mib {
		t.Errorf("len %d", len(*b2))
	}
}

func TestUploadPartBody(t *testing.T) {
	src := bytes.NewReader([]byte("0123456789"))
	b := &partBody{src: src, off: 2, size: 5}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "23456" || b.check() != nil {
		t.Fatalf("%q %v %v", got, err, b.check())
	}
	if pos, err := b.Seek(1, io.SeekStart); err != nil || pos != 1 {
		t.Fatal(pos, err)
	}
	if got, _ := io.ReadAll(b); string(got) != "3456" {
		t.Errorf("after seek %q", got)
	}
	if end, _ := b.Seek(0, io.SeekEnd); end != 5 {
		t.Errorf("end %d", end)
	}
	short := &partBody{src: src, off: 8, size: 5}
	var pe *permanentError
	if _, err := io.ReadAll(short); !errors.Is(err, io.ErrUnexpectedEOF) || !errors.As(short.check(), &pe) || retryable(short.check()) {
		t.Errorf("short source: %v", err)
	}
	unread := &partBody{src: src, size: 5}
	if unread.check() == nil {
		t.Error("unread body passed the check")
	}
}

func TestUploadUnknownSizeMaxParts(t *testing.T) {
	// 1-byte chunks grow to 512 bytes: 10,000 parts hold 1,023,000 bytes.
	const capacity = 1000 * 1023
	opt := UploaderOptions{SliceSize: 1000, ChunkSize: 1, MinPartSize: 1, ChunkParallelLimit: 8}
	data := testBytes(capacity+1, 8)
	f := newFakeBucket()
	f.minPart = 1
	out, err := newTestUploader(f, opt).Upload(context.Background(), &UploadInput{Key: "k", Body: bytes.NewReader(data[:capacity]), Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	if out.Parts != MaxParts || !bytes.Equal(f.object("k").data, data[:capacity]) {
		t.Errorf("%d parts", out.Parts)
	}
	f = newFakeBucket()
	f.minPart = 1
	_, err = newTestUploader(f, opt).Upload(context.Background(), &UploadInput{Key: "k", Body: bytes.NewReader(data), Size: -1})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("one byte too many: %v", err)
	}
	assertAborted(t, f, "k")
}
