package transport

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// fileSource is a FileReaderAt over a file on disk; Intact fails once
// spoiled is set.
type fileSource struct {
	*os.File
	opened  atomic.Int32
	spoiled atomic.Bool
}

func newFileSource(t *testing.T, data []byte) *fileSource {
	p := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &fileSource{File: f}
}

func (s *fileSource) OpenSection(off, n int64) (*os.File, error) {
	f, err := os.Open(s.Name())
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	s.opened.Add(1)
	return f, nil
}

func (s *fileSource) Intact(off, n int64) error {
	if s.spoiled.Load() {
		return errors.New("bytes changed")
	}
	return nil
}

// A part read from a file goes with sendfile; a server that takes it slowly,
// for much longer than the request timeout, must not have it cut off, since
// bytes keep moving; and the part must arrive whole.
func TestUploadPartFromAFileThroughASlowServer(t *testing.T) {
	p := newFaultProxy(t)
	const timeout = 2 * time.Second
	c := p.client(func(cfg *Config) { cfg.Timeout = timeout })
	ctx := testCtx(t)
	data := randBytes(32<<20, 31)
	src := newFileSource(t, append([]byte("HEADER"), data...))
	id, err := c.InitiateMultipart(ctx, &InitiateInput{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	// The server reads the first half of the part slowly, 512 KiB every
	// 100 ms: 3.2 s, well past the timeout. The file's offset, which tells
	// progress, moves by up to half the socket buffer (loopback: a few MiB)
	// at a time: at that pace, well within the timeout. The second half
	// goes at full speed, for once the last bytes are in the socket the
	// offset stops moving: what the buffers then hold (a few MiB) must reach
	// the server, and the server finish the part, well within the timeout.
	rule := p.inject(1, isUploadPart, slowRequestHead(16<<20, 512<<10, 100*time.Millisecond))
	start := time.Now()
	part, err := c.UploadPart(ctx, &UploadPartInput{Key: "k", UploadID: id, PartNumber: 1,
		Body: &partBody{src: src, off: 6, size: int64(len(data))}, Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	if src.opened.Load() == 0 {
		t.Fatal("the part was not sent from a file of its own")
	}
	if rule.Hits() != 1 || c.Stats()["UploadPart"] != 1 {
		t.Errorf("%d slowed, %d UploadParts: the slow send was cut off", rule.Hits(), c.Stats()["UploadPart"])
	}
	if time.Since(start) < 3*timeout/2 {
		t.Errorf("the send took %v: the server did not slow it past the timeout, the test proves nothing", time.Since(start))
	}
	if _, err := c.CompleteMultipart(ctx, &CompleteInput{Key: "k", UploadID: id, Parts: []Part{*part}}); err != nil {
		t.Fatal(err)
	}
	if got := readAllString(t, c, "k"); !bytes.Equal(got, data) {
		t.Errorf("object differs: %d bytes", len(got))
	}
}

// slowRequestHead forwards, reading the first slow bytes of the request's
// body in chunks of n bytes with a pause of d before each, and the rest at
// full speed.
func slowRequestHead(slow int64, n int, d time.Duration) func(*faultProxy, http.ResponseWriter, *http.Request) {
	return func(p *faultProxy, w http.ResponseWriter, r *http.Request) {
		head := &slowReader{rc: io.NopCloser(io.LimitReader(r.Body, slow)), n: n, d: d, done: r.Context().Done()}
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(head, r.Body), r.Body}
		p.forward(w, r, nil)
	}
}

// Bytes that changed while they were sent fail the part, once, not retried.
func TestUploadPartFromAFileThatChangedFails(t *testing.T) {
	c := newS3Client(t)
	ctx := testCtx(t)
	data := randBytes(6<<20, 32)
	src := newFileSource(t, data)
	src.spoiled.Store(true)
	id, err := c.InitiateMultipart(ctx, &InitiateInput{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.AbortMultipart(ctx, "k", id)
	_, err = c.UploadPart(ctx, &UploadPartInput{Key: "k", UploadID: id, PartNumber: 1,
		Body: &partBody{src: src, size: int64(len(data))}, Size: int64(len(data))})
	if err == nil {
		t.Fatal("a part whose bytes changed during the send was accepted")
	}
	if n := c.Stats()["UploadPart"]; n != 1 {
		t.Errorf("%d UploadParts, want 1", n)
	}
}
