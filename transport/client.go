// Package transport speaks a bucket's XML API over net/http: COS (virtual
// host, q-sign-algorithm=sha1, ListObjects V1) or any S3-compatible store
// (SigV4, ListObjectsV2). It retries, checks checksums and returns typed
// errors; Uploader and Copier do multipart transfers.
//
// Concurrency: a Client is safe for concurrent use; its counters and clock
// offset are atomics. Lock order (client side): an attempt's reqBody.mu,
// then its watchdog.mu; neither is held while waiting on the network.
package transport

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync/atomic"
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
	// Flavor is cos or s3. Empty means s3 when Endpoint is set, cos otherwise.
	Flavor Flavor
	Bucket string // COS: name-appid
	Region string // COS: ap-guangzhou...; S3: us-east-1 when empty
	// Endpoint is the S3 flavour's URL (http://127.0.0.1:7070); without it
	// the S3 flavour talks to https://s3.{Region}.amazonaws.com. For COS it
	// overrides the domain template when set (private endpoints): its scheme
	// and host are used as they are, the host being the bucket's own host.
	// It must be http or https with a host, and no path, query or fragment.
	Endpoint string
	// Domain is COS's endpoint template, "{Bucket}.cos.{Region}.myqcloud.com"
	// when empty. It must contain {Bucket} (COS is virtual-host only) and may
	// contain {Region}; it is a host name, not a URL (Protocol picks the
	// scheme).
	Domain        string
	Protocol      string // "https" (default) or "http"
	UseAccelerate bool   // COS: {Bucket}.cos.accelerate.myqcloud.com
	PathStyle     bool   // S3 only: bucket in the path rather than the host
	// Timeout bounds each attempt's silences: connecting, sending, waiting
	// for the answer, and each wait for more of a response body. It is not a
	// limit on a whole transfer, so a long streamed GET is never cut while
	// bytes keep coming. 0 means 60s.
	Timeout     time.Duration
	Credentials auth.Provider
	// HTTPClient sends the requests; nil means a tuned default (see
	// DefaultTransport). Leave its Timeout zero: it would also cut long
	// streamed bodies, which Timeout above does not.
	HTTPClient *http.Client
	// MaxRetries is how many times a retryable failure is retried (default 3;
	// negative: never).
	MaxRetries int
	// CheckContentMD5 sends Content-MD5 with PUT and UploadPart.
	CheckContentMD5 bool
	// AddMetaMD5 stores the body's MD5 as metadata "md5" on single PUTs.
	AddMetaMD5 bool
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
	// OnRequest, when set, is called once per HTTP request sent (each retry
	// counts), with the operation's name as in Stats. It must be fast and
	// safe for concurrent use.
	OnRequest func(op string)
}

// Client is one bucket's API.
type Client struct {
	cfg   Config
	httpc *http.Client

	scheme     string
	host       string // URL host and Host header
	pathPrefix string // "/bucket" in path style, "" otherwise
	copyHost   string // COS: host named in x-cos-copy-source
	hdr        string // "x-cos-" or "x-amz-"
	region     string
	maxRetries int
	timeout    time.Duration

	// skew is added to the local clock when signing (server minus local),
	// learned from a clock-skew answer's Date header. Nanoseconds.
	skew atomic.Int64

	// backoff bounds; tests shrink them.
	backoffBase, backoffCap time.Duration

	counts [numOps]atomic.Int64
}

// New checks cfg and builds a Client.
func New(cfg Config) (*Client, error) {
	c := &Client{cfg: cfg, backoffBase: 100 * time.Millisecond, backoffCap: 5 * time.Second}
	if err := c.configure(); err != nil {
		return nil, err
	}
	c.httpc = cfg.HTTPClient
	if c.httpc == nil {
		c.httpc = &http.Client{
			Transport: DefaultTransport(),
			// Never follow redirects: a redirect would carry a signature
			// for another host. The 3xx becomes an error.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c, nil
}

// DefaultTransport is the tuned http.Transport a Client uses when
// Config.HTTPClient is nil: many idle connections per host (parallel part
// uploads and readahead), HTTP/1.1 only, no transparent gzip (bodies are
// byte ranges), a large write buffer, and a read buffer smaller than a
// read block, so that block reads go from the socket straight into the block.
func DefaultTransport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{},
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        64 << 10, // reads of a block or more go straight into it
	}
}

// Flavor reports the client's dialect.
func (c *Client) Flavor() Flavor { return c.cfg.Flavor }

// Bucket reports the client's bucket.
func (c *Client) Bucket() string { return c.cfg.Bucket }

// now is the signing clock: the configured clock plus the learned offset.
func (c *Client) now() time.Time {
	return c.localNow().Add(time.Duration(c.skew.Load()))
}

func (c *Client) localNow() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

// op names one kind of request, for counters, hooks and errors.
type op int

const (
	opHead op = iota
	opGet
	opPut
	opDelete
	opDeleteMany
	opList
	opCopy
	opInitiate
	opUploadPart
	opUploadPartCopy
	opComplete
	opAbort
	opListParts
	opListUploads
	opCreateBucket
	numOps
)

var opNames = [numOps]string{
	opHead:           "HEAD",
	opGet:            "GET",
	opPut:            "PUT",
	opDelete:         "DELETE",
	opDeleteMany:     "DeleteMany",
	opList:           "LIST",
	opCopy:           "COPY",
	opInitiate:       "InitiateMultipart",
	opUploadPart:     "UploadPart",
	opUploadPartCopy: "UploadPartCopy",
	opComplete:       "CompleteMultipart",
	opAbort:          "AbortMultipart",
	opListParts:      "ListParts",
	opListUploads:    "ListMultipartUploads",
	opCreateBucket:   "CreateBucket",
}

func (o op) String() string { return opNames[o] }

// Stats returns how many HTTP requests of each kind were sent (retries
// included), keyed "HEAD", "GET", "PUT", "DELETE", "DeleteMany", "LIST",
// "COPY", "InitiateMultipart", "UploadPart", "UploadPartCopy",
// "CompleteMultipart", "AbortMultipart", "ListParts",
// "ListMultipartUploads", "CreateBucket".
func (c *Client) Stats() map[string]int64 {
	m := make(map[string]int64, numOps)
	for i := range c.counts {
		m[opNames[i]] = c.counts[i].Load()
	}
	return m
}

func (c *Client) count(o op) {
	c.counts[o].Add(1)
	if c.cfg.OnRequest != nil {
		c.cfg.OnRequest(o.String())
	}
}
