package transport

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"sort"
	"sync"
	"time"
)

// fakeBucket is an in-process multipartAPI for the Uploader's and Copier's
// unit tests: objects and multipart uploads in memory, with the checks a
// real store makes, call counters and fault injection.
type fakeBucket struct {
	mu        sync.Mutex
	objects   map[string]*fakeObject
	uploads   map[string]*fakeUpload // by upload id
	nextID    int
	minPart   int64                               // smallest part but the last (default 1 MiB)
	delay     time.Duration                       // per UploadPart / UploadPartCopy
	failPart  func(num, attempt int) error        // injected part failure, nil: none
	onPart    func(key string, num int)           // called as a part starts
	calls     map[string]int                      // by operation
	attempts  map[int]int                         // part number -> UploadPart(Copy) calls
	inflight  int                                 // part calls running now
	maxFlight int                                 // most part calls seen running at once
	aborted   []string                            // upload ids aborted
	putHook   func(in *PutInput) error            // nil: none
	copyHook  func(in *UploadPartCopyInput) error // nil: none
	abortErr  error                               // AbortMultipart fails with it
	// failComplete, when set, is asked first by CompleteMultipart: an
	// error fails the call.
	failComplete func() error

	// gate, when set, holds part calls as they start until that many are
	// running at once; then it opens for good. It makes a test's reaching
	// its parallelism limit certain, however the scheduler runs. A gate
	// that stays shut for gateWait opens anyway, with gateErr set.
	gate     int
	gateWait time.Duration // default 10 s
	gateOpen chan struct{}
	gateErr  error
}

type fakeObject struct {
	data  []byte
	etag  string
	meta  map[string]string
	ctype string
}

type fakeUpload struct {
	key   string
	meta  map[string]string
	ctype string
	parts map[int][]byte
}

func newFakeBucket() *fakeBucket {
	return &fakeBucket{objects: map[string]*fakeObject{}, uploads: map[string]*fakeUpload{},
		minPart: mib, calls: map[string]int{}, attempts: map[int]int{}}
}

var _ multipartAPI = (*fakeBucket)(nil)

func md5hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

func notFound(op, key string) error {
	return &Error{Op: op, Key: key, StatusCode: 404, Kind: ErrNotFound}
}

func (f *fakeBucket) count(op string) {
	f.mu.Lock()
	f.calls[op]++
	f.mu.Unlock()
}

func (f *fakeBucket) nCalls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeBucket) nUploads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.uploads)
}

func (f *fakeBucket) object(key string) *fakeObject {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[key]
}

func (f *fakeBucket) putObject(key string, data []byte, meta map[string]string, ctype string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[key] = &fakeObject{data: data, etag: md5hex(data), meta: meta, ctype: ctype}
}

func readBody(body io.ReadSeeker, size int64) ([]byte, error) {
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("fake: body has %d bytes, Content-Length %d", len(b), size)
	}
	return b, nil
}

func (f *fakeBucket) Put(ctx context.Context, in *PutInput) (*PutOutput, error) {
	f.count("Put")
	if f.putHook != nil {
		if err := f.putHook(in); err != nil {
			return nil, err
		}
	}
	b, err := readBody(in.Body, in.Size)
	if err != nil {
		return nil, err
	}
	f.putObject(in.Key, b, in.Metadata, in.ContentType)
	return &PutOutput{ETag: md5hex(b)}, nil
}

func (f *fakeBucket) InitiateMultipart(ctx context.Context, in *InitiateInput) (string, error) {
	f.count("Initiate")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := fmt.Sprintf("upload-%d", f.nextID)
	f.uploads[id] = &fakeUpload{key: in.Key, meta: in.Metadata, ctype: in.ContentType, parts: map[int][]byte{}}
	return id, nil
}

// partCall does the bookkeeping of one part call around do.
func (f *fakeBucket) partCall(ctx context.Context, key, id string, num int, do func() ([]byte, error)) (*Part, error) {
	f.mu.Lock()
	f.attempts[num]++
	attempt := f.attempts[num]
	f.inflight++
	f.maxFlight = max(f.maxFlight, f.inflight)
	fail, onPart := f.failPart, f.onPart
	open := f.gateLocked()
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inflight--; f.mu.Unlock() }()
	if err := f.waitGate(ctx, open); err != nil {
		return nil, err
	}
	if onPart != nil {
		onPart(key, num)
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(num, attempt); err != nil {
			return nil, err
		}
	}
	b, err := do()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	up := f.uploads[id]
	if up == nil || up.key != key {
		return nil, notFound("UploadPart", key)
	}
	up.parts[num] = b
	return &Part{PartNumber: num, ETag: md5hex(b), Size: int64(len(b))}, nil
}

// gateLocked, called with mu held as a part call starts, returns the
// channel the call waits on, nil if none; it opens the gate when this call
// makes enough.
func (f *fakeBucket) gateLocked() chan struct{} {
	if f.gate <= 0 {
		return nil
	}
	if f.gateOpen == nil {
		f.gateOpen = make(chan struct{})
	}
	select {
	case <-f.gateOpen:
		return nil
	default:
	}
	if f.inflight >= f.gate {
		close(f.gateOpen)
		return nil
	}
	return f.gateOpen
}

func (f *fakeBucket) waitGate(ctx context.Context, open chan struct{}) error {
	if open == nil {
		return nil
	}
	wait := f.gateWait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-open:
		return nil
	default:
	}
	f.gateErr = fmt.Errorf("fake: %d part calls never ran at once: at most %d did within %v", f.gate, f.maxFlight, wait)
	close(open)
	return nil
}

