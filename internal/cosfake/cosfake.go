// Package cosfake is an in-memory Tencent COS bucket served over HTTP on
// loopback, for tests. It checks what a real COS would: the Host, the
// q-sign-algorithm=sha1 signature (recomputed with auth.SignCOS over the
// received request), the sub-resource first in the query, COS's header
// spellings; a request of the wrong shape fails the test that owns the
// fake. It records every request.
//
// It stands behind the same interface as a real bucket (the COS XML API),
// and transport's contract suite runs against both. Objects can also be
// seeded directly with Put, bypassing HTTP, so keys a real server or the
// client would refuse (".." components, "//", NUL bytes, components over
// 255 bytes) can be stored.
//
// It imports only the standard library and cosmount/auth, so that
// transport's own internal tests can use it.
//
// Lock order: Fake.mu alone; never held while a Hook runs.
package cosfake

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash/crc64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"cosmount/auth"
)

// The bucket the fake is, and the Host every request must carry (COS's
// virtual-host name; clients dial the fake's loopback address instead).
const (
	Bucket = "examplebucket-1250000000"
	Region = "ap-guangzhou"
	Host   = Bucket + ".cos." + Region + ".myqcloud.com"
)

// crcHeader is COS's CRC-64/ECMA header, in decimal.
const crcHeader = "x-cos-hash-crc64ecma"

// TB is the part of testing.TB the fake uses: a request of the wrong
// shape is reported with Errorf, and the server is closed at Cleanup.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Cleanup(func())
}

// Hook may answer a request itself by returning true; returning false lets
// the fake answer it. It runs after the signature check, without the fake's
// lock held.
type Hook func(w http.ResponseWriter, r *http.Request, body []byte) bool

// Record is one request as received.
type Record struct {
	Method, Host, URI string
	Header            http.Header
	Body              []byte
}

// Fake is the bucket. Its methods are safe for concurrent use.
type Fake struct {
	t   TB
	srv *httptest.Server

	mu      sync.Mutex
	cred    auth.Credentials
	clock   func() time.Time // the server's time (tests may skew it)
	hook    Hook
	maxKeys int // caps a listing page, when > 0
	objects map[string]*object
	uploads map[string]*upload
	nextID  int
	log     []Record
}

type object struct {
	data  []byte
	crc   string // x-cos-hash-crc64ecma, computed once
	etag  string
	ctype string
	meta  http.Header
	mod   time.Time
}

type upload struct {
	key       string
	ctype     string
	meta      http.Header
	parts     map[int]*object
	initiated time.Time
}

// DefaultCredentials are temporary-looking keys (with a session token) for
// tests that do not care which keys are used.
func DefaultCredentials() auth.Credentials {
	return auth.Credentials{SecretID: "AKIDcosfake0000000000000000000000000",
		SecretKey: "cosfakesecretkey0123456789abcdef", SessionToken: "cosfake-session-token"}
}

