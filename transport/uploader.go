package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

const (
	mib = 1 << 20
	// MaxParts is the most parts one multipart upload may have.
	MaxParts = 10000
	// MaxPartSize is the largest part COS and S3 accept.
	MaxPartSize = 5 << 30
	// abortTimeout bounds the AbortMultipart sent after a failure, which runs
	// on a fresh context so that it still goes out after a cancellation.
	abortTimeout = 30 * time.Second
)

// Uploader defaults. COS's SDK uses 1 MiB slices and parts for browsers; a
// filesystem writes bigger files over faster links and must also work with
// S3 stores, whose smallest part (but the last) is 5 MiB:
//   - ChunkSize 8 MiB: above S3's minimum, the part size of the AWS CLI and
//     mountpoint-s3; 10,000 parts reach 78 GiB before the part size grows.
//     It is also the unit the write-back cache uploads in the background.
//   - SliceSize 16 MiB: up to two parts there is little parallelism to win,
//     and one PUT saves the Initiate and Complete round trips.
//   - ChunkParallelLimit 4: four parts in flight keep a loopback or LAN link
//     busy (see docs/benchmarks.md) with at most 32 MiB of buffers per file.
//   - ChunkRetryTimes 2: COS SDK's default, on top of the client's retries.
//   - MinPartSize 1 MiB: COS's minimum; set 5 MiB for S3 stores.
const (
	DefaultSliceSize          = 16 * mib
	DefaultChunkSize          = 8 * mib
	DefaultChunkParallelLimit = 4
	DefaultChunkRetryTimes    = 2
	DefaultMinPartSize        = 1 * mib
)

// multipartAPI is what Uploader and Copier need from a bucket.
type multipartAPI interface {
	Put(ctx context.Context, in *PutInput) (*PutOutput, error)
	InitiateMultipart(ctx context.Context, in *InitiateInput) (string, error)
	UploadPart(ctx context.Context, in *UploadPartInput) (*Part, error)
	UploadPartCopy(ctx context.Context, in *UploadPartCopyInput) (*Part, error)
	CompleteMultipart(ctx context.Context, in *CompleteInput) (*PutOutput, error)
	AbortMultipart(ctx context.Context, key, uploadID string) error
	ListParts(ctx context.Context, key, uploadID string) ([]Part, error)
	Head(ctx context.Context, in *HeadInput) (*ObjectInfo, error)
	Copy(ctx context.Context, in *CopyInput) (*CopyOutput, error)
}

var _ multipartAPI = (*Client)(nil)

// UploaderOptions are the COS SDK's upload knobs. Zero fields take the
// defaults above.
type UploaderOptions struct {
	// SliceSize: objects of at most this many bytes go up as one PUT.
	SliceSize int64
	// ChunkSize is the part size, grown when an object would need more than
	// MaxParts parts. Raised to MinPartSize, lowered to MaxPartSize.
	ChunkSize int64
	// ChunkParallelLimit is how many parts of one upload are in flight.
	ChunkParallelLimit int
	// ChunkRetryTimes is how many times a failed part is sent again (on top
	// of the client's own retries); negative means never.
	ChunkRetryTimes int
	// MinPartSize is the smallest part allowed but the last, checked before
	// Complete.
	MinPartSize int64
}

