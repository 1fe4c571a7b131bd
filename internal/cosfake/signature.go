package cosfake

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cosmount/auth"
)

// verifySignature recomputes the request's signature with auth.SignCOS
// over what arrived: the headers named in q-header-list, the query, the
// host, for the q-sign-time it names; it also checks that every header the
// client chose to send is signed and that now is inside the validity.
func verifySignature(r *http.Request, cred auth.Credentials, now time.Time) error {
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
