package auth_test

// SigV4 against a real S3 server (versitygw, which verifies signatures).
// This file is package auth_test because testrig imports auth.

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"cosmount/auth"
	"cosmount/internal/testrig"
)

func TestMain(m *testing.M) { testrig.Main(m) }

type s3Call struct {
	method, bucket, key string
	query               url.Values
	body                []byte
	header              http.Header
	unsigned            bool // send UNSIGNED-PAYLOAD instead of the body's hash
}

// do signs c with cred through auth.SignV4, sends it, and returns the status
// and body. Keys and bodies are test data; no secret is ever printed.
func do(t *testing.T, srv *testrig.Server, cred auth.Credentials, c s3Call, after func(*http.Request)) (int, []byte) {
	t.Helper()
	u, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + c.bucket
	if c.key != "" {
		u.Path += "/" + c.key
	}
	u.RawQuery = c.query.Encode()
	req, err := http.NewRequest(c.method, u.String(), bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	hash := auth.UnsignedPayload
	if !c.unsigned {
		sum := sha256.Sum256(c.body)
		hash = hex.EncodeToString(sum[:])
	}
	if err := auth.SignV4(req, cred, srv.Region, hash, time.Now()); err != nil {
		t.Fatal(err)
	}
	if after != nil {
		after(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func errorCode(body []byte) string {
	var e struct{ Code string }
	_ = xml.Unmarshal(body, &e)
	return e.Code
}

func TestSignV4AgainstServer(t *testing.T) {
	srv := testrig.Get(t)
	cred := auth.Credentials{SecretID: srv.AccessKey, SecretKey: srv.SecretKey}

	// testrig's own bucket creation goes through SignV4 too.
	shared := srv.NewBucket(t)

	// PUT bucket, signed here.
	bucket := "sigv4-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if st, b := do(t, srv, cred, s3Call{method: http.MethodPut, bucket: bucket}, nil); st != http.StatusOK {
		t.Fatalf("PUT bucket: HTTP %d %s", st, errorCode(b))
	}

	keys := []string{
		"plain.txt",
		"dir/sub dir/with space.txt",
		"unicode/腾讯云-é-ü.txt",
		"reserved +%#?&=()!*';:@$,~_-.bin",
		"test$file.text",
	}
	for i, key := range keys {
		body := []byte(strings.Repeat("cosmount-"+key+"\n", i+1))
		md := md5.Sum(body)
		h := http.Header{}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-MD5", base64.StdEncoding.EncodeToString(md[:]))
		h.Set("X-Amz-Meta-Mode", "33188")
		if st, b := do(t, srv, cred, s3Call{method: http.MethodPut, bucket: bucket, key: key, body: body, header: h}, nil); st != http.StatusOK {
			t.Fatalf("PUT %q: HTTP %d %s", key, st, errorCode(b))
		}
		st, got := do(t, srv, cred, s3Call{method: http.MethodGet, bucket: bucket, key: key}, nil)
		if st != http.StatusOK || !bytes.Equal(got, body) {
			t.Fatalf("GET %q: HTTP %d, body %q", key, st, got)
		}
	}

	// UNSIGNED-PAYLOAD into the bucket testrig made.
	if st, b := do(t, srv, cred, s3Call{method: http.MethodPut, bucket: shared, key: "u n+signed", body: []byte("x"), unsigned: true}, nil); st != http.StatusOK {
		t.Fatalf("PUT unsigned payload: HTTP %d %s", st, errorCode(b))
	}

	// A listing whose query needs encoding (space, '/', '+', unicode).
	for _, l := range []struct {
		prefix, want string
	}{
		{"dir/sub dir/", keys[1]},
		{"reserved +%#?&=", keys[3]},
		{"unicode/腾讯云", keys[2]},
	} {
		st, b := do(t, srv, cred, s3Call{method: http.MethodGet, bucket: bucket,
			query: url.Values{"list-type": {"2"}, "prefix": {l.prefix}, "delimiter": {"/"}, "max-keys": {"10"}}}, nil)
		if st != http.StatusOK {
			t.Fatalf("LIST prefix %q: HTTP %d %s", l.prefix, st, errorCode(b))
		}
		var res struct{ Contents []struct{ Key string } }
		if err := xml.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Contents) != 1 || res.Contents[0].Key != l.want {
			t.Fatalf("LIST prefix %q: %+v, want %q", l.prefix, res.Contents, l.want)
		}
	}

	// A wrong secret is refused.
	bad := auth.Credentials{SecretID: srv.AccessKey, SecretKey: srv.SecretKey + "x"}
	if st, b := do(t, srv, bad, s3Call{method: http.MethodGet, bucket: bucket, key: keys[0]}, nil); st != http.StatusForbidden || errorCode(b) != "SignatureDoesNotMatch" {
		t.Fatalf("wrong secret: HTTP %d %s", st, errorCode(b))
	}
	if st, b := do(t, srv, bad, s3Call{method: http.MethodPut, bucket: bucket, key: "never", body: []byte("x")}, nil); st != http.StatusForbidden {
		t.Fatalf("wrong secret PUT: HTTP %d %s", st, errorCode(b))
	}

	// Signed headers really are covered: changing one after signing fails.
	for _, tamper := range []struct {
		name string
		f    func(*http.Request)
	}{
		{"content-type", func(r *http.Request) { r.Header.Set("Content-Type", "text/html") }},
		{"x-amz-meta", func(r *http.Request) { r.Header.Set("X-Amz-Meta-Mode", "16877") }},
		{"path", func(r *http.Request) { r.URL.Path += "2"; r.URL.RawPath = "" }},
		{"payload", func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader("y")) }},
	} {
		h := http.Header{}
		h.Set("Content-Type", "text/plain")
		h.Set("X-Amz-Meta-Mode", "33188")
		st, b := do(t, srv, cred, s3Call{method: http.MethodPut, bucket: bucket, key: "tamper", body: []byte("x"), header: h}, tamper.f)
		if st/100 == 2 {
			t.Errorf("tampered %s accepted: HTTP %d", tamper.name, st)
		} else if c := errorCode(b); c != "SignatureDoesNotMatch" && c != "XAmzContentSHA256Mismatch" {
			t.Errorf("tampered %s: HTTP %d %s, want a signature or payload-hash mismatch", tamper.name, st, c)
		}
	}
}

