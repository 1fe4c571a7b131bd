package transport

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// contractBucket is every bucket call; the contract suite runs over any
// implementation (the real client against versitygw, a fake in process).
type contractBucket interface {
	Head(ctx context.Context, in *HeadInput) (*ObjectInfo, error)
	Get(ctx context.Context, in *GetInput) (*GetOutput, error)
	Put(ctx context.Context, in *PutInput) (*PutOutput, error)
	Delete(ctx context.Context, key string) error
	DeleteMany(ctx context.Context, keys []string) ([]DeleteError, error)
	List(ctx context.Context, in *ListInput) (*ListOutput, error)
	Copy(ctx context.Context, in *CopyInput) (*CopyOutput, error)
	InitiateMultipart(ctx context.Context, in *InitiateInput) (string, error)
	UploadPart(ctx context.Context, in *UploadPartInput) (*Part, error)
	UploadPartCopy(ctx context.Context, in *UploadPartCopyInput) (*Part, error)
	CompleteMultipart(ctx context.Context, in *CompleteInput) (*PutOutput, error)
	AbortMultipart(ctx context.Context, key, uploadID string) error
	ListParts(ctx context.Context, key, uploadID string) ([]Part, error)
	ListMultipartUploads(ctx context.Context, prefix string) ([]Upload, error)
}

var _ contractBucket = (*Client)(nil)

// contractOpts sizes the suite for its target.
type contractOpts struct {
	// bigMultipart is the size of the parallel multipart object, in parts
	// of 8 MiB (64 MiB against a real server; less for a fake under -race).
	bigMultipart int
}

// runContract checks every bucket call's behaviour; newBucket gives each
// subtest an empty bucket.
func runContract(t *testing.T, opts contractOpts, newBucket func(t *testing.T) contractBucket) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b contractBucket)
	}{
		{"PutHeadGetDelete", contractPutHeadGetDelete},
		{"EmptyObject", contractEmptyObject},
		{"Ranges", contractRanges},
		{"IfMatch", contractIfMatch},
		{"NotFound", contractNotFound},
		{"MultipartRanges", contractMultipartRanges},
		{"MultipartParallel", func(t *testing.T, b contractBucket) { contractMultipartParallel(t, b, opts.bigMultipart) }},
		{"UploadPartCopy", contractUploadPartCopy},
		{"AbortAndListUploads", contractAbort},
		{"Copy", contractCopy},
		{"ListPagination", contractListPagination},
		{"ListDelimiters", contractListDelimiters},
		{"DeleteMany", contractDeleteMany},
		{"Cancelled", contractCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBucket(t)) })
	}
}

