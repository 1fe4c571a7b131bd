package fs_test

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sync/errgroup"

	"cosmount/auth"
	cfs "cosmount/fs"
	"cosmount/internal/cosfake"
	"cosmount/internal/testrig"
	"cosmount/transport"
)

var debugFUSE = flag.Bool("debug-fuse", false, "log FUSE requests")

func TestMain(m *testing.M) { testrig.Main(m) }

// countingBucket counts the requests the filesystem sends, by kind, and the
// most HEADs in flight at once.
type countingBucket struct {
	cfs.Bucket
	heads, gets, lists  atomic.Int64
	getBytes            atomic.Int64 // asked for by ranged GETs
	smallGets           atomic.Int64 // ranged GETs of at most 1 MiB
	inflight, maxHeadsX atomic.Int64
	listsIn, maxListsX  atomic.Int64
}

func (c *countingBucket) Head(ctx context.Context, in *transport.HeadInput) (*transport.ObjectInfo, error) {
	c.heads.Add(1)
	defer inflight(&c.inflight, &c.maxHeadsX)()
	return c.Bucket.Head(ctx, in)
}

// inflight counts one more request in n and records the most in max; the
// returned function counts it out.
func inflight(n, max *atomic.Int64) func() {
	v := n.Add(1)
	for {
		m := max.Load()
		if v <= m || max.CompareAndSwap(m, v) {
			break
		}
	}
	return func() { n.Add(-1) }
}

func (c *countingBucket) Get(ctx context.Context, in *transport.GetInput) (*transport.GetOutput, error) {
	c.gets.Add(1)
	if in.Length > 0 {
		c.getBytes.Add(in.Length)
		if in.Length <= 1<<20 {
			c.smallGets.Add(1)
		}
	}
	return c.Bucket.Get(ctx, in)
}

func (c *countingBucket) List(ctx context.Context, in *transport.ListInput) (*transport.ListOutput, error) {
	c.lists.Add(1)
	defer inflight(&c.listsIn, &c.maxListsX)()
	return c.Bucket.List(ctx, in)
}

func (c *countingBucket) reset() {
	c.heads.Store(0)
	c.gets.Store(0)
	c.getBytes.Store(0)
	c.smallGets.Store(0)
	c.lists.Store(0)
	c.maxHeadsX.Store(0)
	c.maxListsX.Store(0)
}

// rig is a bucket on the test server and, once mounted, a mount of it.
type rig struct {
	t          *testing.T
	bucketName string
	client     *transport.Client
	counter    *countingBucket
	// bucketOverride, when set, is what the mount talks to.
	bucketOverride cfs.Bucket
	mnt            string
	cacheDir       string
	fsys           *cfs.FS
	// unmount ends the mount and drains it (as cosmount does when it
	// ends), returning the drain's error; nil when not mounted.
	unmount func() error
}

