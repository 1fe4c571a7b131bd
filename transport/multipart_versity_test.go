package transport

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"cosmount/auth"
	"cosmount/internal/testrig"
)

// Uploader and Copier through a real Client against versitygw (S3 flavour,
// real SigV4). TestMain (main_test.go) starts and stops the server.

// versityAPI is a Client for a fresh bucket that counts the part calls in
// flight, and can run a hook as a part starts.
type versityAPI struct {
	*Client
	mu        sync.Mutex
	inflight  int
	maxFlight int
	partHook  func(num int)
}

func newVersityAPI(t testing.TB) *versityAPI {
	t.Helper()
	srv := testrig.Get(t)
	c, err := New(Config{Flavor: FlavorS3, Endpoint: srv.Endpoint, Bucket: srv.NewBucket(t), Region: srv.Region,
		PathStyle: true, Credentials: auth.NewStatic(auth.Credentials{SecretID: srv.AccessKey, SecretKey: srv.SecretKey})})
	if err != nil {
		t.Fatal(err)
	}
	return &versityAPI{Client: c}
}

func (v *versityAPI) track(num int) func() {
	v.mu.Lock()
	v.inflight++
	v.maxFlight = max(v.maxFlight, v.inflight)
	hook := v.partHook
	v.mu.Unlock()
	if hook != nil {
		hook(num)
	}
	return func() { v.mu.Lock(); v.inflight--; v.mu.Unlock() }
}

// holdFirstPart makes part 1 wait (10 s at most) until n parts are in
// flight, so that a parallel uploader is seen running parts together
// however fast the server answers each one.
func (v *versityAPI) holdFirstPart(n int) {
	v.partHook = func(num int) {
		if num != 1 {
			return
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			v.mu.Lock()
			f := v.inflight
			v.mu.Unlock()
			if f >= n {
				return
			}
		}
	}
}

func (v *versityAPI) UploadPart(ctx context.Context, in *UploadPartInput) (*Part, error) {
	defer v.track(in.PartNumber)()
	return v.Client.UploadPart(ctx, in)
}

func (v *versityAPI) UploadPartCopy(ctx context.Context, in *UploadPartCopyInput) (*Part, error) {
	defer v.track(in.PartNumber)()
	return v.Client.UploadPartCopy(ctx, in)
}

func (v *versityAPI) md5Of(t testing.TB, key string) ([16]byte, *ObjectInfo) {
	t.Helper()
	out, err := v.Get(context.Background(), &GetInput{Key: key, Length: -1})
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer out.Body.Close()
	h := md5.New()
	if _, err := io.Copy(h, out.Body); err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	var sum [16]byte
	copy(sum[:], h.Sum(nil))
	info, err := v.Head(context.Background(), &HeadInput{Key: key})
	if err != nil {
		t.Fatalf("head %q: %v", key, err)
	}
	return sum, info
}

