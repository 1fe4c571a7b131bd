package transport

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"cosmount/internal/testrig"
)

// faultProxy is a loopback reverse proxy in front of the test server that
// injects failures into the requests its rules match.
type faultProxy struct {
	t      *testing.T
	target *url.URL
	srv    *httptest.Server

	mu    sync.Mutex
	rules []*faultRule
}

// faultRule applies action to the next times requests that match.
type faultRule struct {
	match  func(*http.Request) bool
	times  int
	action func(p *faultProxy, w http.ResponseWriter, r *http.Request)
	hits   int
}

func newFaultProxy(t *testing.T) *faultProxy {
	u, err := url.Parse(testrig.Get(t).Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, target: u}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

// client is a client for a fresh bucket, talking through the proxy.
func (p *faultProxy) client(mod ...func(*Config)) *Client {
	return newS3Client(p.t, append([]func(*Config){func(c *Config) { c.Endpoint = p.srv.URL }}, mod...)...)
}

// inject adds a rule; it returns the rule so a test can count its hits.
func (p *faultProxy) inject(times int, match func(*http.Request) bool, action func(*faultProxy, http.ResponseWriter, *http.Request)) *faultRule {
	r := &faultRule{match: match, times: times, action: action}
	p.mu.Lock()
	p.rules = append(p.rules, r)
	p.mu.Unlock()
	return r
}

// clear drops every rule.
func (p *faultProxy) clear() {
	p.mu.Lock()
	p.rules = nil
	p.mu.Unlock()
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	var rule *faultRule
	for _, fr := range p.rules {
		if fr.times > 0 && fr.match(r) {
			fr.times--
			fr.hits++
			rule = fr
			break
		}
	}
	p.mu.Unlock()
	if rule != nil {
		rule.action(p, w, r)
		return
	}
	p.forward(w, r, nil)
}

// forward passes the request to the server; modify, when set, may replace
// the answer's body.
func (p *faultProxy) forward(w http.ResponseWriter, r *http.Request, modify func(*http.Response) error) {
	rp := httputil.NewSingleHostReverseProxy(p.target)
	rp.ModifyResponse = modify
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ServeHTTP(w, r)
}

func (r *faultRule) Hits() int { return r.hits }

// Matchers.

func method(m string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == m }
}

func isCopy(r *http.Request) bool { return r.Header.Get("x-amz-copy-source") != "" }

func isComplete(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
}

func isUploadPart(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Query().Has("partNumber") && !isCopy(r)
}

func isPut(r *http.Request) bool {
	return r.Method == http.MethodPut && !r.URL.Query().Has("partNumber") && !isCopy(r)
}

// Actions.

// fail answers with an S3 error document.
func fail(status int, code string) func(*faultProxy, http.ResponseWriter, *http.Request) {
	return func(_ *faultProxy, w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("x-amz-request-id", "FAULT-"+code)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message><RequestId>FAULT</RequestId></Error>`, code)
		}
	}
}

// errorIn200 answers 200 with an <Error> body, without forwarding.
func errorIn200(_ *faultProxy, w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>`)
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// forwardThenHangUp lets the server do the work, then loses the answer.
func forwardThenHangUp(p *faultProxy, w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	p.forward(rec, r, nil)
	hangUp(w)
}

// cutRequestBody reads n bytes of the request body, then resets the
// connection.
func cutRequestBody(n int64) func(*faultProxy, http.ResponseWriter, *http.Request) {
	return func(_ *faultProxy, w http.ResponseWriter, r *http.Request) {
		io.CopyN(io.Discard, r.Body, n)
		hangUp(w)
	}
}

// cutResponseBody forwards, but the answer's body breaks after n bytes.
func cutResponseBody(n int64) func(*faultProxy, http.ResponseWriter, *http.Request) {
	return func(p *faultProxy, w http.ResponseWriter, r *http.Request) {
		// The proxy aborts the connection when the body breaks.
		p.forward(w, r, func(resp *http.Response) error {
			resp.Body = &brokenBody{rc: resp.Body, left: n}
			return nil
		})
	}
}

type brokenBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("injected body failure")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *brokenBody) Close() error { return b.rc.Close() }

// stall waits d (or until the client gives up) before forwarding.
func stall(d time.Duration) func(*faultProxy, http.ResponseWriter, *http.Request) {
	return func(p *faultProxy, w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		p.forward(w, r, nil)
	}
}

// slowBody forwards, sending the answer's body in chunks of n bytes with a
// pause of d before each after the first after bytes.
func slowBody(after, n int, d time.Duration) func(*faultProxy, http.ResponseWriter, *http.Request) {
	return func(p *faultProxy, w http.ResponseWriter, r *http.Request) {
		p.forward(w, r, func(resp *http.Response) error {
			resp.Body = &slowReader{rc: resp.Body, after: after, n: n, d: d, done: r.Context().Done()}
			return nil
		})
	}
}

type slowReader struct {
	rc       io.ReadCloser
	after, n int
	d        time.Duration
	done     <-chan struct{}
	sent     int
	chunk    int // bytes sent since the last pause
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.sent >= s.after {
		if s.chunk == 0 || s.chunk >= s.n {
			select {
			case <-time.After(s.d):
			case <-s.done:
				return 0, errors.New("client gone")
			}
			s.chunk = 0
		}
		if len(p) > s.n-s.chunk {
			p = p[:s.n-s.chunk]
		}
	} else if len(p) > s.after-s.sent {
		p = p[:s.after-s.sent]
	}
	n, err := s.rc.Read(p)
	s.sent += n
	if s.sent > s.after || s.after == 0 {
		s.chunk += n
	}
	return n, err
}

func (s *slowReader) Close() error { return s.rc.Close() }

func readAllString(t *testing.T, c *Client, key string) []byte {
	t.Helper()
	out, err := c.Get(testCtx(t), &GetInput{Key: key, Length: -1})
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

// slowRequestBody forwards, reading the request's body in chunks of n bytes
// with a pause of d before each.
func slowRequestBody(n int, d time.Duration) func(*faultProxy, http.ResponseWriter, *http.Request) {
	return func(p *faultProxy, w http.ResponseWriter, r *http.Request) {
		r.Body = &slowReader{rc: r.Body, n: n, d: d, done: r.Context().Done()}
		p.forward(w, r, nil)
	}
}
