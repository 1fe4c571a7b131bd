// Package transport speaks a bucket's XML API over net/http: COS (virtual
// host, q-sign-algorithm=sha1, ListObjects V1) or any S3-compatible store
// (SigV4, ListObjectsV2). It retries, checks checksums and returns typed
// errors; Uploader and Copier do multipart transfers.
package transport

import (
	"context"
	"net/http"
	"time"

	"cosmount/auth"
)

// Flavor selects the dialect.
type Flavor string

const (
	FlavorCOS Flavor = "cos"
	FlavorS3  Flavor = "s3"
)

// Config builds a Client for one bucket.
type Config struct {
	Flavor Flavor
	Bucket string // COS: name-appid
	Region string // COS: ap-guangzhou...; S3: us-east-1 when empty
	// Endpoint is the S3 flavour's URL (http://127.0.0.1:7070). For COS it
	// overrides the domain template when set (tests, private endpoints).
	Endpoint string
	// Domain is COS's endpoint template, "{Bucket}.cos.{Region}.myqcloud.com"
	// when empty.
	Domain        string
	Protocol      string // "https" (default) or "http"
	UseAccelerate bool   // COS: {Bucket}.cos.accelerate.myqcloud.com
	PathStyle     bool   // S3: bucket in the path rather than the host
	Timeout       time.Duration
	Credentials   auth.Provider
	HTTPClient    *http.Client // nil: a tuned default
	// MaxRetries is how many times a retryable failure is retried (default 3).
	MaxRetries int
	// CheckContentMD5 sends Content-MD5 with PUT and UploadPart.
	CheckContentMD5 bool
	// AddMetaMD5 stores the body's MD5 as metadata "md5" on single PUTs.
	AddMetaMD5 bool
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Client is one bucket's API.
type Client struct {
	cfg Config
}

// New checks cfg and builds a Client.
func New(cfg Config) (*Client, error) { panic("TODO") }

func (c *Client) Head(ctx context.Context, in *HeadInput) (*ObjectInfo, error) { panic("TODO") }
func (c *Client) Get(ctx context.Context, in *GetInput) (*GetOutput, error)    { panic("TODO") }
func (c *Client) Put(ctx context.Context, in *PutInput) (*PutOutput, error)    { panic("TODO") }
func (c *Client) Delete(ctx context.Context, key string) error                 { panic("TODO") }
func (c *Client) DeleteMany(ctx context.Context, keys []string) ([]DeleteError, error) {
	panic("TODO")
}
func (c *Client) List(ctx context.Context, in *ListInput) (*ListOutput, error) { panic("TODO") }
func (c *Client) Copy(ctx context.Context, in *CopyInput) (*CopyOutput, error) { panic("TODO") }
func (c *Client) InitiateMultipart(ctx context.Context, in *InitiateInput) (string, error) {
	panic("TODO")
}
func (c *Client) UploadPart(ctx context.Context, in *UploadPartInput) (*Part, error) {
	panic("TODO")
}
func (c *Client) UploadPartCopy(ctx context.Context, in *UploadPartCopyInput) (*Part, error) {
	panic("TODO")
}
func (c *Client) CompleteMultipart(ctx context.Context, in *CompleteInput) (*PutOutput, error) {
	panic("TODO")
}
func (c *Client) AbortMultipart(ctx context.Context, key, uploadID string) error { panic("TODO") }
func (c *Client) ListParts(ctx context.Context, key, uploadID string) ([]Part, error) {
	panic("TODO")
}
func (c *Client) ListMultipartUploads(ctx context.Context, prefix string) ([]Upload, error) {
	panic("TODO")
}

// CreateBucket creates the client's bucket (tests, demo).
func (c *Client) CreateBucket(ctx context.Context) error { panic("TODO") }
