package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFault5xxRetried(t *testing.T) {
	p := newFaultProxy(t)
	c := p.client()
	ctx := testCtx(t)
	data := randBytes(300_000, 10)
	put := p.inject(2, isPut, fail(500, "InternalError"))
	if _, err := c.Put(ctx, &PutInput{Key: "k", Body: bytes.NewReader(data), Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	get := p.inject(1, method("GET"), fail(503, "SlowDown"))
	p.inject(1, method("GET"), fail(429, "TooManyRequests"))
	if got := readAllString(t, c, "k"); !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes", len(got))
	}
	if put.Hits() != 2 || get.Hits() != 1 {
		t.Errorf("faults hit %d, %d times", put.Hits(), get.Hits())
	}
	if st := c.Stats(); st["PUT"] != 3 || st["GET"] != 3 {
		t.Errorf("stats %v", st)
	}
	// Retries run out: 1 + MaxRetries attempts, then the typed error.
	p.inject(100, method("HEAD"), fail(503, "SlowDown"))
	_, err := c.Head(ctx, &HeadInput{Key: "k"})
	var e *Error
	if !errors.Is(err, ErrThrottled) || !errors.As(err, &e) || e.StatusCode != 503 || e.RequestID != "FAULT-SlowDown" {
		t.Errorf("head: %v", err)
	}
	if n := c.Stats()["HEAD"]; n != 4 {
		t.Errorf("%d HEADs, want 4", n)
	}
	p.inject(100, method("DELETE"), fail(500, "InternalError"))
	if err := c.Delete(ctx, "k"); !errors.Is(err, ErrServer) || !strings.Contains(err.Error(), "InternalError") {
		t.Errorf("delete: %v", err)
	}
}

func TestFault4xxNotRetried(t *testing.T) {
	p := newFaultProxy(t)
	c := p.client()
	ctx := testCtx(t)
	p.inject(1, method("GET"), fail(403, "AccessDenied"))
	p.inject(1, method("PUT"), fail(400, "InvalidArgument"))
	_, err := c.Get(ctx, &GetInput{Key: "x", Length: -1})
	var e *Error
	if !errors.Is(err, ErrAccessDenied) || !errors.As(err, &e) || e.RequestID != "FAULT-AccessDenied" || e.Code != "AccessDenied" {
		t.Errorf("get: %v", err)
	}
	_, err = c.Put(ctx, &PutInput{Key: "x", Body: strings.NewReader("x"), Size: 1})
	if !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("put: %v", err)
	}
	if st := c.Stats(); st["GET"] != 1 || st["PUT"] != 1 {
		t.Errorf("4xx retried: %v", st)
	}
}

func TestFaultCopy200Error(t *testing.T) {
	p := newFaultProxy(t)
	c := p.client()
	ctx := testCtx(t)
	data := randBytes(50_000, 11)
	mustPut(t, c, "src", data, map[string]string{"mtime": "5"})
	rule := p.inject(2, isCopy, errorIn200)
	if _, err := c.Copy(ctx, &CopyInput{SrcKey: "src", DstKey: "dst"}); err != nil {
		t.Fatal(err)
	}
	if rule.Hits() != 2 || c.Stats()["COPY"] != 3 {
		t.Errorf("hits %d, stats %v", rule.Hits(), c.Stats())
	}
	if got := readAllString(t, c, "dst"); !bytes.Equal(got, data) {
		t.Error("copy differs")
	}
	// A 200-with-Error that keeps coming is an ErrServer in the end.
	p.inject(100, isCopy, errorIn200)
	_, err := c.Copy(ctx, &CopyInput{SrcKey: "src", DstKey: "dst2"})
	var e *Error
	if !errors.Is(err, ErrServer) || !errors.As(err, &e) || e.StatusCode != 200 || e.Code != "InternalError" {
		t.Errorf("persistent 200-with-Error: %v", err)
	}
}

// multipartThroughFaults uploads data in 5 MiB parts and completes it.
func multipartThroughFaults(t *testing.T, c *Client, key string, data []byte) error {
	ctx := testCtx(t)
	id, err := c.InitiateMultipart(ctx, &InitiateInput{Key: key})
	if err != nil {
		return err
	}
	parts, err := uploadParts(ctx, c, key, id, data, 5<<20)
	if err == nil {
		_, err = c.CompleteMultipart(ctx, &CompleteInput{Key: key, UploadID: id, Parts: parts})
	}
	if err != nil {
		if aerr := c.AbortMultipart(ctx, key, id); aerr != nil {
			t.Errorf("abort: %v", aerr)
		}
	}
	return err
}