// gateFailure is gateErr, read under the lock.
func (f *fakeBucket) gateFailure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gateErr
}

func (f *fakeBucket) UploadPart(ctx context.Context, in *UploadPartInput) (*Part, error) {
	f.count("UploadPart")
	return f.partCall(ctx, in.Key, in.UploadID, in.PartNumber, func() ([]byte, error) {
		return readBody(in.Body, in.Size)
	})
}

func (f *fakeBucket) UploadPartCopy(ctx context.Context, in *UploadPartCopyInput) (*Part, error) {
	f.count("UploadPartCopy")
	return f.partCall(ctx, in.Key, in.UploadID, in.PartNumber, func() ([]byte, error) {
		if f.copyHook != nil {
			if err := f.copyHook(in); err != nil {
				return nil, err
			}
		}
		src := f.object(in.SrcKey)
		switch {
		case src == nil:
			return nil, notFound("UploadPartCopy", in.SrcKey)
		case in.SrcIfMatch != "" && in.SrcIfMatch != src.etag:
			return nil, &Error{Op: "UploadPartCopy", Key: in.SrcKey, StatusCode: 412, Kind: ErrPreconditionFailed}
		case in.Offset+in.Length > int64(len(src.data)):
			return nil, &Error{Op: "UploadPartCopy", Key: in.SrcKey, StatusCode: 416, Kind: ErrInvalidRequest}
		}
		return bytes.Clone(src.data[in.Offset : in.Offset+in.Length]), nil
	})
}

func (f *fakeBucket) CompleteMultipart(ctx context.Context, in *CompleteInput) (*PutOutput, error) {
	f.count("Complete")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failComplete != nil {
		if err := f.failComplete(); err != nil {
			return nil, err
		}
	}
	up := f.uploads[in.UploadID]
	if up == nil || up.key != in.Key {
		return nil, notFound("Complete", in.Key)
	}
	if !sort.SliceIsSorted(in.Parts, func(i, j int) bool { return in.Parts[i].PartNumber < in.Parts[j].PartNumber }) {
		return nil, &Error{Op: "Complete", Key: in.Key, StatusCode: 400, Code: "InvalidPartOrder", Kind: ErrInvalidRequest}
	}
	var data []byte
	for i, p := range in.Parts {
		b, ok := up.parts[p.PartNumber]
		if !ok || md5hex(b) != p.ETag {
			return nil, &Error{Op: "Complete", Key: in.Key, StatusCode: 400, Code: "InvalidPart", Kind: ErrInvalidRequest}
		}
		if i < len(in.Parts)-1 && int64(len(b)) < f.minPart {
			return nil, &Error{Op: "Complete", Key: in.Key, StatusCode: 400, Code: "EntityTooSmall", Kind: ErrInvalidRequest}
		}
		data = append(data, b...)
	}
	delete(f.uploads, in.UploadID)
	etag := fmt.Sprintf("%s-%d", md5hex(data), len(in.Parts))
	f.objects[in.Key] = &fakeObject{data: data, etag: etag, meta: up.meta, ctype: up.ctype}
	return &PutOutput{ETag: etag}, nil
}

func (f *fakeBucket) AbortMultipart(ctx context.Context, key, id string) error {
	f.count("Abort")
	if err := ctx.Err(); err != nil {
		return err // a real client could not send it either
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.abortErr != nil {
		return f.abortErr
	}
	if up := f.uploads[id]; up == nil || up.key != key {
		return notFound("Abort", key)
	}
	delete(f.uploads, id)
	f.aborted = append(f.aborted, id)
	return nil
}

func (f *fakeBucket) Head(ctx context.Context, in *HeadInput) (*ObjectInfo, error) {
	f.count("Head")
	o := f.object(in.Key)
	if o == nil {
		return nil, notFound("HEAD", in.Key)
	}
	return &ObjectInfo{Key: in.Key, Size: int64(len(o.data)), ETag: o.etag, ContentType: o.ctype,
		Metadata: maps.Clone(o.meta)}, nil
}

func (f *fakeBucket) Copy(ctx context.Context, in *CopyInput) (*CopyOutput, error) {
	f.count("Copy")
	src := f.object(in.SrcKey)
	switch {
	case src == nil:
		return nil, notFound("Copy", in.SrcKey)
	case in.SrcIfMatch != "" && in.SrcIfMatch != src.etag:
		return nil, &Error{Op: "Copy", Key: in.SrcKey, StatusCode: 412, Kind: ErrPreconditionFailed}
	}
	meta, ctype := src.meta, src.ctype
	if in.ReplaceMetadata {
		meta, ctype = in.Metadata, in.ContentType
	}
	f.putObject(in.DstKey, bytes.Clone(src.data), maps.Clone(meta), ctype)
	return &CopyOutput{ETag: md5hex(src.data)}, nil
}

func (f *fakeBucket) ListParts(ctx context.Context, key, id string) ([]Part, error) {
	f.count("ListParts")
	f.mu.Lock()
	defer f.mu.Unlock()
	up := f.uploads[id]
	if up == nil || up.key != key {
		return nil, notFound("ListParts", key)
	}
	var parts []Part
	for num, b := range up.parts {
		parts = append(parts, Part{PartNumber: num, ETag: md5hex(b), Size: int64(len(b))})
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].PartNumber < parts[j].PartNumber })
	return parts, nil
}
