package transport

import (
	"io"
	"time"
)

// ObjectInfo describes one object, from HEAD, GET or a listing entry.
type ObjectInfo struct {
	Key          string
	Size         int64
	ETag         string // without quotes
	LastModified time.Time
	ContentType  string
	StorageClass string
	// Metadata holds user metadata with the flavour's prefix
	// (x-cos-meta- / x-amz-meta-) removed and names lowercased: "mtime",
	// "mode", "uid", "gid". Nil for listing entries (a listing carries none).
	Metadata map[string]string
	// CRC64 is the server's x-cos-hash-crc64ecma when sent ("" otherwise).
	CRC64 string
}

// HeadInput is a HEAD of one object.
type HeadInput struct {
	Key string
}

// GetInput is a GET of one object, whole or a byte range.
type GetInput struct {
	Key string
	// Offset and Length select a range; Length < 0 means to the end.
	// Offset 0 with Length < 0 is the whole object (no Range header).
	Offset, Length int64
	// IfMatch, when set, makes the GET fail with ErrPreconditionFailed when the
	// object's ETag differs.
	IfMatch string
}

// GetOutput is a streamed object body. The caller closes Body.
type GetOutput struct {
	Body io.ReadCloser
	Info ObjectInfo // Size is the whole object's size, not the range's
	// ContentLength is the length of Body, -1 when unknown.
	ContentLength int64
}

// PutInput is a single PUT of one object.
type PutInput struct {
	Key         string
	Body        io.ReadSeeker // re-readable so a retry can resend it
	Size        int64
	ContentType string
	Metadata    map[string]string // names without prefix
}

// PutOutput is the answer to a PUT.
type PutOutput struct {
	ETag string
}

// ListInput is one page of a listing.
type ListInput struct {
	Prefix    string
	Delimiter string
	// Token continues a truncated listing: NextToken of the previous page.
	Token   string
	MaxKeys int // 0: the server's default (1,000)
	// OnNextToken, when not nil, may be called with the token of the next
	// page as soon as the answer names it, before the rest of the answer is
	// read (ListPages uses it to ask for that page meanwhile). It is a hint:
	// NextToken of the returned page is what counts.
	OnNextToken func(token string)
}

// ListOutput is one page of a listing.
type ListOutput struct {
	Objects        []ObjectInfo
	CommonPrefixes []string
	// NextToken is non-empty when the listing is truncated.
	NextToken string
}

// CopyInput is a server-side copy of one object (at most 5 GiB; larger
// objects go through Copier).
type CopyInput struct {
	SrcKey, DstKey string
	// SrcIfMatch makes the copy fail with ErrPreconditionFailed when the
	// source changed.
	SrcIfMatch string
	// ReplaceMetadata replaces the metadata with Metadata and ContentType;
	// otherwise the source's are kept.
	ReplaceMetadata bool
	Metadata        map[string]string
	ContentType     string
}

// CopyOutput is the answer to a copy.
type CopyOutput struct {
	ETag string
}

// InitiateInput starts a multipart upload.
type InitiateInput struct {
	Key         string
	ContentType string
	Metadata    map[string]string
}

// UploadPartInput uploads one part.
type UploadPartInput struct {
	Key, UploadID string
	PartNumber    int // 1..10,000
	Body          io.ReadSeeker
	Size          int64
}

// UploadPartCopyInput copies a range of an existing object into one part.
type UploadPartCopyInput struct {
	Key, UploadID string
	PartNumber    int
	SrcKey        string
	SrcIfMatch    string
	// Offset and Length select the source range; Length < 0 copies it whole.
	Offset, Length int64
}

// Part is one uploaded part.
type Part struct {
	PartNumber   int
	ETag         string
	Size         int64
	LastModified time.Time
}

// CompleteInput completes a multipart upload from its parts, in order.
type CompleteInput struct {
	Key, UploadID string
	Parts         []Part
}

// Upload is one multipart upload in progress.
type Upload struct {
	Key, UploadID string
	Initiated     time.Time
}

// DeleteError is one key a DeleteMany could not delete.
type DeleteError struct {
	Key, Code, Message string
}
