package transport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"hash/crc64"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"cosmount/auth"
)

// request is one bucket call, re-sendable: every attempt builds a fresh
// http.Request from it.
type request struct {
	op     op
	method string
	key    string
	bucket bool   // a bucket-level call: no key in the path
	query  string // raw query, in order (sub-resource first)
	header http.Header
	body   io.ReadSeeker // nil: no body
	start  int64         // body's offset when the call began
	size   int64         // body length
	// hash is the SigV4 payload hash; "" means UNSIGNED-PAYLOAD for a body
	// and the empty hash without one.
	hash string
	// crc hashes the body as it is sent and checks the answer's
	// x-cos-hash-crc64ecma.
	crc bool
	// stream hands the response body to the caller (GET) instead of
	// reading it whole.
	stream bool
	// errorIn200 checks a 200 answer for an <Error> body (Copy, Complete).
	errorIn200 bool
}

// response is a successful answer.
type response struct {
	*http.Response
	body   []byte        // the whole body, unless the request streamed
	stream io.ReadCloser // the body, when the request streamed
}

var crcTable = crc64.MakeTable(crc64.ECMA)

const crcHeader = "x-cos-hash-crc64ecma"

// setBody makes body (from its current offset, size bytes) the request's.
// A negative size is measured by seeking to the end.
func (r *request) setBody(body io.ReadSeeker, size int64) error {
	if body == nil {
		if size > 0 {
			return errors.New("a body of " + strconv.FormatInt(size, 10) + " bytes is nil")
		}
		return nil
	}
	pos, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	// Measure what is left, so that a short body is refused here rather
	// than failing (and being retried) on the wire.
	end, err := body.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if _, err := body.Seek(pos, io.SeekStart); err != nil {
		return err
	}
	switch {
	case size < 0:
		size = end - pos
	case end-pos < size:
		return errors.New("body has " + strconv.FormatInt(end-pos, 10) + " bytes, fewer than the size " + strconv.FormatInt(size, 10))
	}
	r.body, r.start, r.size = body, pos, size
	return nil
}

// setXML makes b (a small XML document) the body, with its SHA-256 as the
// payload hash and, when md5 is set, its Content-MD5.
func (r *request) setXML(b []byte, md5 bool) {
	r.body, r.start, r.size = strings.NewReader(string(b)), 0, int64(len(b))
	sum := sha256.Sum256(b)
	r.hash = hex.EncodeToString(sum[:])
	if r.header == nil {
		r.header = http.Header{}
	}
	r.header.Set("Content-Type", "application/xml")
	if md5 {
		r.header.Set("Content-MD5", md5Base64(b))
	}
}

// url is the request's URL: the key escaped in the path, the query as built.
func (c *Client) url(r *request) *url.URL {
	u := &url.URL{Scheme: c.scheme, Host: c.host, RawQuery: r.query}
	switch {
	case r.bucket && c.pathPrefix != "":
		u.Path = c.pathPrefix
	case r.bucket:
		u.Path = "/"
	default:
		u.Path = c.pathPrefix + "/" + r.key
		u.RawPath = c.pathPrefix + "/" + escapePath(r.key)
	}
	return u
}

// attempt sends r once, signed with cred, and reads the answer: a non-2xx
// status becomes an *Error, and so does a network failure. Every silence
// longer than the timeout (connect, send, wait, each body read) cancels it.
func (c *Client) attempt(ctx context.Context, r *request, cred auth.Credentials) (*response, error) {
	actx, cancel := context.WithCancelCause(ctx)
	wd := newWatchdog(c.timeout, cancel)
	fail := func(err error) (*response, error) {
		wd.stop()
		cancel(nil)
		return nil, err
	}
	req, err := http.NewRequestWithContext(actx, r.method, "/", nil)
	if err != nil {
		return fail(c.opError(r, err))
	}
	req.URL = c.url(r)
	req.Host = c.host
	req.Header = r.header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	var rb *reqBody
	var fb *fileBody
	payloadHash := r.hash
	if r.body != nil && r.size > 0 {
		if sb, ok := r.body.(sectionBody); ok && !r.crc {
			if f, check, ok := sb.section(r.start, r.size); ok {
				var err error
				if fb, err = newFileBody(f, r.size, check, wd); err == nil {
					req.Body = fb
				} else {
					f.Close()
				}
			}
		}
		if fb == nil {
			if _, err := r.body.Seek(r.start, io.SeekStart); err != nil {
				return fail(c.opError(r, err))
			}
			rb = &reqBody{r: io.LimitReader(r.body, r.size), wd: wd}
			if r.crc {
				rb.crc = crc64.New(crcTable)
			}
			req.Body = rb
		}
		req.ContentLength = r.size
		if payloadHash == "" {
			payloadHash = auth.UnsignedPayload
		}
	} else if payloadHash == "" {
		payloadHash = auth.EmptyPayloadHash
	}
	if err := c.sign(req, cred, payloadHash); err != nil {
		if fb != nil {
			fb.finish()
		}
		return fail(c.opError(r, err))
	}
	resp, err := c.httpc.Do(req)
	if rb != nil {
		// The transport may still hold the body; after this no read of it
		// reaches r.body, so the next attempt can seek it safely.
		rb.Close()
	}
	if fb != nil {
		fb.finish()
	}
	wd.received()
	if err != nil {
		return fail(c.netError(r, ctx, actx, err))
	}
	if resp.StatusCode/100 != 2 {
		body, _ := readAll(resp.Body, wd, maxErrorBodyBytes)
		resp.Body.Close()
		return fail(c.httpError(r, resp, body, cred))
	}
	if fb != nil {
		if err := fb.check(); err != nil {
			// The bytes changed under the send: the server holds what they
			// were, which must not be used.
			resp.Body.Close()
			return fail(c.opError(r, err))
		}
	}
	if r.stream {
		return &response{Response: resp, stream: &respBody{rc: resp.Body, wd: wd, cancel: cancel, ctx: actx}}, nil
	}
	body, err := readAll(resp.Body, wd, maxResultBodyBytes)
	resp.Body.Close()
	if err != nil {
		return fail(c.netError(r, ctx, actx, err))
	}
	wd.stop()
	cancel(nil)
	if r.errorIn200 && isErrorBody(body) {
		return nil, c.httpError(r, resp, body, cred)
	}
	if rb != nil && rb.crc != nil {
		if want := resp.Header.Get(crcHeader); want != "" {
			if got := strconv.FormatUint(rb.crc.Sum64(), 10); got != want {
				return nil, &Error{Op: r.op.String(), Key: r.key, StatusCode: resp.StatusCode,
					Message:   "server's CRC64 " + want + " differs from the sent body's " + got,
					RequestID: requestID(resp.Header), Kind: ErrChecksum}
			}
		}
	}
	return &response{Response: resp, body: body}, nil
}