func (o UploaderOptions) withDefaults() UploaderOptions {
	if o.SliceSize <= 0 {
		o.SliceSize = DefaultSliceSize
	}
	if o.MinPartSize <= 0 {
		o.MinPartSize = DefaultMinPartSize
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	o.ChunkSize = min(max(o.ChunkSize, o.MinPartSize), MaxPartSize)
	if o.ChunkParallelLimit <= 0 {
		o.ChunkParallelLimit = DefaultChunkParallelLimit
	}
	if o.ChunkRetryTimes == 0 {
		o.ChunkRetryTimes = DefaultChunkRetryTimes
	} else if o.ChunkRetryTimes < 0 {
		o.ChunkRetryTimes = 0
	}
	return o
}

// PartSize is the part size for an object of size bytes: chunk, or the
// smallest whole number of MiB that fits size in MaxParts parts when that is
// bigger. It fails with ErrTooLarge when even MaxPartSize parts are too few.
func PartSize(size, chunk int64) (int64, error) {
	ps := chunk
	if need := ceilDiv(ceilDiv(size, MaxParts), mib) * mib; need > ps {
		ps = need
	}
	if ps > MaxPartSize {
		return 0, fmt.Errorf("transport: %d bytes do not fit in %d parts of at most 5 GiB: %w", size, MaxParts, ErrTooLarge)
	}
	return ps, nil
}

// GrowingPartSize is the size of part number num (from 1) of a stream of
// unknown length: chunk for parts 1..1000, doubling every 1,000 parts after
// (2×chunk for 1001..2000, ..., 512×chunk for 9001..10000), at most
// MaxPartSize. At the default 8 MiB this holds 7.8 TiB in 10,000 parts.
func GrowingPartSize(chunk int64, num int) int64 {
	shift := (num - 1) / 1000
	if shift > 20 || chunk<<shift > MaxPartSize {
		return MaxPartSize
	}
	return chunk << shift
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// Uploader uploads objects, multipart above SliceSize. It is safe for
// concurrent use; its buffer pool is shared by its uploads.
type Uploader struct {
	api  multipartAPI
	opt  UploaderOptions
	pool *bufPool
	// backoff is the pause before retry attempt n (1..); tests shorten it.
	backoff func(n int) time.Duration
}

// NewUploader builds an Uploader over api (a *Client).
func NewUploader(api multipartAPI, opt UploaderOptions) *Uploader {
	return &Uploader{api: api, opt: opt.withDefaults(), pool: newBufPool(), backoff: defaultBackoff}
}

// Options returns the options in effect, defaults filled in.
func (u *Uploader) Options() UploaderOptions { return u.opt }

func defaultBackoff(n int) time.Duration {
	d := 200 * time.Millisecond << min(n-1, 5)
	return d/2 + rand.N(d/2+1)
}

// UploadInput is one object to upload. Set exactly one of Body and BodyAt.
type UploadInput struct {
	Key string
	// Body is read once, sequentially, into pooled part buffers.
	Body io.Reader
	// BodyAt is read in place, parts in parallel, with no buffering; Size
	// must then be known.
	BodyAt io.ReaderAt
	// Size is the object's length, -1 when unknown (Body only). A Body that
	// ends early or goes on past Size fails the upload.
	Size        int64
	ContentType string
	Metadata    map[string]string
}

// UploadOutput is the result of an upload.
type UploadOutput struct {
	ETag     string
	Size     int64
	UploadID string // "" for a single PUT
	Parts    int    // 0 for a single PUT
}

// Upload stores in.Key; nothing is visible under the key unless the whole
// upload succeeds, and a failed multipart upload is aborted.
func (u *Uploader) Upload(ctx context.Context, in *UploadInput) (*UploadOutput, error) {
	switch {
	case (in.Body == nil) == (in.BodyAt == nil):
		return nil, fmt.Errorf("transport: upload %q: set exactly one of Body and BodyAt", in.Key)
	case in.BodyAt != nil && in.Size < 0:
		return nil, fmt.Errorf("transport: upload %q: BodyAt needs a known Size", in.Key)
	case in.BodyAt != nil && in.Size <= u.opt.SliceSize:
		return u.put(ctx, in, &partBody{src: in.BodyAt, size: in.Size})
	case in.BodyAt != nil:
		return u.uploadAt(ctx, in)
	}
	if in.Size > u.opt.SliceSize {
		return u.uploadSeq(ctx, in, in.Body)
	}
	// Size unknown or at most SliceSize: read one byte more than a PUT may
	// hold, to choose PUT or multipart and to catch a body longer than Size.
	headLen := u.opt.SliceSize + 1
	if in.Size >= 0 {
		headLen = in.Size + 1
	}
	headBuf := u.pool.get(int(headLen))
	n, err := io.ReadFull(in.Body, (*headBuf)[:headLen])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		u.pool.put(headBuf)
		return nil, fmt.Errorf("transport: upload %q: reading body: %w", in.Key, err)
	}
	if int64(n) < headLen { // the whole body is in
		defer u.pool.put(headBuf)
		if in.Size >= 0 && int64(n) != in.Size {
			return nil, u.sizeErr(in, int64(n))
		}
		return u.put(ctx, in, &partBody{src: bytes.NewReader((*headBuf)[:n]), size: int64(n)})
	}
	if in.Size >= 0 {
		u.pool.put(headBuf)
		return nil, fmt.Errorf("transport: upload %q: body longer than Size %d", in.Key, in.Size)
	}
	src := &headReader{head: (*headBuf)[:n], body: in.Body, release: func() { u.pool.put(headBuf) }}
	defer src.drop()
	return u.uploadSeq(ctx, in, src)
}

func (u *Uploader) sizeErr(in *UploadInput, got int64) error {
	return fmt.Errorf("transport: upload %q: body has %d bytes, Size says %d", in.Key, got, in.Size)
}

func (u *Uploader) put(ctx context.Context, in *UploadInput, body *partBody) (*UploadOutput, error) {
	out, err := u.api.Put(ctx, &PutInput{Key: in.Key, Body: body, Size: body.size,
		ContentType: in.ContentType, Metadata: in.Metadata})
	if err == nil || body.short {
		err = body.check()
	}
	if err != nil {
		return nil, err
	}
	return &UploadOutput{ETag: out.ETag, Size: body.size}, nil
}

// uploadAt sends the parts of in.BodyAt straight from it.
func (u *Uploader) uploadAt(ctx context.Context, in *UploadInput) (*UploadOutput, error) {
	ps, err := PartSize(in.Size, u.opt.ChunkSize)
	if err != nil {
		return nil, err
	}
	mw, err := u.Begin(ctx, in.Key, in.ContentType, in.Metadata)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, mw.cancel)
	defer stop()
	num := 1
	for off := int64(0); off < in.Size; off += ps {
		if err := mw.AddPart(ctx, num, in.BodyAt, off, min(ps, in.Size-off)); err != nil {
			return nil, mw.fail(ctx, err)
		}
		num++
	}
	return u.finish(ctx, mw, in.Size, num-1)
}