func TestFaultComplete200Error(t *testing.T) {
	p := newFaultProxy(t)
	c := p.client()
	data := randBytes(11<<20, 12)
	rule := p.inject(1, isComplete, errorIn200)
	if err := multipartThroughFaults(t, c, "mp", data); err != nil {
		t.Fatal(err)
	}
	if rule.Hits() != 1 || c.Stats()["CompleteMultipart"] != 2 {
		t.Errorf("hits %d, stats %v", rule.Hits(), c.Stats())
	}
	if got := readAllString(t, c, "mp"); !bytes.Equal(got, data) {
		t.Error("object differs")
	}
	noUploadsLeft(t, c)
}

// TestFaultCompleteAnswerLost: the server completes the upload but the
// answer is lost; the retry finds the upload gone and checks the object.
func TestFaultCompleteAnswerLost(t *testing.T) {
	p := newFaultProxy(t)
	c := p.client()
	data := randBytes(11<<20, 13)
	rule := p.inject(1, isComplete, forwardThenHangUp)
	if err := multipartThroughFaults(t, c, "mp", data); err != nil {
		t.Fatal(err)
	}
	if rule.Hits() != 1 {
		t.Errorf("hits %d", rule.Hits())
	}
	if got := readAllString(t, c, "mp"); !bytes.Equal(got, data) {
		t.Error("object differs")
	}
	noUploadsLeft(t, c)
}

