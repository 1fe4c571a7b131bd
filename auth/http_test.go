package auth

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newServer serves h on 127.0.0.1.
func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

const stsAnswer = `{"Response":{"Credentials":{"Token":"tok","TmpSecretId":"AKIDsts","TmpSecretKey":"ksts"},"ExpiredTime":` + exp1h + `,"Expiration":"2024-01-01T01:00:00Z","RequestId":"r1"}}`

func TestSTSURL(t *testing.T) {
	dir := t.TempDir()
	tokFile := writeFile(t, dir, "bearer", "Bearer file-token-1\n", 0o644)
	var seen atomic.Value
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/sts" || r.URL.Query().Get("bucket") != "b-1" {
			http.Error(w, "bad request", 400)
			return
		}
		seen.Store(r.Header.Get("Authorization") + "|" + r.Header.Get("X-Tenant"))
		fmt.Fprint(w, stsAnswer)
	})
	src := &STSURL{URL: s.URL + "/sts?bucket=b-1", Headers: map[string]string{"X-Tenant": "t1"},
		HeaderFiles: map[string]string{"Authorization": tokFile}, Now: fixedNow(t0)}
	c, err := src.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretID != "AKIDsts" || c.SecretKey != "ksts" || c.SessionToken != "tok" || !c.ExpiredTime.Equal(t0.Add(time.Hour)) {
		t.Errorf("got %q %q %q %v", c.SecretID, c.SecretKey, c.SessionToken, c.ExpiredTime)
	}
	if got := seen.Load(); got != "Bearer file-token-1|t1" {
		t.Errorf("headers sent: %q", got)
	}
	// The header file is read again on the next request.
	writeFile(t, dir, "bearer", "Bearer file-token-2", 0o644)
	if _, err := src.Retrieve(context.Background()); err != nil || seen.Load() != "Bearer file-token-2|t1" {
		t.Errorf("rotated header file: %v %q", err, seen.Load())
	}
}

func TestSTSURLFailures(t *testing.T) {
	const secret = "hdr-secret-value"
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			http.Error(w, "boom "+r.Header.Get("Authorization"), 500)
		case "/403sts":
			w.WriteHeader(403)
			fmt.Fprint(w, `{"Response":{"Error":{"Code":"AuthFailure.UnauthorizedOperation","Message":"not allowed"},"RequestId":"r2"}}`)
		case "/200error":
			fmt.Fprint(w, `{"Response":{"Error":{"Code":"InternalError","Message":"try later"},"RequestId":"r3"}}`)
		case "/html":
			fmt.Fprint(w, "<html>login "+r.Header.Get("Authorization")+"</html>")
		case "/huge":
			fmt.Fprint(w, `{"TmpSecretId":"`+strings.Repeat("A", 2<<20)+`"}`)
		case "/slow":
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		case "/garbage":
			fmt.Fprint(w, `{"TmpSecretId":"AKIDa","TmpSecretKey":"`+secret+`","ExpiredTime":"later"}`)
		}
	})
	closed := newServer(t, func(http.ResponseWriter, *http.Request) {})
	deadURL := closed.URL
	closed.Close()

	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/500", []string{"HTTP 500 Internal Server Error"}},
		{"/403sts", []string{"HTTP 403 Forbidden: STS error AuthFailure.UnauthorizedOperation: not allowed (RequestId r2)"}},
		{"/200error", []string{"STS error InternalError: try later"}},
		{"/html", []string{"answer is not a JSON object"}},
		{"/huge", []string{"larger than 1048576 bytes; refused"}},
		{"/slow", []string{"no answer within 300ms"}},
		{"/garbage", []string{"ExpiredTime is not a unix time"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			u := s.URL + tc.path + "?sig=query-secret"
			timeout := 10 * time.Second
			if tc.path == "/slow" {
				timeout = 300 * time.Millisecond
			}
			src := &STSURL{URL: u, Headers: map[string]string{"Authorization": "Bearer " + secret}, Timeout: timeout, Now: fixedNow(t0)}
			_, err := src.Retrieve(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range append(tc.want, "sts-url "+s.URL+tc.path+":") {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q, want %q", msg, w)
				}
			}
			if strings.Contains(msg, secret) || strings.Contains(msg, "query-secret") {
				t.Errorf("error leaks a secret: %q", msg)
			}
		})
	}
	_, err := (&STSURL{URL: deadURL + "/sts?k=query-secret"}).Retrieve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unreachable") || strings.Contains(err.Error(), "query-secret") {
		t.Errorf("unreachable endpoint: %v", err)
	}
	for _, u := range []string{"ftp://x/y", "not a url", ""} {
		if _, err := (&STSURL{URL: u}).Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "not an http:// or https:// URL") {
			t.Errorf("URL %q: %v", u, err)
		}
	}
	if _, err := (&STSURL{URL: s.URL, HeaderFiles: map[string]string{"Authorization": "/nonexistent"}}).Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "header file for Authorization") {
		t.Errorf("missing header file: %v", err)
	}
}