// New starts a fake bucket that accepts requests signed with cred; it is
// closed when t's test ends.
func New(t TB, cred auth.Credentials) *Fake {
	f := &Fake{t: t, cred: cred, clock: time.Now,
		objects: map[string]*object{}, uploads: map[string]*upload{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// Close stops the server; New has already arranged for it at cleanup.
func (f *Fake) Close() { f.srv.Close() }

// Addr is the loopback host:port the fake listens on.
func (f *Fake) Addr() string { return f.srv.Listener.Addr().String() }

// Dial connects to the fake whatever address is asked for: set it as an
// http.Transport's DialContext so requests for Host reach the fake.
func (f *Fake) Dial(ctx context.Context, network, _ string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return d.DialContext(ctx, network, f.Addr())
}

// Credentials are the keys the fake accepts now.
func (f *Fake) Credentials() auth.Credentials {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cred
}

// SetCredentials changes the keys the fake accepts.
func (f *Fake) SetCredentials(change func(*auth.Credentials)) {
	f.mu.Lock()
	change(&f.cred)
	f.mu.Unlock()
}

// SetClock sets the server's clock, against which signatures' validity is
// checked (time.Now by default).
func (f *Fake) SetClock(now func() time.Time) {
	f.mu.Lock()
	f.clock = now
	f.mu.Unlock()
}

// SetHook installs h (nil removes it).
func (f *Fake) SetHook(h Hook) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

// SetMaxKeys caps every listing page at n entries (0: no cap beyond the
// request's max-keys), so that paging can be exercised with few keys.
func (f *Fake) SetMaxKeys(n int) {
	f.mu.Lock()
	f.maxKeys = n
	f.mu.Unlock()
}

// Records returns the requests received so far and forgets them.
func (f *Fake) Records() []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.log
	f.log = nil
	return r
}

// Put stores an object directly, without a request: any key is allowed.
// meta holds x-cos-meta-* values by their name after the prefix.
func (f *Fake) Put(key string, data []byte, meta map[string]string) {
	m := http.Header{}
	for k, v := range meta {
		m.Set("x-cos-meta-"+k, v)
	}
	data = append([]byte(nil), data...)
	f.mu.Lock()
	f.objects[key] = &object{data: data, etag: md5hex(data), meta: m, mod: time.Now()}
	f.mu.Unlock()
}

// Object returns a copy of the object stored at key.
func (f *Fake) Object(key string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.objects[key]
	if o == nil {
		return nil, false
	}
	return append([]byte(nil), o.data...), true
}

// ServeHTTP implements http.Handler.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.log = append(f.log, Record{Method: r.Method, Host: r.Host, URI: r.RequestURI, Header: r.Header.Clone(), Body: body})
	hook, n, cred, now := f.hook, len(f.log), f.cred, f.clock()
	f.mu.Unlock()
	w.Header().Set("x-cos-request-id", "cosfake-"+strconv.Itoa(n))
	if r.Host != Host {
		f.t.Errorf("%s %s: Host %q, want %q", r.Method, r.RequestURI, r.Host, Host)
	}
	if err := verifySignature(r, cred, now); err != nil {
		if strings.Contains(err.Error(), "expired") || strings.Contains(err.Error(), "not yet valid") {
			writeError(w, r, 403, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.")
			return
		}
		f.t.Errorf("%s %s: %v", r.Method, r.RequestURI, err)
		writeError(w, r, 403, "SignatureDoesNotMatch", err.Error())
		return
	}
	if hook != nil && hook(w, r, body) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.route(w, r, body)
}

// firstParam is the name of the query's first parameter.
func firstParam(raw string) string {
	p, _, _ := strings.Cut(raw, "&")
	p, _, _ = strings.Cut(p, "=")
	return p
}

// route answers a request; f.mu is held.
func (f *Fake) route(w http.ResponseWriter, r *http.Request, body []byte) {
	q := r.URL.Query()
	first := firstParam(r.URL.RawQuery)
	for _, sub := range []string{"uploadId", "uploads", "delete"} {
		if q.Has(sub) && first != sub {
			f.t.Errorf("%s %s: sub-resource %s is not first", r.Method, r.RequestURI, sub)
		}
	}
	if r.URL.Path == "/" {
		switch {
		case r.Method == "GET" && q.Has("uploads"):
			f.listUploads(w, r)
		case r.Method == "POST" && q.Has("delete"):
			f.deleteMany(w, r, body)
		case r.Method == "GET":
			f.list(w, r)
		case r.Method == "PUT":
			w.WriteHeader(200)
		default:
			writeError(w, r, 405, "MethodNotAllowed", "")
		}
		return
	}
	key := r.URL.Path[1:]
	copySrc := r.Header.Get("x-cos-copy-source")
	if r.Header.Get("x-amz-copy-source") != "" || r.Header.Get("x-amz-meta-mtime") != "" {
		f.t.Errorf("%s %s: x-amz- header sent to COS", r.Method, r.RequestURI)
	}
	switch {
	case q.Has("uploadId"):
		f.multipart(w, r, key, body)
	case r.Method == "POST" && q.Has("uploads"):
		f.initiate(w, r, key)
	case r.Method == "PUT" && copySrc != "":
		f.copyObject(w, r, key)
	case r.Method == "PUT":
		if !f.checkBody(w, r, body) {
			return
		}
		o := &object{data: body, etag: md5hex(body), ctype: r.Header.Get("Content-Type"), meta: metaOf(r.Header), mod: time.Now()}
		f.objects[key] = o
		w.Header().Set("ETag", `"`+o.etag+`"`)
		w.Header().Set(crcHeader, f.crc64(o))
	case r.Method == "GET" || r.Method == "HEAD":
		f.get(w, r, key)
	case r.Method == "DELETE":
		if f.objects[key] == nil {
			writeError(w, r, 404, "NoSuchKey", "The specified key does not exist.")
			return
		}
		delete(f.objects, key)
		w.WriteHeader(204)
	default:
		writeError(w, r, 405, "MethodNotAllowed", "")
	}
}

// checkBody checks Content-MD5 when sent.
func (f *Fake) checkBody(w http.ResponseWriter, r *http.Request, body []byte) bool {
	if m := r.Header.Get("Content-MD5"); m != "" && m != md5Base64(body) {
		writeError(w, r, 400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
		return false
	}
	if r.ContentLength != int64(len(body)) {
		f.t.Errorf("%s %s: Content-Length %d for %d bytes", r.Method, r.RequestURI, r.ContentLength, len(body))
	}
	return true
}

func (f *Fake) get(w http.ResponseWriter, r *http.Request, key string) {
	o := f.objects[key]
	if o == nil {
		writeError(w, r, 404, "NoSuchKey", "The specified key does not exist.")
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && strings.Trim(m, `"`) != o.etag {
		writeError(w, r, 412, "PreconditionFailed", "At least one of the preconditions you specified did not hold.")
		return
	}
	h := w.Header()
	for k, v := range o.meta {
		h[k] = v
	}
	h.Set("ETag", `"`+o.etag+`"`)
	h.Set("Last-Modified", o.mod.UTC().Format(http.TimeFormat))
	h.Set("Content-Type", o.ctype)
	// COS sends the whole object's CRC64 with ranged answers too.
	h.Set(crcHeader, f.crc64(o))
	size := int64(len(o.data))
	lo, hi, ranged, ok := ParseRange(r.Header.Get("Range"), size)
	if !ok {
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		writeError(w, r, 416, "InvalidRange", "The requested range is not satisfiable")
		return
	}
	h.Set("Content-Length", strconv.FormatInt(hi-lo, 10))
	if ranged {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", lo, hi-1, size))
		w.WriteHeader(206)
	}
	if r.Method == "GET" {
		w.Write(o.data[lo:hi])
	}
}

// ParseRange reads "bytes=a-b" / "bytes=a-" against an object of size
// bytes: [lo, hi) is what to send; ranged is false for an empty header; ok
// is false when a is past the end.
func ParseRange(h string, size int64) (lo, hi int64, ranged, ok bool) {
	if h == "" {
		return 0, size, false, true
	}
	a, b, _ := strings.Cut(strings.TrimPrefix(h, "bytes="), "-")
	lo, _ = strconv.ParseInt(a, 10, 64)
	hi = size
	if b != "" {
		e, _ := strconv.ParseInt(b, 10, 64)
		hi = min(e+1, size)
	}
	return lo, hi, true, lo < size
}

func (f *Fake) copySource(w http.ResponseWriter, r *http.Request) (*object, bool) {
	src := r.Header.Get("x-cos-copy-source")
	rest, ok := strings.CutPrefix(src, Host+"/")
	if !ok {
		f.t.Errorf("copy source %q is not %s/key", src, Host)
		writeError(w, r, 400, "InvalidArgument", "bad x-cos-copy-source")
		return nil, false
	}
	key, err := url.PathUnescape(rest)
	if err != nil {
		writeError(w, r, 400, "InvalidArgument", "bad x-cos-copy-source")
		return nil, false
	}
	o := f.objects[key]
	if o == nil {
		writeError(w, r, 404, "NoSuchKey", "The specified key does not exist.")
		return nil, false
	}
	if m := r.Header.Get("x-cos-copy-source-if-match"); m != "" && strings.Trim(m, `"`) != o.etag {
		writeError(w, r, 412, "PreconditionFailed", "At least one of the preconditions you specified did not hold.")
		return nil, false
	}
	return o, true
}

func (f *Fake) copyObject(w http.ResponseWriter, r *http.Request, key string) {
	src, ok := f.copySource(w, r)
	if !ok {
		return
	}
	o := &object{data: src.data, crc: f.crc64(src), etag: src.etag, ctype: src.ctype, meta: src.meta, mod: time.Now()}
	switch d := r.Header.Get("x-cos-metadata-directive"); d {
	case "Copy", "":
	case "Replaced":
		o.ctype, o.meta = r.Header.Get("Content-Type"), metaOf(r.Header)
	default:
		f.t.Errorf("metadata directive %q is not COS's Copy/Replaced", d)
	}
	f.objects[key] = o
	WriteXML(w, struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		ETag         string
		LastModified string
		CRC64        string
	}{ETag: `"` + o.etag + `"`, LastModified: o.mod.UTC().Format(time.RFC3339), CRC64: f.crc64(o)})
}

func metaOf(h http.Header) http.Header {
	m := http.Header{}
	for k, v := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-cos-meta-") {
			m[k] = v
		}
	}
	return m
}

// crc64 is the object's CRC64, computed on first use (f.mu held).
func (f *Fake) crc64(o *object) string {
	if o.crc == "" {
		o.crc = CRC64(o.data)
	}
	return o.crc
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// CRC64 is b's CRC-64/ECMA in decimal, as COS's x-cos-hash-crc64ecma.
func CRC64(b []byte) string { return strconv.FormatUint(crc64.Checksum(b, crcTable), 10) }

func md5hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

func md5Base64(b []byte) string {
	s := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

// writeError answers with COS's <Error> document.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == "HEAD" {
		return
	}
	b, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string
		Message   string
		Resource  string
		RequestId string
		TraceId   string
	}{Code: code, Message: msg, Resource: Host + r.URL.Path, RequestId: w.Header().Get("x-cos-request-id"), TraceId: "trace"})
	w.Write(append([]byte(xml.Header), b...))
}

// WriteXML answers 200 with v as an XML document (for hooks too).
func WriteXML(w http.ResponseWriter, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Write(append([]byte(xml.Header), b...))
}