func TestFaultResetRequestBody(t *testing.T) {
	p := newFaultProxy(t)
	c := p.client()
	ctx := testCtx(t)
	data := randBytes(3<<20, 14)
	put := p.inject(2, isPut, cutRequestBody(1<<20))
	// The body starts at an offset: retries must rewind to it, not to 0.
	r := bytes.NewReader(append([]byte("HEADER"), data...))
	r.Seek(6, io.SeekStart)
	if _, err := c.Put(ctx, &PutInput{Key: "k", Body: r, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if put.Hits() != 2 {
		t.Errorf("hits %d", put.Hits())
	}
	if got := readAllString(t, c, "k"); md5hexOf(got) != md5hexOf(data) {
		t.Errorf("object differs: %d bytes", len(got))
	}
	// Parts too; the multipart object comes out whole and no upload is left.
	big := randBytes(12<<20, 15)
	part := p.inject(3, isUploadPart, cutRequestBody(2<<20))
	if err := multipartThroughFaults(t, c, "mp", big); err != nil {
		t.Fatal(err)
	}
	if part.Hits() != 3 {
		t.Errorf("part hits %d", part.Hits())
	}
	if got := readAllString(t, c, "mp"); md5hexOf(got) != md5hexOf(big) {
		t.Error("multipart object differs")
	}
	noUploadsLeft(t, c)
	// A body that never gets through fails the call and leaves no object.
	p.inject(100, isPut, cutRequestBody(1000))
	_, err := c.Put(ctx, &PutInput{Key: "never", Body: bytes.NewReader(data), Size: int64(len(data))})
	if !errors.Is(err, ErrNetwork) {
		t.Errorf("put through resets: %v", err)
	}
	if _, err := c.Head(ctx, &HeadInput{Key: "never"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("head of failed put: %v", err)
	}
}

func TestFaultResetResponseBody(t *testing.T) {
	p := newFaultProxy(t)
	c := p.client()
	data := randBytes(8<<20, 16)
	mustPut(t, c, "k", data, nil)
	rule := p.inject(2, method("GET"), cutResponseBody(3<<20))
	if got := readAllString(t, c, "k"); !bytes.Equal(got, data) {
		t.Errorf("whole read through resets: %d bytes", len(got))
	}
	if rule.Hits() != 2 || c.Stats()["GET"] != 3 {
		t.Errorf("hits %d, stats %v", rule.Hits(), c.Stats())
	}
	// A range, cut three times (the limit): still whole.
	p.inject(3, method("GET"), cutResponseBody(100_000))
	got, out := mustGet(t, c, &GetInput{Key: "k", Offset: 1000, Length: 1 << 20})
	if !bytes.Equal(got, data[1000:1000+1<<20]) || out.Info.Size != int64(len(data)) {
		t.Errorf("ranged read through resets: %d bytes", len(got))
	}
	// Cut every time: the reader gets an error, never short data as EOF.
	p.inject(100, method("GET"), cutResponseBody(100_000))
	o, err := c.Get(testCtx(t), &GetInput{Key: "k", Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(o.Body)
	o.Body.Close()
	if !errors.Is(err, ErrNetwork) {
		t.Errorf("read through endless resets: %v", err)
	}
	// The object changed between the cut and the resume: precondition.
	p.clear()
	p.inject(1, method("GET"), cutResponseBody(1<<20))
	o, err = c.Get(testCtx(t), &GetInput{Key: "k", Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(o.Body, buf); err != nil {
		t.Fatal(err)
	}
	mustPut(t, c, "k", data[:len(data)-1], nil)
	_, err = io.ReadAll(o.Body)
	o.Body.Close()
	if !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("resume over a changed object: %v", err)
	}
}

func TestFaultTimeouts(t *testing.T) {
	p := newFaultProxy(t)
	c := p.client(func(cfg *Config) { cfg.Timeout = 300 * time.Millisecond })
	ctx := testCtx(t)
	data := randBytes(2<<20, 17)
	mustPut(t, c, "k", data, nil)
	// No answer in time: retried.
	rule := p.inject(1, method("HEAD"), stall(3*time.Second))
	start := time.Now()
	if _, err := c.Head(ctx, &HeadInput{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if rule.Hits() != 1 || time.Since(start) > 2*time.Second {
		t.Errorf("hits %d after %v", rule.Hits(), time.Since(start))
	}
	// A body that stops midway: the read resumes.
	p.inject(1, method("GET"), slowBody(1<<20, 1<<20, 3*time.Second))
	if got := readAllString(t, c, "k"); !bytes.Equal(got, data) {
		t.Error("read through a stall differs")
	}
	// A body that trickles for longer than the timeout is never cut. Its
	// client has a longer timeout, four times each pause, so that a loaded
	// machine's delays do not turn a pause into a timeout; the pauses (one
	// before each 256 KiB of the 2 MiB) still add up to twice the timeout.
	const trickleTimeout = time.Second
	ct := p.client(func(cfg *Config) { cfg.Timeout = trickleTimeout })
	mustPut(t, ct, "k", data, nil)
	p.inject(1, method("GET"), slowBody(0, 256<<10, trickleTimeout/4))
	gets := ct.Stats()["GET"]
	start = time.Now()
	if got := readAllString(t, ct, "k"); !bytes.Equal(got, data) {
		t.Error("trickled read differs")
	}
	if took := time.Since(start); took < 3*trickleTimeout/2 || ct.Stats()["GET"] != gets+1 {
		t.Errorf("trickle took %v and %d GETs", took, ct.Stats()["GET"]-gets)
	}
	// Every attempt times out: a timeout error.
	p.clear()
	p.inject(100, method("HEAD"), stall(3*time.Second))
	_, err := c.Head(ctx, &HeadInput{Key: "k"})
	var ne interface{ Timeout() bool }
	if !errors.Is(err, ErrNetwork) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("head through stalls: %v", err)
	}
}

func TestFaultCancelStopsRetries(t *testing.T) {
	p := newFaultProxy(t)
	// Retries never run out before the deadline: the backoff is full
	// jitter, so a few could add up to less than it by chance.
	const retries = 1000
	c := p.client(func(cfg *Config) { cfg.MaxRetries = retries })
	c.backoffBase, c.backoffCap = 2*time.Second, 5*time.Second
	p.inject(retries+1, method("HEAD"), fail(503, "SlowDown"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Head(ctx, &HeadInput{Key: "k"})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("after %v: %v", time.Since(start), err)
	}
	// Cancelling while a request waits for its answer ends it too.
	p.inject(1, method("GET"), stall(5*time.Second))
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	if _, err := c.Get(ctx, &GetInput{Key: "k", Length: -1}); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Errorf("after %v: %v", time.Since(start), err)
	}
	_ = http.MethodGet
}
