package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Defaults for the HTTP sources.
const (
	DefaultHTTPTimeout = 30 * time.Second
	DefaultBodyLimit   = 1 << 20
)

// STSURL fetches temporary keys with an HTTP GET from an endpoint on the
// user's own server (the backend pattern COS documents for browsers). The
// answer must be 2xx with a JSON body in any shape ParseCredentialsJSON
// accepts. Headers are sent as given; HeaderFiles name files whose content
// (trimmed) is a header's value, read on every request so a rotated bearer
// token is picked up.
//
// Errors never show header values, the URL's query or user info, or the
// body, except the Code and Message of a Tencent STS error answer.
// Redirects are followed only when they keep the scheme and host, so the
// headers never go to another server or over plain http.
type STSURL struct {
	URL string
	// URLFile, when set, names a file holding the URL (trimmed), read on
	// every request: a URL with a secret in its query or user info stays
	// out of the command line.
	URLFile     string
	Headers     map[string]string
	HeaderFiles map[string]string
	Client      *http.Client     // nil means one with Timeout and the environment's proxy
	Timeout     time.Duration    // 0 means DefaultHTTPTimeout
	BodyLimit   int64            // 0 means DefaultBodyLimit
	Now         func() time.Time // nil means time.Now
}

// Retrieve implements Provider.
func (s *STSURL) Retrieve(ctx context.Context) (Credentials, error) {
	rawURL := s.URL
	if s.URLFile != "" {
		var err error
		if rawURL, err = readPublicFile(s.URLFile, "sts-url file"); err != nil {
			return Credentials{}, err
		}
	}
	name := "sts-url " + redactURL(rawURL)
	headers := http.Header{}
	for k, v := range s.Headers {
		headers.Set(k, v)
	}
	for _, k := range sortedKeys(s.HeaderFiles) {
		v, err := readPublicFile(s.HeaderFiles[k], "header file for "+k)
		if err != nil {
			return Credentials{}, fmt.Errorf("%s: %w", name, err)
		}
		headers.Set(k, v)
	}
	body, err := httpGet(ctx, s.Client, rawURL, headers, s.Timeout, s.BodyLimit, true)
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", name, err)
	}
	c, err := ParseCredentialsJSON(body, nowOr(s.Now)())
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// redactURL shows scheme, host and path only: the query and user info may
// hold secrets.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(malformed URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

var errRedirect = errors.New("refused: a redirect must keep the scheme and host")

// sameOriginRedirect refuses a redirect to another scheme or host, which
// would carry the request's headers (secrets read from files, say) to a
// server they were not meant for, or over plain http; next, when not nil,
// then judges the redirects that stay.
func sameOriginRedirect(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		first := via[0].URL
		if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
			return fmt.Errorf("redirected to %s: %w", redactURL(req.URL.String()), errRedirect)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

// httpGet GETs rawURL and returns the body of a 2xx answer. Its errors say
// what went wrong without the URL's query, the headers or the body.
func httpGet(ctx context.Context, client *http.Client, rawURL string, h http.Header, timeout time.Duration, limit int64, useProxy bool) ([]byte, error) {
	if timeout <= 0 {
		timeout = DefaultHTTPTimeout
	}
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if !useProxy {
			tr.Proxy = nil
		}
		client = &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
	}
	cl := *client
	cl.CheckRedirect = sameOriginRedirect(client.CheckRedirect)
	client = &cl
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("not an http:// or https:// URL")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, errors.New("cannot make a request for this URL")
	}
	if h != nil {
		req.Header = h.Clone()
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the whole URL, query included
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return nil, fmt.Errorf("no answer within %s", timeout)
		}
		if errors.Is(err, errRedirect) {
			return nil, err
		}
		return nil, fmt.Errorf("unreachable: %w", err)
	}
	defer resp.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := "HTTP " + resp.Status
		if e := stsErrorIn(body); e != nil {
			msg += ": " + e.Error()
		}
		return nil, errors.New(oneLine(msg, 400))
	}
	if rerr != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("answer not complete within %s", timeout)
		}
		return nil, fmt.Errorf("reading the answer: %w", rerr)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("answer is larger than %d bytes; refused", limit)
	}
	return body, nil
}