func newBucket(t *testing.T) *rig {
	t.Helper()
	srv := testrig.Get(t)
	bucket := srv.NewBucket(t)
	c, err := transport.New(transport.Config{
		Flavor:      transport.FlavorS3,
		Endpoint:    srv.Endpoint,
		Bucket:      bucket,
		Region:      srv.Region,
		PathStyle:   true,
		Credentials: auth.NewStatic(auth.Credentials{SecretID: srv.AccessKey, SecretKey: srv.SecretKey}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, bucketName: bucket, client: c, counter: &countingBucket{Bucket: c}}
}

// newBucketThrough is newBucket with the client's requests sent through
// wrap(the default transport), for tests that hold or refuse some of them.
func newBucketThrough(t *testing.T, wrap func(http.RoundTripper) http.RoundTripper) *rig {
	t.Helper()
	r := newBucket(t)
	srv := testrig.Get(t)
	tr := transport.DefaultTransport()
	t.Cleanup(tr.CloseIdleConnections)
	c, err := transport.New(transport.Config{
		Flavor:      transport.FlavorS3,
		Endpoint:    srv.Endpoint,
		Bucket:      r.bucketName,
		Region:      srv.Region,
		PathStyle:   true,
		Credentials: auth.NewStatic(auth.Credentials{SecretID: srv.AccessKey, SecretKey: srv.SecretKey}),
		HTTPClient:  &http.Client{Transport: wrap(tr)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.client, r.counter = c, &countingBucket{Bucket: c}
	return r
}

// newCOSFakeBucket is a rig over the in-process COS bucket (internal/cosfake)
// with a cos-flavour client, for keys the test server cannot store: seed
// them with the fake's Put.
func newCOSFakeBucket(t *testing.T) (*rig, *cosfake.Fake) {
	t.Helper()
	f := cosfake.New(t, cosfake.DefaultCredentials())
	tr := transport.DefaultTransport()
	tr.Proxy = nil
	tr.DialContext = f.Dial
	t.Cleanup(tr.CloseIdleConnections)
	c, err := transport.New(transport.Config{
		Flavor:      transport.FlavorCOS,
		Bucket:      cosfake.Bucket,
		Region:      cosfake.Region,
		Protocol:    "http",
		Credentials: auth.NewStatic(f.Credentials()),
		HTTPClient:  &http.Client{Transport: tr},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, bucketName: cosfake.Bucket, client: c, counter: &countingBucket{Bucket: c}}, f
}

// mount mounts the bucket with opt and unmounts it when the test ends.
func (r *rig) mount(opt cfs.Options) {
	t := r.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if opt.CacheDir == "" {
		opt.CacheDir = t.TempDir()
	}
	r.cacheDir = opt.CacheDir
	up := transport.NewUploader(r.client, transport.UploaderOptions{MinPartSize: 5 << 20})
	cp := transport.NewCopier(r.client, transport.CopierOptions{MinPartSize: 5 << 20})
	var b cfs.Bucket = r.counter
	if r.bucketOverride != nil {
		b = r.bucketOverride
	}
	fsys, err := cfs.New(ctx, b, up, cp, opt)
	if err != nil {
		t.Fatal(err)
	}
	r.fsys = fsys
	r.mnt = t.TempDir()
	mo := fsys.MountOptions()
	mo.DirectMount = true
	mo.Debug = *debugFUSE
	server, err := gofs.Mount(r.mnt, fsys.Root(), mo)
	if err != nil {
		cancel()
		t.Fatalf("mount: %v", err)
	}
	fsys.Mounted(r.mnt)
	var once sync.Once
	end := func(drain bool) error {
		var err error
		once.Do(func() {
			if uerr := server.Unmount(); uerr != nil {
				t.Errorf("unmount: %v", uerr)
				drain = false // Wait would wait for the mount to end
			}
			if drain {
				server.Wait()
				err = fsys.Drain(ctx)
			}
			cancel()
			fsys.Close()
		})
		return err
	}
	r.unmount = func() error { return end(true) }
	t.Cleanup(func() { end(false) })
}

// put stores an object directly in the bucket, past the mount.
func (r *rig) put(key string, data []byte, meta map[string]string) {
	r.t.Helper()
	_, err := r.client.Put(context.Background(), &transport.PutInput{
		Key: key, Body: bytes.NewReader(data), Size: int64(len(data)), Metadata: meta,
	})
	if err != nil {
		r.t.Fatalf("put %q: %v", key, err)
	}
}

// putMany stores many small objects in parallel.
func (r *rig) putMany(keys []string, data func(i int) []byte) {
	r.t.Helper()
	var g errgroup.Group
	g.SetLimit(32)
	for i, k := range keys {
		g.Go(func() error {
			b := data(i)
			_, err := r.client.Put(context.Background(), &transport.PutInput{Key: k, Body: bytes.NewReader(b), Size: int64(len(b))})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		r.t.Fatal(err)
	}
}

// putLarge stores size bytes of pattern(off) data through multipart parts.
func (r *rig) putLarge(key string, size int64) {
	r.t.Helper()
	ctx := context.Background()
	const part = 64 << 20
	id, err := r.client.InitiateMultipart(ctx, &transport.InitiateInput{Key: key})
	if err != nil {
		r.t.Fatal(err)
	}
	n := int((size + part - 1) / part)
	parts := make([]transport.Part, n)
	var g errgroup.Group
	g.SetLimit(2)
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		g.Go(func() error {
			off := int64(i) * part
			ln := min(part, size-off)
			buf := make([]byte, ln)
			fillPattern(buf, off)
			p, err := r.client.UploadPart(ctx, &transport.UploadPartInput{Key: key, UploadID: id, PartNumber: i + 1, Body: bytes.NewReader(buf), Size: ln})
			if err != nil {
				return err
			}
			mu.Lock()
			parts[i] = *p
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		_ = r.client.AbortMultipart(ctx, key, id)
		r.t.Fatal(err)
	}
	if _, err := r.client.CompleteMultipart(ctx, &transport.CompleteInput{Key: key, UploadID: id, Parts: parts}); err != nil {
		r.t.Fatal(err)
	}
}

// fillPattern writes bytes that depend on their offset, so that a block
// served at the wrong place shows.
func fillPattern(b []byte, off int64) {
	for i := range b {
		o := off + int64(i)
		b[i] = byte(o*7 + o>>20*13 + o>>12)
	}
}

// checkPattern reads r to the end and reports the first byte that differs
// from fillPattern, or a wrong length.
func checkPattern(t *testing.T, rd io.Reader, size int64) {
	t.Helper()
	buf := make([]byte, 1<<20)
	want := make([]byte, 1<<20)
	var off int64
	for {
		n, err := io.ReadFull(rd, buf)
		if n > 0 {
			fillPattern(want[:n], off)
			if !bytes.Equal(buf[:n], want[:n]) {
				for i := range n {
					if buf[i] != want[i] {
						t.Fatalf("byte %d differs: got %d want %d", off+int64(i), buf[i], want[i])
					}
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	if off != size {
		t.Fatalf("read %d bytes, want %d", off, size)
	}
}

// eventually retries check until it passes or d runs out.
func eventually(t *testing.T, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