// uploadSeq reads src part by part into pooled buffers. A buffer is taken
// only once a slot is free, so at most ChunkParallelLimit are alive.
func (u *Uploader) uploadSeq(ctx context.Context, in *UploadInput, src io.Reader) (*UploadOutput, error) {
	ps := int64(0)
	if in.Size >= 0 {
		var err error
		if ps, err = PartSize(in.Size, u.opt.ChunkSize); err != nil {
			return nil, err
		}
	}
	mw, err := u.Begin(ctx, in.Key, in.ContentType, in.Metadata)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, mw.cancel)
	defer stop()
	var total int64
	num := 1
	for ; in.Size < 0 || total < in.Size; num++ {
		want := ps
		if in.Size < 0 {
			want = GrowingPartSize(u.opt.ChunkSize, num)
		}
		if num > MaxParts { // only with an unknown size: is there more?
			var one [1]byte
			if k, _ := io.ReadFull(src, one[:]); k == 0 {
				break
			}
			return nil, mw.fail(ctx, fmt.Errorf("transport: upload %q: more than %d parts: %w", in.Key, MaxParts, ErrTooLarge))
		}
		if err := mw.reserve(ctx); err != nil {
			return nil, mw.fail(ctx, err)
		}
		buf := u.pool.get(int(want))
		if in.Size >= 0 {
			want = min(want, in.Size-total)
		}
		n, err := io.ReadFull(src, (*buf)[:want])
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			mw.unreserve()
			u.pool.put(buf)
			return nil, mw.fail(ctx, fmt.Errorf("transport: upload %q: reading body: %w", in.Key, err))
		}
		if n == 0 {
			mw.unreserve()
			u.pool.put(buf)
			break
		}
		total += int64(n)
		release := func(error) { u.pool.put(buf) }
		if err := mw.launchData(num, bytes.NewReader((*buf)[:n]), 0, int64(n), release); err != nil {
			return nil, mw.fail(ctx, err)
		}
		if int64(n) < want {
			num++
			break
		}
	}
	if in.Size >= 0 {
		var one [1]byte
		if k, _ := io.ReadFull(src, one[:]); k > 0 {
			total++
		}
		if total > in.Size {
			return nil, mw.fail(ctx, fmt.Errorf("transport: upload %q: body longer than Size %d", in.Key, in.Size))
		}
		if total != in.Size {
			return nil, mw.fail(ctx, u.sizeErr(in, total))
		}
	}
	return u.finish(ctx, mw, total, num-1)
}

func (u *Uploader) finish(ctx context.Context, mw *MultipartWriter, size int64, parts int) (*UploadOutput, error) {
	mw.ExpectSize(size)
	out, err := mw.Complete(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return &UploadOutput{ETag: out.ETag, Size: size, UploadID: mw.uploadID, Parts: parts}, nil
}

// Begin starts a multipart upload of key that parts are then added to, in
// the background, while the data is still being produced. ctx bounds only
// the Initiate call. Call Complete or Abort on the writer exactly once.
func (u *Uploader) Begin(ctx context.Context, key, contentType string, meta map[string]string) (*MultipartWriter, error) {
	id, err := u.api.InitiateMultipart(ctx, &InitiateInput{Key: key, ContentType: contentType, Metadata: meta})
	if err != nil {
		return nil, err
	}
	return newMultipartWriter(ctx, u.api, key, id, u.writerConfig()), nil
}

func (u *Uploader) writerConfig() writerConfig {
	return writerConfig{limit: u.opt.ChunkParallelLimit, retries: u.opt.ChunkRetryTimes,
		minPart: u.opt.MinPartSize, backoff: u.backoff}
}

// Resume takes up a multipart upload that an earlier writer (of this
// process or of one that ended) left open: the parts the server holds count
// as uploaded, UnsentParts names the others, and parts may be added and
// replaced as on a writer from Begin. The writer keeps the upload open on
// failure (KeepOnFailure): an upload worth resuming holds parts that exist
// nowhere else. An upload the server no longer has is ErrNotFound.
func (u *Uploader) Resume(ctx context.Context, key, uploadID string) (*MultipartWriter, error) {
	parts, err := u.api.ListParts(ctx, key, uploadID)
	if err != nil {
		return nil, err
	}
	mw := newMultipartWriter(ctx, u.api, key, uploadID, u.writerConfig())
	mw.keep = true
	for _, p := range parts {
		done := make(chan struct{})
		close(done)
		mw.parts[p.PartNumber] = &partState{size: p.Size, part: p, ok: true, done: done}
	}
	return mw, nil
}

// permanentError is a part failure not worth retrying.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// retryable reports whether a part that failed with err may be sent again.
func retryable(err error) bool {
	var pe *permanentError
	switch {
	case errors.As(err, &pe), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrPreconditionFailed), errors.Is(err, ErrNotFound), errors.Is(err, ErrAccessDenied),
		errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrTooLarge), errors.Is(err, ErrBadConfig):
		return false
	}
	return true
}