// sign signs req for the client's flavour at the corrected clock.
func (c *Client) sign(req *http.Request, cred auth.Credentials, payloadHash string) error {
	now := c.now()
	if c.cfg.Flavor == FlavorS3 {
		return auth.SignV4(req, cred, c.region, payloadHash, now)
	}
	start, end := now.Add(-60*time.Second), now.Add(time.Hour)
	// Temporary keys carry the issuer's clock: a signature that starts no
	// later than StartTime and ends no earlier than ExpiredTime is valid by
	// the server's clock however far ours is off.
	if !cred.StartTime.IsZero() && cred.StartTime.Before(start) {
		start = cred.StartTime
	}
	if !cred.ExpiredTime.IsZero() && cred.ExpiredTime.After(end) {
		end = cred.ExpiredTime
	}
	auth.SignCOS(req, cred, start, end)
	return nil
}

// reqBody is an attempt's view of the request body. Close cuts it off from
// the underlying reader even if the transport still holds it.
type reqBody struct {
	mu     sync.Mutex
	r      io.Reader
	wd     *watchdog
	crc    hash.Hash64
	closed bool
}

var errBodyClosed = errors.New("request body closed")

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBodyClosed
	}
	n, err := b.r.Read(p)
	if b.crc != nil {
		b.crc.Write(p[:n])
	}
	b.wd.kickSend()
	return n, err
}

func (b *reqBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// respBody is a streamed response body guarded by the attempt's watchdog.
type respBody struct {
	rc     io.ReadCloser
	wd     *watchdog
	cancel context.CancelCauseFunc
	ctx    context.Context
}

func (b *respBody) Read(p []byte) (int, error) {
	b.wd.arm()
	n, err := b.rc.Read(p)
	b.wd.disarm()
	if err != nil && err != io.EOF && context.Cause(b.ctx) == errIdle {
		err = idleTimeout{}
	}
	return n, err
}

func (b *respBody) Close() error {
	b.wd.stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// readAll reads a whole (small) body under the watchdog.
func readAll(r io.Reader, wd *watchdog, limit int64) ([]byte, error) {
	var buf []byte
	lr := io.LimitReader(r, limit)
	chunk := make([]byte, 32<<10)
	for {
		wd.arm()
		n, err := lr.Read(chunk)
		wd.disarm()
		buf = append(buf, chunk[:n]...)
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// escapePath escapes a key for the URL path: everything but RFC 3986's
// unreserved characters and '/' is percent-encoded.
func escapePath(s string) string { return escape(s, true) }

// escapeQuery escapes a query key or value: everything but the unreserved
// characters ('+' and ' ' included) is percent-encoded.
func escapeQuery(s string) string { return escape(s, false) }

func escape(s string, keepSlash bool) string {
	const hexUpper = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) && !(keepSlash && s[i] == '/') {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if unreserved(ch) || keepSlash && ch == '/' {
			b = append(b, ch)
			continue
		}
		b = append(b, '%', hexUpper[ch>>4], hexUpper[ch&15])
	}
	return string(b)
}

func unreserved(ch byte) bool {
	return 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' ||
		ch == '-' || ch == '_' || ch == '.' || ch == '~'
}

// query builds a raw query string in the order its parts are added, so a
// sub-resource can come first (COS routes on the first parameter).
type query []string

// flag adds a valueless parameter (?uploads, ?delete).
func (q *query) flag(k string) { *q = append(*q, escapeQuery(k)) }

// add adds k=v.
func (q *query) add(k, v string) { *q = append(*q, escapeQuery(k)+"="+escapeQuery(v)) }

// addIf adds k=v when v is not empty.
func (q *query) addIf(k, v string) {
	if v != "" {
		q.add(k, v)
	}
}

func (q query) String() string { return strings.Join(q, "&") }