// The token path on the wire: with a token, x-amz-security-token is sent and
// signed. versitygw's root account has no sessions, so it must refuse the
// token as a token (400 InvalidToken, as S3 does), not as a bad signature — proof that the
// server read and checked it; without the token the same keys work.
func TestSignV4TokenAgainstServer(t *testing.T) {
	srv := testrig.Get(t)
	bucket := srv.NewBucket(t)
	cred := auth.Credentials{SecretID: srv.AccessKey, SecretKey: srv.SecretKey, SessionToken: "cosmount-test-token"}
	var sent *http.Request
	st, b := do(t, srv, cred, s3Call{method: http.MethodGet, bucket: bucket, query: url.Values{"list-type": {"2"}}},
		func(r *http.Request) { sent = r })
	if sent.Header.Get("X-Amz-Security-Token") != "cosmount-test-token" ||
		!strings.Contains(sent.Header.Get("Authorization"), ";x-amz-security-token,") {
		t.Fatalf("token not sent and signed: %v", sent.Header.Get("Authorization"))
	}
	if st != http.StatusBadRequest || errorCode(b) != "InvalidToken" {
		t.Fatalf("root keys with a token: HTTP %d %q, want 400 InvalidToken", st, errorCode(b))
	}
	cred.SessionToken = ""
	if st, b := do(t, srv, cred, s3Call{method: http.MethodGet, bucket: bucket, query: url.Values{"list-type": {"2"}}}, nil); st != http.StatusOK {
		t.Fatalf("without token: HTTP %d %s", st, errorCode(b))
	}
}