func TestContractVersity(t *testing.T) {
	runContract(t, contractOpts{bigMultipart: 64 << 20}, func(t *testing.T) contractBucket { return newS3Client(t) })
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func md5hexOf(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

func mustPut(t *testing.T, b contractBucket, key string, data []byte, meta map[string]string) *PutOutput {
	t.Helper()
	out, err := b.Put(testCtx(t), &PutInput{Key: key, Body: bytes.NewReader(data), Size: int64(len(data)), Metadata: meta})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return out
}

func mustGet(t *testing.T, b contractBucket, in *GetInput) ([]byte, *GetOutput) {
	t.Helper()
	out, err := b.Get(testCtx(t), in)
	if err != nil {
		t.Fatalf("get %q %d+%d: %v", in.Key, in.Offset, in.Length, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %q: %v", in.Key, err)
	}
	return data, out
}

func contractPutHeadGetDelete(t *testing.T, b contractBucket) {
	ctx := testCtx(t)
	data := randBytes(100_000, 1)
	key := "dir/obj ünïcode+%.bin"
	meta := map[string]string{"mode": "33188", "uid": "1000", "gid": "1000", "mtime": "1700000000", "Note": "é café"}
	before := time.Now().Add(-time.Minute)
	out, err := b.Put(ctx, &PutInput{Key: key, Body: bytes.NewReader(data), Size: int64(len(data)),
		ContentType: "application/x-test", Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	if out.ETag != md5hexOf(data) {
		t.Errorf("put ETag %q, want the MD5 %q", out.ETag, md5hexOf(data))
	}
	info, err := b.Head(ctx, &HeadInput{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != key || info.Size != int64(len(data)) || info.ETag != out.ETag || info.ContentType != "application/x-test" {
		t.Errorf("head: %+v", info)
	}
	if info.LastModified.Before(before) || info.LastModified.After(time.Now().Add(time.Minute)) {
		t.Errorf("head: LastModified %v", info.LastModified)
	}
	for k, v := range meta {
		if got := info.Metadata[strings.ToLower(k)]; got != v {
			t.Errorf("metadata %q = %q, want %q (all: %v)", k, got, v, info.Metadata)
		}
	}
	got, gout := mustGet(t, b, &GetInput{Key: key, Length: -1})
	if !bytes.Equal(got, data) {
		t.Errorf("get: %d bytes, want %d, equal %v", len(got), len(data), bytes.Equal(got, data))
	}
	if gout.Info.Size != int64(len(data)) || gout.ContentLength != int64(len(data)) || gout.Info.ETag != out.ETag {
		t.Errorf("get info: %+v, content length %d", gout.Info, gout.ContentLength)
	}
	if gout.Info.Metadata["mtime"] != "1700000000" {
		t.Errorf("get metadata: %v", gout.Info.Metadata)
	}
	// Overwrite, then delete twice.
	mustPut(t, b, key, data[:10], nil)
	if got, _ := mustGet(t, b, &GetInput{Key: key, Length: -1}); !bytes.Equal(got, data[:10]) {
		t.Errorf("after overwrite: %q", got)
	}
	for i := 0; i < 2; i++ {
		if err := b.Delete(ctx, key); err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
	}
	if _, err := b.Head(ctx, &HeadInput{Key: key}); !errors.Is(err, ErrNotFound) {
		t.Errorf("head after delete: %v", err)
	}
}

func contractEmptyObject(t *testing.T, b contractBucket) {
	ctx := testCtx(t)
	mustPut(t, b, "empty", nil, nil)
	info, err := b.Head(ctx, &HeadInput{Key: "empty"})
	if err != nil || info.Size != 0 {
		t.Fatalf("head: %+v %v", info, err)
	}
	for _, in := range []GetInput{{Length: -1}, {Length: 4096}, {Offset: 0, Length: 0}, {Offset: 10, Length: -1}} {
		in.Key = "empty"
		got, out := mustGet(t, b, &in)
		if len(got) != 0 || out.Info.Size != 0 {
			t.Errorf("get %+v: %d bytes, info %+v", in, len(got), out.Info)
		}
	}
}

func contractRanges(t *testing.T, b contractBucket) {
	data := randBytes(100_000, 2)
	size := int64(len(data))
	mustPut(t, b, "r", data, nil)
	for _, tc := range []struct{ off, n int64 }{
		{0, 1}, {1, -1}, {100, 1000}, {size - 1, 1}, {size - 10, 100}, {size - 1, -1},
		{size, 10}, {size + 5, -1}, {0, size}, {0, -1}, {5000, 0},
	} {
		got, out := mustGet(t, b, &GetInput{Key: "r", Offset: tc.off, Length: tc.n})
		lo, hi := min(tc.off, size), size
		if tc.n >= 0 {
			hi = min(tc.off+tc.n, size)
		}
		if !bytes.Equal(got, data[lo:hi]) {
			t.Errorf("range %d+%d: %d bytes, want %d", tc.off, tc.n, len(got), hi-lo)
		}
		if out.Info.Size != size {
			t.Errorf("range %d+%d: Info.Size %d, want %d", tc.off, tc.n, out.Info.Size, size)
		}
		if len(got) > 0 && out.ContentLength != int64(len(got)) {
			t.Errorf("range %d+%d: ContentLength %d for %d bytes", tc.off, tc.n, out.ContentLength, len(got))
		}
	}
}

func contractIfMatch(t *testing.T, b contractBucket) {
	ctx := testCtx(t)
	put := mustPut(t, b, "m", []byte("hello"), nil)
	if got, _ := mustGet(t, b, &GetInput{Key: "m", Offset: 1, Length: 3, IfMatch: put.ETag}); string(got) != "ell" {
		t.Errorf("if-match get: %q", got)
	}
	_, err := b.Get(ctx, &GetInput{Key: "m", Length: -1, IfMatch: "0123456789abcdef0123456789abcdef"})
	if !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("stale if-match: %v", err)
	}
	_, err = b.Copy(ctx, &CopyInput{SrcKey: "m", DstKey: "m2", SrcIfMatch: "0123456789abcdef0123456789abcdef"})
	if !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("stale copy-source-if-match: %v", err)
	}
}

func contractNotFound(t *testing.T, b contractBucket) {
	ctx := testCtx(t)
	if _, err := b.Head(ctx, &HeadInput{Key: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("head: %v", err)
	}
	_, err := b.Get(ctx, &GetInput{Key: "nope/x", Length: -1})
	var e *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.StatusCode != 404 || e.Code != "NoSuchKey" {
		t.Errorf("get: %v", err)
	}
	if _, err := b.Get(ctx, &GetInput{Key: "nope", Offset: 10, Length: 10}); !errors.Is(err, ErrNotFound) {
		t.Errorf("ranged get: %v", err)
	}
	if _, err := b.Copy(ctx, &CopyInput{SrcKey: "nope", DstKey: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("copy: %v", err)
	}
	if err := b.Delete(ctx, "nope"); err != nil {
		t.Errorf("delete: %v", err)
	}
	if _, err := b.ListParts(ctx, "nope", "no-such-upload"); !errors.Is(err, ErrNotFound) {
		t.Errorf("list parts: %v", err)
	}
	if err := b.AbortMultipart(ctx, "nope", "no-such-upload"); err != nil {
		t.Errorf("abort: %v", err)
	}
}

// uploadParts uploads data in parts of partSize, in parallel, and returns
// them in order.
func uploadParts(ctx context.Context, b contractBucket, key, id string, data []byte, partSize int) ([]Part, error) {
	n := (len(data) + partSize - 1) / partSize
	parts := make([]Part, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := 0; i < n; i++ {
		g.Go(func() error {
			chunk := data[i*partSize : min((i+1)*partSize, len(data))]
			p, err := b.UploadPart(gctx, &UploadPartInput{Key: key, UploadID: id, PartNumber: i + 1,
				Body: bytes.NewReader(chunk), Size: int64(len(chunk))})
			if err != nil {
				return err
			}
			if p.ETag != md5hexOf(chunk) {
				return errors.New("part ETag is not its MD5")
			}
			parts[i] = *p
			return nil
		})
	}
	return parts, g.Wait()
}

func noUploadsLeft(t *testing.T, b contractBucket) {
	t.Helper()
	ups, err := b.ListMultipartUploads(testCtx(t), "")
	if err != nil || len(ups) != 0 {
		t.Errorf("uploads left: %v %v", ups, err)
	}
}

func contractMultipartRanges(t *testing.T, b contractBucket) {
	ctx := testCtx(t)
	const mib = 1 << 20
	data := randBytes(11*mib+123, 3)
	key := "big/multi part+.bin"
	id, err := b.InitiateMultipart(ctx, &InitiateInput{Key: key, ContentType: "application/x-mp", Metadata: map[string]string{"mtime": "42"}})
	if err != nil {
		t.Fatal(err)
	}
	parts, err := uploadParts(ctx, b, key, id, data, 5*mib)
	if err != nil {
		t.Fatal(err)
	}
	ups, err := b.ListMultipartUploads(ctx, "big/")
	if err != nil || len(ups) != 1 || ups[0].Key != key || ups[0].UploadID != id {
		t.Errorf("list uploads: %+v %v", ups, err)
	}
	listed, err := b.ListParts(ctx, key, id)
	if err != nil || len(listed) != 3 {
		t.Fatalf("list parts: %+v %v", listed, err)
	}
	for i, p := range listed {
		if p.PartNumber != i+1 || p.ETag != parts[i].ETag || p.Size != int64(len(data[i*5*mib:min((i+1)*5*mib, len(data))])) {
			t.Errorf("listed part %d: %+v", i, p)
		}
	}
	out, err := b.CompleteMultipart(ctx, &CompleteInput{Key: key, UploadID: id, Parts: parts})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.ETag, "-3") {
		t.Errorf("complete ETag %q", out.ETag)
	}
	noUploadsLeft(t, b)
	info, err := b.Head(ctx, &HeadInput{Key: key})
	if err != nil || info.Size != int64(len(data)) || info.Metadata["mtime"] != "42" || info.ContentType != "application/x-mp" {
		t.Fatalf("head: %+v %v", info, err)
	}
	for _, r := range [][2]int64{{5*mib - 10, 20}, {10*mib - 1, 2}, {5*mib - 1, 5*mib + 2}, {0, 5 * mib}, {10 * mib, -1}, {3, 11 * mib}} {
		got, out := mustGet(t, b, &GetInput{Key: key, Offset: r[0], Length: r[1]})
		hi := int64(len(data))
		if r[1] >= 0 {
			hi = min(r[0]+r[1], hi)
		}
		if !bytes.Equal(got, data[r[0]:hi]) || out.Info.Size != int64(len(data)) {
			t.Errorf("range %v: %d bytes, equal %v, size %d", r, len(got), bytes.Equal(got, data[r[0]:hi]), out.Info.Size)
		}
	}
}

func contractMultipartParallel(t *testing.T, b contractBucket, size int) {
	ctx := testCtx(t)
	const mib = 1 << 20
	data := randBytes(size, 4)
	id, err := b.InitiateMultipart(ctx, &InitiateInput{Key: "64"})
	if err != nil {
		t.Fatal(err)
	}
	parts, err := uploadParts(ctx, b, "64", id, data, 8*mib)
	if err != nil {
		_ = b.AbortMultipart(ctx, "64", id)
		t.Fatal(err)
	}
	// Complete takes the parts in any order.
	parts[0], parts[len(parts)-1] = parts[len(parts)-1], parts[0]
	if _, err := b.CompleteMultipart(ctx, &CompleteInput{Key: "64", UploadID: id, Parts: parts}); err != nil {
		t.Fatal(err)
	}
	out, err := b.Get(ctx, &GetInput{Key: "64", Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	h := md5.New()
	n, err := io.Copy(h, out.Body)
	if err != nil || n != int64(len(data)) || hex.EncodeToString(h.Sum(nil)) != md5hexOf(data) {
		t.Errorf("read back %d bytes, err %v, md5 equal %v", n, err, hex.EncodeToString(h.Sum(nil)) == md5hexOf(data))
	}
	noUploadsLeft(t, b)
}

func contractUploadPartCopy(t *testing.T, b contractBucket) {
	ctx := testCtx(t)
	const mib = 1 << 20
	src := randBytes(12*mib, 5)
	put := mustPut(t, b, "src obj+%", src, nil)
	tail := randBytes(1000, 6)
	id, err := b.InitiateMultipart(ctx, &InitiateInput{Key: "dst"})
	if err != nil {
		t.Fatal(err)
	}
	p1, err := b.UploadPartCopy(ctx, &UploadPartCopyInput{Key: "dst", UploadID: id, PartNumber: 1, SrcKey: "src obj+%",
		SrcIfMatch: put.ETag, Offset: 0, Length: 6 * mib})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := b.UploadPartCopy(ctx, &UploadPartCopyInput{Key: "dst", UploadID: id, PartNumber: 2, SrcKey: "src obj+%",
		Offset: 6 * mib, Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Size != 6*mib || p1.ETag != md5hexOf(src[:6*mib]) {
		t.Errorf("copied parts: %+v %+v", p1, p2)
	}
	p3, err := b.UploadPart(ctx, &UploadPartInput{Key: "dst", UploadID: id, PartNumber: 3, Body: bytes.NewReader(tail), Size: int64(len(tail))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.UploadPartCopy(ctx, &UploadPartCopyInput{Key: "dst", UploadID: id, PartNumber: 4, SrcKey: "src obj+%",
		SrcIfMatch: "0123456789abcdef0123456789abcdef", Offset: 0, Length: mib})
	if !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("part copy with stale source ETag: %v", err)
	}
	if _, err := b.CompleteMultipart(ctx, &CompleteInput{Key: "dst", UploadID: id, Parts: []Part{*p1, *p2, *p3}}); err != nil {
		t.Fatal(err)
	}
	got, _ := mustGet(t, b, &GetInput{Key: "dst", Length: -1})
	if !bytes.Equal(got, append(append([]byte{}, src...), tail...)) {
		t.Errorf("assembled object differs (%d bytes)", len(got))
	}
	noUploadsLeft(t, b)
}

func contractAbort(t *testing.T, b contractBucket) {
	ctx := testCtx(t)
	var ids []string
	for _, k := range []string{"a/1", "a/2", "b/ü +%#?"} {
		id, err := b.InitiateMultipart(ctx, &InitiateInput{Key: k})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.UploadPart(ctx, &UploadPartInput{Key: k, UploadID: id, PartNumber: 1, Body: strings.NewReader("x"), Size: 1}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if ups, err := b.ListMultipartUploads(ctx, "a/"); err != nil || len(ups) != 2 {
		t.Errorf("uploads under a/: %+v %v", ups, err)
	}
	ups, err := b.ListMultipartUploads(ctx, "")
	if err != nil || len(ups) != 3 || ups[2].Key != "b/ü +%#?" {
		t.Errorf("all uploads: %+v %v", ups, err)
	}
	for i, k := range []string{"a/1", "a/2", "b/ü +%#?"} {
		if err := b.AbortMultipart(ctx, k, ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.ListParts(ctx, "a/1", ids[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("list parts of aborted upload: %v", err)
	}
	noUploadsLeft(t, b)
}

func contractCopy(t *testing.T, b contractBucket) {
	ctx := testCtx(t)
	data := randBytes(3000, 7)
	src := "copy/src ü+%#?.txt"
	put, err := b.Put(ctx, &PutInput{Key: src, Body: bytes.NewReader(data), Size: int64(len(data)),
		ContentType: "text/plain", Metadata: map[string]string{"mode": "33188", "mtime": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.Copy(ctx, &CopyInput{SrcKey: src, DstKey: "copy/kept", SrcIfMatch: put.ETag})
	if err != nil {
		t.Fatal(err)
	}
	if out.ETag != put.ETag {
		t.Errorf("copy ETag %q, want %q", out.ETag, put.ETag)
	}
	info, err := b.Head(ctx, &HeadInput{Key: "copy/kept"})
	if err != nil || info.Metadata["mode"] != "33188" || info.Metadata["mtime"] != "1" || info.ContentType != "text/plain" {
		t.Errorf("kept: %+v %v", info, err)
	}
	if _, err := b.Copy(ctx, &CopyInput{SrcKey: src, DstKey: "copy/replaced", ReplaceMetadata: true,
		ContentType: "application/x-new", Metadata: map[string]string{"mtime": "2"}}); err != nil {
		t.Fatal(err)
	}
	info, err = b.Head(ctx, &HeadInput{Key: "copy/replaced"})
	if err != nil || info.Metadata["mtime"] != "2" || info.Metadata["mode"] != "" || info.ContentType != "application/x-new" {
		t.Errorf("replaced: %+v %v", info, err)
	}
	// Replacing an object's own metadata in place.
	if _, err := b.Copy(ctx, &CopyInput{SrcKey: src, DstKey: src, ReplaceMetadata: true,
		Metadata: map[string]string{"mtime": "3"}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"copy/kept", "copy/replaced", src} {
		if got, _ := mustGet(t, b, &GetInput{Key: k, Length: -1}); !bytes.Equal(got, data) {
			t.Errorf("%q: content differs", k)
		}
	}
}

func contractCancelled(t *testing.T, b contractBucket) {
	mustPut(t, b, "c", []byte("x"), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Head(ctx, &HeadInput{Key: "c"}); !errors.Is(err, context.Canceled) {
		t.Errorf("head with cancelled context: %v", err)
	}
	if _, err := b.Get(ctx, &GetInput{Key: "c", Length: -1}); !errors.Is(err, context.Canceled) {
		t.Errorf("get with cancelled context: %v", err)
	}
}

// TestContractCOSFake runs the suite with the cos flavour against the
// in-process COS fake, which verifies every request's signature.
func TestContractCOSFake(t *testing.T) {
	runContract(t, contractOpts{bigMultipart: 24 << 20}, func(t *testing.T) contractBucket { return newCOSFake(t).client(t) })
}