func (v *versityAPI) noUploads(t testing.TB) {
	t.Helper()
	ups, err := v.ListMultipartUploads(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 0 {
		t.Errorf("%d multipart uploads left: %+v", len(ups), ups)
	}
}

func (v *versityAPI) absent(t testing.TB, key string) {
	t.Helper()
	if _, err := v.Head(context.Background(), &HeadInput{Key: key}); !errors.Is(err, ErrNotFound) {
		t.Errorf("head %q: %v, want not found", key, err)
	}
}

// s3Uploader has the defaults but S3's 5 MiB minimum part.
var s3Uploader = UploaderOptions{MinPartSize: 5 * mib}

func TestUploadVersity64MiB(t *testing.T) {
	data := testBytes(64*mib, 64)
	want := md5.Sum(data)
	for name, in := range map[string]*UploadInput{
		"sequential unknown size": {Body: onlyReader{bytes.NewReader(data)}, Size: -1},
		"sequential known size":   {Body: onlyReader{bytes.NewReader(data)}, Size: int64(len(data))},
		"readerat":                {BodyAt: bytes.NewReader(data), Size: int64(len(data))},
	} {
		t.Run(name, func(t *testing.T) {
			v := newVersityAPI(t)
			v.holdFirstPart(2)
			u := NewUploader(v, s3Uploader)
			in.Key, in.ContentType, in.Metadata = "dir/big file", "application/octet-stream", map[string]string{"mtime": "1700000000"}
			out, err := u.Upload(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if out.Parts != 8 || out.Size != int64(len(data)) {
				t.Errorf("out %+v", out)
			}
			if v.maxFlight < 2 || v.maxFlight > DefaultChunkParallelLimit {
				t.Errorf("%d parts in flight at most, want 2..%d", v.maxFlight, DefaultChunkParallelLimit)
			}
			sum, info := v.md5Of(t, in.Key)
			if sum != want || info.Size != int64(len(data)) || info.Metadata["mtime"] != "1700000000" {
				t.Errorf("object differs: size %d, meta %v", info.Size, info.Metadata)
			}
			if !strings.HasSuffix(out.ETag, "-8") || info.ETag != out.ETag {
				t.Errorf("ETag %q, HEAD says %q", out.ETag, info.ETag)
			}
			v.noUploads(t)
		})
	}
}

func TestUploadVersitySmall(t *testing.T) {
	v := newVersityAPI(t)
	u := NewUploader(v, s3Uploader)
	for _, size := range []int64{0, 1, DefaultSliceSize} {
		data := testBytes(size, uint64(size))
		key := fmt.Sprintf("small-%d", size)
		out, err := u.Upload(context.Background(), &UploadInput{Key: key, Body: bytes.NewReader(data), Size: -1})
		if err != nil {
			t.Fatal(err)
		}
		if sum, info := v.md5Of(t, key); sum != md5.Sum(data) || info.Size != size || out.Parts != 0 {
			t.Errorf("%d: object differs (%d parts)", size, out.Parts)
		}
	}
}

// brokenReader returns n bytes, then err.
type brokenReader struct {
	n   int64
	err error
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, b.err
	}
	k := min(int64(len(p)), b.n)
	clear(p[:k])
	b.n -= k
	return int(k), nil
}

func TestUploadVersityFailingSource(t *testing.T) {
	v := newVersityAPI(t)
	u := NewUploader(v, s3Uploader)
	boom := errors.New("read error")
	_, err := u.Upload(context.Background(), &UploadInput{Key: "broken", Body: &brokenReader{n: 37 * mib, err: boom}, Size: -1})
	if !errors.Is(err, boom) {
		t.Errorf("err %v", err)
	}
	v.absent(t, "broken")
	v.noUploads(t)

	// A source shorter than its Size.
	_, err = u.Upload(context.Background(), &UploadInput{Key: "short", BodyAt: bytes.NewReader(make([]byte, 30*mib)), Size: 40 * mib})
	if err == nil {
		t.Error("short source uploaded")
	}
	v.absent(t, "short")
	v.noUploads(t)
}

func TestUploadVersityCancel(t *testing.T) {
	v := newVersityAPI(t)
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	v.partHook = func(num int) {
		if num == 3 {
			once.Do(cancel)
		}
	}
	u := NewUploader(v, UploaderOptions{MinPartSize: 5 * mib, ChunkSize: 5 * mib, ChunkParallelLimit: 2})
	_, err := u.Upload(ctx, &UploadInput{Key: "cancelled", BodyAt: bytes.NewReader(make([]byte, 40*mib)), Size: 40 * mib})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v", err)
	}
	v.absent(t, "cancelled")
	v.noUploads(t)
}

func TestCopierVersity(t *testing.T) {
	ctx := context.Background()
	v := newVersityAPI(t)
	opt := CopierOptions{CopySliceSize: 8 * mib, CopyChunkSize: 5 * mib, MinPartSize: 5 * mib, CopyChunkParallelLimit: 2}
	c := NewCopier(v, opt)
	u := NewUploader(v, s3Uploader)
	for _, size := range []int64{3 * mib, 8 * mib, 8*mib + 1, 23 * mib} {
		data := testBytes(size, uint64(size))
		src := fmt.Sprintf("src %d", size)
		meta := map[string]string{"mode": "33188", "mtime": "1700000001"}
		if _, err := u.Upload(ctx, &UploadInput{Key: src, BodyAt: bytes.NewReader(data), Size: size,
			ContentType: "text/x-test", Metadata: meta}); err != nil {
			t.Fatal(err)
		}
		want := md5.Sum(data)
		multipart := size > opt.CopySliceSize
		before := v.Stats()
		kept, replaced := src+" kept", src+" replaced"
		if _, err := c.Copy(ctx, &CopyObjectInput{SrcKey: src, DstKey: kept, SrcSize: -1}); err != nil {
			t.Fatalf("%d kept: %v", size, err)
		}
		if _, err := c.Copy(ctx, &CopyObjectInput{SrcKey: src, DstKey: replaced, SrcSize: size, ReplaceMetadata: true,
			Metadata: map[string]string{"mode": "33261"}, ContentType: "image/png"}); err != nil {
			t.Fatalf("%d replaced: %v", size, err)
		}
		after := v.Stats()
		if parts := after["UploadPartCopy"] - before["UploadPartCopy"]; multipart != (parts > 0) {
			t.Errorf("%d: %d part copies", size, parts)
		}
		sum, info := v.md5Of(t, kept)
		if sum != want || info.Metadata["mode"] != "33188" || info.Metadata["mtime"] != "1700000001" || info.ContentType != "text/x-test" {
			t.Errorf("%d kept: differs: %v %q", size, info.Metadata, info.ContentType)
		}
		sum, info = v.md5Of(t, replaced)
		if sum != want || info.Metadata["mode"] != "33261" || info.Metadata["mtime"] != "" || info.ContentType != "image/png" {
			t.Errorf("%d replaced: differs: %v %q", size, info.Metadata, info.ContentType)
		}
	}
	v.noUploads(t)
}