func TestCAMRole(t *testing.T) {
	var path atomic.Value
	var code atomic.Value
	code.Store("Success")
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.Path)
		if strings.HasSuffix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"TmpSecretId":"AKIDcam","TmpSecretKey":"kcam","Token":"tcam","ExpiredTime":%s,"Expiration":"2024-01-01T01:00:00Z","Code":"%s"}`, exp1h, code.Load())
	})
	ep := s.URL + "/latest/meta-data/cam/security-credentials/"
	c, err := (&CAMRole{Role: "my role", Endpoint: ep, Now: fixedNow(t0)}).Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretID != "AKIDcam" || c.SecretKey != "kcam" || c.SessionToken != "tcam" || !c.ExpiredTime.Equal(t0.Add(time.Hour)) {
		t.Errorf("got %q %q %q %v", c.SecretID, c.SecretKey, c.SessionToken, c.ExpiredTime)
	}
	if got := path.Load(); got != "/latest/meta-data/cam/security-credentials/my role" {
		t.Errorf("path %q", got)
	}
	if _, err := (&CAMRole{Role: "missing", Endpoint: ep}).Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("unknown role: %v", err)
	}
	code.Store("Failed")
	if _, err := (&CAMRole{Role: "r", Endpoint: ep, Now: fixedNow(t0)}).Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), `Code "Failed"`) {
		t.Errorf("Code Failed: %v", err)
	}
	if _, err := (&CAMRole{Role: " ", Endpoint: ep}).Retrieve(context.Background()); err == nil {
		t.Error("empty role accepted")
	}
	if DefaultCAMEndpoint != "http://metadata.tencentyun.com/latest/meta-data/cam/security-credentials/" {
		t.Error("default endpoint changed")
	}
}

// TestSTSURLRedirects: a redirect that keeps the scheme and host is
// followed; one to another host, or from https to http, is refused before
// the headers are sent there.
func TestSTSURLRedirects(t *testing.T) {
	const secret = "hdr-secret-value"
	var leaked atomic.Int32
	other := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "" || r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		fmt.Fprint(w, stsAnswer)
	})
	same := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/sts", http.StatusFound)
		case "/away":
			http.Redirect(w, r, other.URL+"/sts", http.StatusFound)
		case "/sts":
			fmt.Fprint(w, stsAnswer)
		}
	})
	tok := writeFile(t, t.TempDir(), "tok", secret, 0o600)
	get := func(u string, client *http.Client) error {
		_, err := (&STSURL{URL: u, Client: client, Headers: map[string]string{"X-Token": secret},
			HeaderFiles: map[string]string{"Authorization": tok}, Now: fixedNow(t0)}).Retrieve(context.Background())
		return err
	}
	if err := get(same.URL+"/moved", nil); err != nil {
		t.Errorf("redirect on the same host: %v", err)
	}
	if err := get(same.URL+"/away", nil); err == nil || !strings.Contains(err.Error(), "redirect must keep the scheme and host") {
		t.Errorf("redirect to another host: %v", err)
	}
	tls := httptest.NewTLSServer(http.RedirectHandler(other.URL+"/sts", http.StatusFound))
	defer tls.Close()
	if err := get(tls.URL+"/sts", tls.Client()); err == nil || !strings.Contains(err.Error(), "redirect must keep the scheme and host") {
		t.Errorf("redirect from https to http: %v", err)
	} else if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows a header: %v", err)
	}
	if n := leaked.Load(); n != 0 {
		t.Errorf("headers reached another server %d times", n)
	}
}

// TestSTSURLFromFile: --sts-url @/path/file reads the URL, query included,
// from the file on every request.
func TestSTSURLFromFile(t *testing.T) {
	var got atomic.Value
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.Query().Get("token"))
		fmt.Fprint(w, stsAnswer)
	})
	dir := t.TempDir()
	f := writeFile(t, dir, "url", s.URL+"/sts?token=one\n", 0o600)
	p, desc, err := NewProvider(context.Background(), SourceConfig{STSURLFile: f, Now: fixedNow(t0)})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := p.Retrieve(context.Background()); c.SecretID != "AKIDsts" || got.Load() != "one" {
		t.Errorf("got %v, query token %q", c, got.Load())
	}
	if strings.Contains(desc, "one") || !strings.Contains(desc, f) {
		t.Errorf("description %q", desc)
	}
	writeFile(t, dir, "url", s.URL+"/sts?token=two", 0o600)
	if _, err := (&STSURL{URLFile: f, Now: fixedNow(t0)}).Retrieve(context.Background()); err != nil || got.Load() != "two" {
		t.Errorf("rewritten URL file: %v %q", err, got.Load())
	}
	if _, err := (&STSURL{URLFile: filepath.Join(dir, "missing")}).Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "sts-url file") {
		t.Errorf("missing URL file: %v", err)
	}
}
