package transport

import (
	"context"
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
	"testing"
	"time"

	"cosmount/auth"
)

// cosFake is an in-memory COS bucket on loopback that checks what a real
// one would: the Host, the q-sign-algorithm=sha1 signature (recomputed with
// auth.SignCOS over the received request), the sub-resource first in the
// query, COS's header spellings. It records every request.
const (
	cosBucket = "examplebucket-1250000000"
	cosRegion = "ap-guangzhou"
	cosHost   = cosBucket + ".cos." + cosRegion + ".myqcloud.com"
)

type cosFake struct {
	t    testing.TB
	cred auth.Credentials
	host string // the Host every request must carry
	srv  *httptest.Server
	// clock is the server's time (tests skew it).
	clock func() time.Time

	mu      sync.Mutex
	objects map[string]*cfObject
	uploads map[string]*cfUpload
	nextID  int
	log     []cfRecord
	// hook, when set, may answer a request itself (return true).
	hook func(w http.ResponseWriter, r *http.Request, body []byte) bool
}

type cfObject struct {
	data  []byte
	crc   string // x-cos-hash-crc64ecma, computed once
	etag  string
	ctype string
	meta  http.Header
	mod   time.Time
}

type cfUpload struct {
	key       string
	ctype     string
	meta      http.Header
	parts     map[int]*cfObject
	initiated time.Time
}

// cfRecord is one request as received.
type cfRecord struct {
	Method, Host, URI string
	Header            http.Header
	Body              []byte
}

