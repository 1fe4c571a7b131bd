package transport

import (
	"context"
	"fmt"
	"time"
)

// Copier defaults. COS's SDK copies in one request up to 10 MiB and in
// 10 MiB parts above, 20 at a time. A filesystem copies on rename, where one
// request is cheapest for small files and server-side parallelism pays for
// big ones:
//   - CopySliceSize 64 MiB: a single Copy of up to 64 MiB answers quickly on
//     any store, well inside request timeouts (one Copy may take 5 GiB).
//   - CopyChunkSize 64 MiB: ten times fewer requests than the SDK's, still
//     above both stores' minimum part size; grown to stay within MaxParts.
//   - CopyChunkParallelLimit 8: part copies cost the client no bandwidth,
//     only the server's; 8 in flight copy a 1 GiB file in two rounds.
const (
	DefaultCopySliceSize          = 64 * mib
	DefaultCopyChunkSize          = 64 * mib
	DefaultCopyChunkParallelLimit = 8
)

// CopierOptions are the COS SDK's copy knobs. Zero fields take the defaults
// above.
type CopierOptions struct {
	// CopySliceSize: sources of at most this many bytes are copied with one
	// Copy request; bigger ones with a multipart upload of part copies.
	CopySliceSize int64
	// CopyChunkSize is the part size, grown when the source would need more
	// than MaxParts parts. Raised to MinPartSize, lowered to MaxPartSize.
	CopyChunkSize int64
	// CopyChunkParallelLimit is how many part copies are in flight.
	CopyChunkParallelLimit int
	// ChunkRetryTimes is how many times a failed part copy is sent again;
	// 0 means DefaultChunkRetryTimes, negative never.
	ChunkRetryTimes int
	// MinPartSize is the smallest part but the last (DefaultMinPartSize).
	MinPartSize int64
}

func (o CopierOptions) withDefaults() CopierOptions {
	if o.CopySliceSize <= 0 {
		o.CopySliceSize = DefaultCopySliceSize
	}
	o.CopySliceSize = min(o.CopySliceSize, MaxPartSize) // one Copy takes 5 GiB at most
	if o.MinPartSize <= 0 {
		o.MinPartSize = DefaultMinPartSize
	}
	if o.CopyChunkSize <= 0 {
		o.CopyChunkSize = DefaultCopyChunkSize
	}
	o.CopyChunkSize = min(max(o.CopyChunkSize, o.MinPartSize), MaxPartSize)
	if o.CopyChunkParallelLimit <= 0 {
		o.CopyChunkParallelLimit = DefaultCopyChunkParallelLimit
	}
	if o.ChunkRetryTimes == 0 {
		o.ChunkRetryTimes = DefaultChunkRetryTimes
	} else if o.ChunkRetryTimes < 0 {
		o.ChunkRetryTimes = 0
	}
	return o
}

// Copier copies objects inside the bucket, server-side. Safe for concurrent
// use.
type Copier struct {
	api     multipartAPI
	opt     CopierOptions
	backoff func(n int) time.Duration
}

// NewCopier builds a Copier over api (a *Client).
func NewCopier(api multipartAPI, opt CopierOptions) *Copier {
	return &Copier{api: api, opt: opt.withDefaults(), backoff: defaultBackoff}
}

// Options returns the options in effect, defaults filled in.
func (c *Copier) Options() CopierOptions { return c.opt }

// CopyObjectInput is one object copy.
type CopyObjectInput struct {
	SrcKey, DstKey string
	// SrcSize is the source's size, -1 to have Copy HEAD it.
	SrcSize int64
	// SrcETag, when set, makes the copy fail with ErrPreconditionFailed
	// unless the source still has this ETag. A multipart copy guards every
	// part with the source's ETag in any case, so a source that changes
	// mid-copy fails the copy instead of mixing two versions.
	SrcETag string
	// ReplaceMetadata gives the copy Metadata and ContentType; otherwise it
	// keeps the source's.
	ReplaceMetadata bool
	Metadata        map[string]string
	ContentType     string
}

// Copy copies in.SrcKey to in.DstKey: one Copy request up to CopySliceSize,
// a multipart upload of part copies above, aborted on any failure.
func (c *Copier) Copy(ctx context.Context, in *CopyObjectInput) (*CopyOutput, error) {
	size, etag := in.SrcSize, in.SrcETag
	var info *ObjectInfo
	// A multipart copy needs the source's ETag to guard its parts, and its
	// metadata unless replaced: Initiate sets the metadata, parts carry none.
	big := size < 0 || size > c.opt.CopySliceSize
	if size < 0 || (big && (etag == "" || !in.ReplaceMetadata)) {
		var err error
		if info, err = c.api.Head(ctx, &HeadInput{Key: in.SrcKey}); err != nil {
			return nil, err
		}
		if etag != "" && info.ETag != etag {
			return nil, &Error{Op: "Copy", Key: in.SrcKey, Kind: ErrPreconditionFailed,
				Message: fmt.Sprintf("source ETag is %q, not %q", info.ETag, etag)}
		}
		size, etag = info.Size, info.ETag
	}
	if size <= c.opt.CopySliceSize {
		return c.api.Copy(ctx, &CopyInput{SrcKey: in.SrcKey, DstKey: in.DstKey, SrcIfMatch: etag,
			ReplaceMetadata: in.ReplaceMetadata, Metadata: in.Metadata, ContentType: in.ContentType})
	}
	return c.copyMultipart(ctx, in, info, size, etag)
}

func (c *Copier) copyMultipart(ctx context.Context, in *CopyObjectInput, info *ObjectInfo, size int64, etag string) (*CopyOutput, error) {
	ps, err := PartSize(size, c.opt.CopyChunkSize)
	if err != nil {
		return nil, err
	}
	meta, ctype := in.Metadata, in.ContentType
	if !in.ReplaceMetadata {
		meta, ctype = info.Metadata, info.ContentType
	}
	id, err := c.api.InitiateMultipart(ctx, &InitiateInput{Key: in.DstKey, ContentType: ctype, Metadata: meta})
	if err != nil {
		return nil, err
	}
	mw := newMultipartWriter(ctx, c.api, in.DstKey, id, writerConfig{limit: c.opt.CopyChunkParallelLimit,
		retries: c.opt.ChunkRetryTimes, minPart: c.opt.MinPartSize, backoff: c.backoff})
	stop := context.AfterFunc(ctx, mw.cancel)
	defer stop()
	num := 1
	for off := int64(0); off < size; off += ps {
		if err := mw.AddCopyPart(ctx, num, in.SrcKey, etag, off, min(ps, size-off)); err != nil {
			return nil, mw.fail(ctx, err)
		}
		num++
	}
	mw.ExpectSize(size)
	out, err := mw.Complete(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return &CopyOutput{ETag: out.ETag}, nil
}