func TestCopierVersitySourceChanges(t *testing.T) {
	ctx := context.Background()
	v := newVersityAPI(t)
	u := NewUploader(v, s3Uploader)
	if _, err := u.Upload(ctx, &UploadInput{Key: "src", BodyAt: bytes.NewReader(testBytes(20*mib, 1)), Size: 20 * mib}); err != nil {
		t.Fatal(err)
	}
	v.partHook = func(num int) {
		if num == 2 { // rewritten, same size, while the copy runs
			if _, err := v.Put(ctx, &PutInput{Key: "src", Body: bytes.NewReader(testBytes(20*mib, 2)), Size: 20 * mib}); err != nil {
				t.Error(err)
			}
		}
	}
	c := NewCopier(v, CopierOptions{CopySliceSize: 5 * mib, CopyChunkSize: 5 * mib, MinPartSize: 5 * mib, CopyChunkParallelLimit: 1})
	_, err := c.Copy(ctx, &CopyObjectInput{SrcKey: "src", DstKey: "dst", SrcSize: -1})
	t.Logf("copy of a changing source: %v", err)
	if !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("err %v, want precondition failed", err)
	}
	v.absent(t, "dst")
	v.noUploads(t)
}

// BenchmarkUpload uploads 64 MiB to versitygw on loopback per iteration.
func BenchmarkUpload(b *testing.B) {
	data := testBytes(64*mib, 1)
	for _, bc := range []struct {
		name string
		opt  UploaderOptions
		at   bool
	}{
		{"chunk8M-par1", UploaderOptions{ChunkParallelLimit: 1}, false},
		{"chunk8M-par4", UploaderOptions{}, false},
		{"chunk8M-par8", UploaderOptions{ChunkParallelLimit: 8}, false},
		{"chunk16M-par4", UploaderOptions{ChunkSize: 16 * mib}, false},
		{"chunk8M-par4-readerat", UploaderOptions{}, true},
		{"single-put", UploaderOptions{SliceSize: 64 * mib}, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := newVersityAPI(b)
			bc.opt.MinPartSize = 5 * mib
			u := NewUploader(v, bc.opt)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := range b.N {
				in := &UploadInput{Key: fmt.Sprintf("bench-%d", i%2), Size: int64(len(data))}
				if bc.at {
					in.BodyAt = bytes.NewReader(data)
				} else {
					in.Body = bytes.NewReader(data)
				}
				if _, err := u.Upload(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCopier copies a 256 MiB object server-side per iteration.
func BenchmarkCopier(b *testing.B) {
	v := newVersityAPI(b)
	const size = 256 * mib
	if _, err := NewUploader(v, s3Uploader).Upload(context.Background(),
		&UploadInput{Key: "src", BodyAt: bytes.NewReader(testBytes(size, 2)), Size: size}); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		opt  CopierOptions
	}{
		{"single-copy", CopierOptions{CopySliceSize: size}},
		{"parts64M-par8", CopierOptions{}},
		{"parts16M-par8", CopierOptions{CopyChunkSize: 16 * mib}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.opt.MinPartSize = 5 * mib
			c := NewCopier(v, bc.opt)
			b.SetBytes(size)
			for range b.N {
				if _, err := c.Copy(context.Background(), &CopyObjectInput{SrcKey: "src", DstKey: "dst", SrcSize: size}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestUploadVersityResume(t *testing.T) {
	v := newVersityAPI(t)
	testResume(t, v, s3Uploader, func(key string) [16]byte {
		sum, _ := v.md5Of(t, key)
		return sum
	})
	v.noUploads(t)
}