func newCOSFake(t testing.TB) *cosFake {
	f := &cosFake{t: t, host: cosHost, clock: time.Now,
		cred:    auth.Credentials{SecretID: "AKIDcosfake0000000000000000000000000", SecretKey: "cosfakesecretkey0123456789abcdef", SessionToken: "cosfake-session-token"},
		objects: map[string]*cfObject{}, uploads: map[string]*cfUpload{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// client is a cos-flavour client whose requests carry COS's real host
// names but are dialled to the fake.
func (f *cosFake) client(t testing.TB, mod ...func(*Config)) *Client {
	t.Helper()
	addr := f.srv.Listener.Addr().String()
	tr := DefaultTransport()
	tr.Proxy = nil
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	cfg := Config{Flavor: FlavorCOS, Bucket: cosBucket, Region: cosRegion, Protocol: "http",
		Credentials: auth.NewStatic(f.getCred()), HTTPClient: &http.Client{Transport: tr}}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.backoffBase, c.backoffCap = time.Millisecond, 10*time.Millisecond
	return c
}

func (f *cosFake) getCred() auth.Credentials {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cred
}

// setCred changes the keys the fake accepts (and new clients get).
func (f *cosFake) setCred(change func(*auth.Credentials)) {
	f.mu.Lock()
	change(&f.cred)
	f.mu.Unlock()
}

// records returns the requests received so far and forgets them.
func (f *cosFake) records() []cfRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.log
	f.log = nil
	return r
}

func (f *cosFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.log = append(f.log, cfRecord{Method: r.Method, Host: r.Host, URI: r.RequestURI, Header: r.Header.Clone(), Body: body})
	hook, n, cred := f.hook, len(f.log), f.cred
	f.mu.Unlock()
	w.Header().Set("x-cos-request-id", "cosfake-"+strconv.Itoa(n))
	if r.Host != f.host {
		f.t.Errorf("%s %s: Host %q, want %q", r.Method, r.RequestURI, r.Host, f.host)
	}
	if err := verifyCOSSignature(r, cred, f.clock()); err != nil {
		if strings.Contains(err.Error(), "expired") || strings.Contains(err.Error(), "not yet valid") {
			cfError(w, r, 403, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.")
			return
		}
		f.t.Errorf("%s %s: %v", r.Method, r.RequestURI, err)
		cfError(w, r, 403, "SignatureDoesNotMatch", err.Error())
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

func (f *cosFake) route(w http.ResponseWriter, r *http.Request, body []byte) {
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
			cfError(w, r, 405, "MethodNotAllowed", "")
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
		o := &cfObject{data: body, etag: md5hexOf(body), ctype: r.Header.Get("Content-Type"), meta: metaOf(r.Header), mod: time.Now()}
		f.objects[key] = o
		w.Header().Set("ETag", `"`+o.etag+`"`)
		w.Header().Set(crcHeader, o.crc64())
	case r.Method == "GET" || r.Method == "HEAD":
		f.get(w, r, key)
	case r.Method == "DELETE":
		if f.objects[key] == nil {
			cfError(w, r, 404, "NoSuchKey", "The specified key does not exist.")
			return
		}
		delete(f.objects, key)
		w.WriteHeader(204)
	default:
		cfError(w, r, 405, "MethodNotAllowed", "")
	}
}

// checkBody checks Content-MD5 when sent.
func (f *cosFake) checkBody(w http.ResponseWriter, r *http.Request, body []byte) bool {
	if m := r.Header.Get("Content-MD5"); m != "" && m != md5Base64(body) {
		cfError(w, r, 400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
		return false
	}
	if r.ContentLength != int64(len(body)) {
		f.t.Errorf("%s %s: Content-Length %d for %d bytes", r.Method, r.RequestURI, r.ContentLength, len(body))
	}
	return true
}

func (f *cosFake) get(w http.ResponseWriter, r *http.Request, key string) {
	o := f.objects[key]
	if o == nil {
		cfError(w, r, 404, "NoSuchKey", "The specified key does not exist.")
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && strings.Trim(m, `"`) != o.etag {
		cfError(w, r, 412, "PreconditionFailed", "At least one of the preconditions you specified did not hold.")
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
	h.Set(crcHeader, o.crc64())
	size := int64(len(o.data))
	lo, hi, ranged, ok := parseRange(r.Header.Get("Range"), size)
	if !ok {
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		cfError(w, r, 416, "InvalidRange", "The requested range is not satisfiable")
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

// parseRange reads "bytes=a-b" / "bytes=a-"; ok is false when a is past
// the end.
func parseRange(h string, size int64) (lo, hi int64, ranged, ok bool) {
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

func (f *cosFake) copySource(w http.ResponseWriter, r *http.Request) (*cfObject, bool) {
	src := r.Header.Get("x-cos-copy-source")
	rest, ok := strings.CutPrefix(src, cosHost+"/")
	if !ok {
		f.t.Errorf("copy source %q is not %s/key", src, cosHost)
		cfError(w, r, 400, "InvalidArgument", "bad x-cos-copy-source")
		return nil, false
	}
	key, err := url.PathUnescape(rest)
	if err != nil {
		cfError(w, r, 400, "InvalidArgument", "bad x-cos-copy-source")
		return nil, false
	}
	o := f.objects[key]
	if o == nil {
		cfError(w, r, 404, "NoSuchKey", "The specified key does not exist.")
		return nil, false
	}
	if m := r.Header.Get("x-cos-copy-source-if-match"); m != "" && strings.Trim(m, `"`) != o.etag {
		cfError(w, r, 412, "PreconditionFailed", "At least one of the preconditions you specified did not hold.")
		return nil, false
	}
	return o, true
}

func (f *cosFake) copyObject(w http.ResponseWriter, r *http.Request, key string) {
	src, ok := f.copySource(w, r)
	if !ok {
		return
	}
	o := &cfObject{data: src.data, crc: src.crc64(), etag: src.etag, ctype: src.ctype, meta: src.meta, mod: time.Now()}
	switch d := r.Header.Get("x-cos-metadata-directive"); d {
	case "Copy", "":
	case "Replaced":
		o.ctype, o.meta = r.Header.Get("Content-Type"), metaOf(r.Header)
	default:
		f.t.Errorf("metadata directive %q is not COS's Copy/Replaced", d)
	}
	f.objects[key] = o
	cfXML(w, struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		ETag         string
		LastModified string
		CRC64        string
	}{ETag: `"` + o.etag + `"`, LastModified: o.mod.UTC().Format(time.RFC3339), CRC64: o.crc64()})
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
func (o *cfObject) crc64() string {
	if o.crc == "" {
		o.crc = crcOf(o.data)
	}
	return o.crc
}

func crcOf(b []byte) string { return strconv.FormatUint(crc64.Checksum(b, crcTable), 10) }

func cfError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
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
	}{Code: code, Message: msg, Resource: cosHost + r.URL.Path, RequestId: w.Header().Get("x-cos-request-id"), TraceId: "trace"})
	w.Write(append([]byte(xml.Header), b...))
}

func cfXML(w http.ResponseWriter, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Write(append([]byte(xml.Header), b...))
}

// verifyCOSSignature recomputes the request's signature with auth.SignCOS
// over what arrived: the headers named in q-header-list, the query, the
// host, for the q-sign-time it names; it also checks that every header the
// client chose to send is signed and that now is inside the validity.
func verifyCOSSignature(r *http.Request, cred auth.Credentials, now time.Time) error {
	got := r.Header.Get("Authorization")
	fields := map[string]string{}
	for _, kv := range strings.Split(got, "&") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	if fields["q-sign-algorithm"] != "sha1" || fields["q-ak"] != cred.SecretID {
		return fmt.Errorf("authorization %q: wrong algorithm or key id", got)
	}
	a, b, _ := strings.Cut(fields["q-sign-time"], ";")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || fields["q-key-time"] != fields["q-sign-time"] {
		return fmt.Errorf("authorization %q: bad q-sign-time", got)
	}
	if now.Unix() < start {
		return fmt.Errorf("signature not yet valid: starts %d, now %d", start, now.Unix())
	}
	if now.Unix() > end {
		return fmt.Errorf("signature expired: ended %d, now %d", end, now.Unix())
	}
	signed := map[string]bool{}
	req, err := http.NewRequest(r.Method, "http://"+r.Host+r.RequestURI, nil)
	if err != nil {
		return err
	}
	req.Host = r.Host
	for _, h := range strings.Split(fields["q-header-list"], ";") {
		signed[h] = true
		if h != "host" && h != "" {
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	if !signed["host"] {
		return fmt.Errorf("host is not signed")
	}
	for k := range r.Header {
		lk := strings.ToLower(k)
		if (strings.HasPrefix(lk, "x-cos-") || lk == "content-type" || lk == "content-md5" || lk == "range" || lk == "if-match") && !signed[lk] {
			return fmt.Errorf("header %s is sent but not signed", lk)
		}
	}
	if cred.SessionToken != "" && r.Header.Get("x-cos-security-token") != cred.SessionToken {
		return fmt.Errorf("x-cos-security-token missing")
	}
	auth.SignCOS(req, cred, time.Unix(start, 0), time.Unix(end, 0))
	if want := req.Header.Get("Authorization"); want != got {
		return fmt.Errorf("signature mismatch:\n got %s\nwant %s", got, want)
	}
	return nil
}
