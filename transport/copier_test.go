package transport

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func newTestCopier(api multipartAPI, opt CopierOptions) *Copier {
	c := NewCopier(api, opt)
	c.backoff = func(int) time.Duration { return time.Millisecond }
	return c
}

func TestCopierSmall(t *testing.T) {
	ctx := context.Background()
	f := newFakeBucket()
	data := testBytes(2*mib, 1)
	f.putObject("src", data, map[string]string{"mode": "33188"}, "text/plain")
	c := newTestCopier(f, CopierOptions{CopySliceSize: 2 * mib, CopyChunkSize: mib})

	// Kept metadata, size from HEAD.
	if _, err := c.Copy(ctx, &CopyObjectInput{SrcKey: "src", DstKey: "a", SrcSize: -1}); err != nil {
		t.Fatal(err)
	}
	o := f.object("a")
	if !bytes.Equal(o.data, data) || o.meta["mode"] != "33188" || o.ctype != "text/plain" {
		t.Errorf("copy differs: %+v %q", o.meta, o.ctype)
	}
	if f.nCalls("Copy") != 1 || f.nCalls("Head") != 1 || f.nCalls("Initiate") != 0 {
		t.Errorf("calls %v", f.calls)
	}
	// Replaced metadata, size known: no HEAD.
	if _, err := c.Copy(ctx, &CopyObjectInput{SrcKey: "src", DstKey: "b", SrcSize: int64(len(data)),
		ReplaceMetadata: true, Metadata: map[string]string{"mode": "33261"}, ContentType: "x/y"}); err != nil {
		t.Fatal(err)
	}
	if o := f.object("b"); o.meta["mode"] != "33261" || o.ctype != "x/y" || f.nCalls("Head") != 1 {
		t.Errorf("replace: %+v %q, calls %v", o.meta, o.ctype, f.calls)
	}
	// A stale ETag is refused.
	_, err := c.Copy(ctx, &CopyObjectInput{SrcKey: "src", DstKey: "c", SrcSize: int64(len(data)), SrcETag: "stale"})
	if !errors.Is(err, ErrPreconditionFailed) || f.object("c") != nil {
		t.Errorf("stale ETag: %v", err)
	}
	if _, err := c.Copy(ctx, &CopyObjectInput{SrcKey: "missing", DstKey: "d", SrcSize: -1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing source: %v", err)
	}
}

func TestCopierMultipart(t *testing.T) {
	ctx := context.Background()
	f := newFakeBucket()
	f.delay = 5 * time.Millisecond
	f.gate = 3 // the first parts wait for each other: the limit is reached for sure
	data := testBytes(10*mib+5, 2)
	f.putObject("src", data, map[string]string{"mtime": "1700000000"}, "video/mp4")
	c := newTestCopier(f, CopierOptions{CopySliceSize: 2 * mib, CopyChunkSize: mib, CopyChunkParallelLimit: 3})

	if _, err := c.Copy(ctx, &CopyObjectInput{SrcKey: "src", DstKey: "a", SrcSize: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	o := f.object("a")
	if !bytes.Equal(o.data, data) || o.meta["mtime"] != "1700000000" || o.ctype != "video/mp4" {
		t.Errorf("copy differs: %+v %q", o.meta, o.ctype)
	}
	if err := f.gateFailure(); err != nil {
		t.Errorf("the copier did not run 3 parts at once: %v", err)
	}
	if f.nCalls("UploadPartCopy") != 11 || f.nCalls("Copy") != 0 || f.nCalls("Head") != 1 || f.maxFlight != 3 {
		t.Errorf("calls %v, %d in flight at most, want exactly 3", f.calls, f.maxFlight)
	}
	// Replaced metadata with a known ETag needs no HEAD.
	etag := f.object("src").etag
	if _, err := c.Copy(ctx, &CopyObjectInput{SrcKey: "src", DstKey: "b", SrcSize: int64(len(data)), SrcETag: etag,
		ReplaceMetadata: true, Metadata: map[string]string{"mtime": "5"}, ContentType: "a/b"}); err != nil {
		t.Fatal(err)
	}
	if o := f.object("b"); !bytes.Equal(o.data, data) || o.meta["mtime"] != "5" || o.ctype != "a/b" || f.nCalls("Head") != 1 {
		t.Errorf("replace: %+v %q, calls %v", o.meta, o.ctype, f.calls)
	}
	if f.nUploads() != 0 {
		t.Error("uploads left")
	}
}

func TestCopierSourceChangesMidCopy(t *testing.T) {
	ctx := context.Background()
	f := newFakeBucket()
	data := testBytes(8*mib, 3)
	f.putObject("src", data, nil, "")
	f.copyHook = func(in *UploadPartCopyInput) error {
		if in.PartNumber == 4 { // someone rewrites the source
			f.putObject("src", testBytes(8*mib, 4), nil, "")
		}
		return nil
	}
	c := newTestCopier(f, CopierOptions{CopySliceSize: mib, CopyChunkSize: mib, CopyChunkParallelLimit: 1})
	_, err := c.Copy(ctx, &CopyObjectInput{SrcKey: "src", DstKey: "dst", SrcSize: -1})
	if !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("err %v", err)
	}
	assertAborted(t, f, "dst")
}

func TestCopierPartFailureAborts(t *testing.T) {
	f := newFakeBucket()
	f.putObject("src", testBytes(6*mib, 3), nil, "")
	f.failPart = func(num, attempt int) error {
		if num == 5 {
			return &Error{Op: "UploadPartCopy", StatusCode: 500, Kind: ErrServer}
		}
		return nil
	}
	c := newTestCopier(f, CopierOptions{CopySliceSize: mib, CopyChunkSize: mib, ChunkRetryTimes: 1})
	_, err := c.Copy(context.Background(), &CopyObjectInput{SrcKey: "src", DstKey: "dst", SrcSize: -1})
	if !errors.Is(err, ErrServer) || f.attempts[5] != 2 {
		t.Errorf("err %v, attempts %v", err, f.attempts)
	}
	assertAborted(t, f, "dst")
}

func TestCopierOptions(t *testing.T) {
	o := NewCopier(nil, CopierOptions{}).Options()
	if o.CopySliceSize != DefaultCopySliceSize || o.CopyChunkSize != DefaultCopyChunkSize ||
		o.CopyChunkParallelLimit != DefaultCopyChunkParallelLimit || o.ChunkRetryTimes != DefaultChunkRetryTimes {
		t.Errorf("defaults %+v", o)
	}
	o = NewCopier(nil, CopierOptions{CopySliceSize: 1 << 40, CopyChunkSize: 1, MinPartSize: 5 * mib}).Options()
	if o.CopySliceSize != MaxPartSize || o.CopyChunkSize != 5*mib {
		t.Errorf("clamped %+v", o)
	}
}
