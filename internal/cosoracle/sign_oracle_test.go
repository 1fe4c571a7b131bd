package cosoracle

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	cos "github.com/tencentyun/cos-go-sdk-v5"

	"cosmount/auth"
)

var (
	seed  = flag.Int64("seed", 20240516, "seed of the randomized requests")
	count = flag.Int("n", 4000, "number of randomized requests")
)

// extraSigned are headers the generator uses that are not on the SDK's
// default NeedSignHeaders list. auth.SignCOS signs every header present
// (deliberately: COS accepts any signed header, and signing all of them
// protects them all); the SDK signs only its list plus x-cos-* and x-ci-*.
// Adding these to the SDK's list makes the two sign the same set.
var extraSigned = []string{"date", "user-agent", "x-cosmount-trace", "accept"}

func TestMain(m *testing.M) {
	flag.Parse()
	// SetNeedSignHeaders is not safe for concurrent use: only here, before
	// any test runs.
	for _, h := range extraSigned {
		cos.SetNeedSignHeaders(h, true)
	}
	os.Exit(m.Run())
}

// Alphabets for generated text. They cover COS's UrlEncode edge cases:
// reserved characters, space, '%', '+', '~', multi-byte UTF-8.
var (
	keyRunes   = []rune("abcXYZ019-_.~ +%#?&=()!*';:@$,/[]{}<>\"|\\^`腾讯云éü€😀")
	valueRunes = []rune("abcXYZ019-_.~ +%#?&=()!*';:@$,/\"腾讯云é😀")
	nameRunes  = []rune("abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789-")
	alnum      = []rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
)

func randString(r *rand.Rand, alphabet []rune, min, max int) string {
	n := min + r.Intn(max-min+1)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(alphabet[r.Intn(len(alphabet))])
	}
	return b.String()
}

// escapeQuery encodes s for a raw query in one of the ways clients do.
func escapeQuery(r *rand.Rand, s string) string {
	switch r.Intn(3) {
	case 0:
		return url.QueryEscape(s) // space as '+'
	case 1:
		return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
	default:
		return url.PathEscape(s) // leaves some reserved characters raw
	}
}

type generated struct {
	req      *http.Request
	cred     auth.Credentials
	start    time.Time
	end      time.Time
	describe string
}

func generate(t *testing.T, r *rand.Rand) generated {
	t.Helper()
	methods := []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodHead}
	method := methods[r.Intn(len(methods))]

	// Object key: empty (bucket root) or segments with anything in them.
	key := ""
	if r.Intn(8) != 0 {
		segs := 1 + r.Intn(3)
		parts := make([]string, segs)
		for i := range parts {
			parts[i] = randString(r, keyRunes, 1, 12)
		}
		key = strings.Join(parts, "/")
	}
	host := fmt.Sprintf("bucket%d-125%07d.cos.ap-guangzhou.myqcloud.com", r.Intn(100), r.Intn(10000000))
	if r.Intn(5) == 0 {
		host = fmt.Sprintf("127.0.0.1:%d", 1024+r.Intn(60000))
	}

	// Query: sub-resource first, as COS routes on it, then parameters.
	var q []string
	switch r.Intn(7) {
	case 0:
		q = append(q, "uploads")
	case 1:
		q = append(q, "uploadId="+escapeQuery(r, randString(r, alnum, 8, 32)+"+/="), fmt.Sprintf("partNumber=%d", 1+r.Intn(10000)))
	case 2:
		q = append(q, "delete")
	case 3:
		q = append(q, []string{"acl", "tagging", "versioning", "cors"}[r.Intn(4)])
	case 4:
		q = append(q, "versionId="+escapeQuery(r, randString(r, alnum, 4, 20)))
	}
	known := []string{"prefix", "marker", "delimiter", "max-keys", "encoding-type", "response-content-type",
		"response-cache-control", "response-content-disposition", "list-type", "continuation-token"}
	for i, n := 0, r.Intn(5); i < n; i++ {
		var name string
		if r.Intn(3) == 0 {
			name = randString(r, keyRunes, 1, 8) // odd names, mixed case
		} else {
			name = known[r.Intn(len(known))]
		}
		switch r.Intn(5) {
		case 0:
			q = append(q, escapeQuery(r, name)) // no value
		case 1:
			q = append(q, escapeQuery(r, name)+"=") // empty value
		default:
			q = append(q, escapeQuery(r, name)+"="+escapeQuery(r, randString(r, valueRunes, 0, 16)))
		}
	}
	if r.Intn(20) == 0 {
		q = append(q, "bad=%zz", "semi=a;b") // both signers drop these the same way
	}
	u := &url.URL{Scheme: "https", Host: host, Path: "/" + key, RawQuery: strings.Join(q, "&")}
	if r.Intn(2) == 0 {
		u.Scheme = "http"
	}
	req, err := http.NewRequest(method, u.String(), nil)
	if err != nil {
		t.Fatalf("building request for %q: %v", u.String(), err)
	}

	// Headers: the SDK's default list, x-cos-*, x-ci-*, and extraSigned.
	std := []string{"Content-Type", "Content-MD5", "Content-Length", "Range", "If-Match", "If-None-Match",
		"If-Modified-Since", "If-Unmodified-Since", "Cache-Control", "Content-Disposition", "Content-Encoding",
		"Expires", "Origin", "Expect", "Access-Control-Request-Method", "Pic-Operations"}
	cosHdr := []string{"x-cos-acl", "x-cos-grant-read", "x-cos-grant-full-control", "x-cos-storage-class",
		"x-cos-content-sha1", "x-cos-copy-source", "x-cos-copy-source-range", "x-cos-metadata-directive",
		"x-cos-forbid-overwrite", "x-cos-traffic-limit", "x-cos-server-side-encryption", "x-ci-process"}
	for i, n := 0, r.Intn(8); i < n; i++ {
		var name string
		switch r.Intn(4) {
		case 0:
			name = std[r.Intn(len(std))]
		case 1:
			name = cosHdr[r.Intn(len(cosHdr))]
		case 2:
			name = "x-cos-meta-" + randString(r, nameRunes, 1, 10)
		default:
			name = extraSigned[r.Intn(len(extraSigned))]
		}
		var value string
		switch name {
		case "Content-MD5":
			value = randString(r, alnum, 22, 22) + "=="
		case "Content-Length":
			value = fmt.Sprint(r.Int63n(1 << 40))
		case "Range", "x-cos-copy-source-range":
			value = fmt.Sprintf("bytes=%d-%d", r.Intn(1000), 1000+r.Intn(1000))
		case "x-cos-copy-source":
			value = host + "/" + url.PathEscape(randString(r, keyRunes, 1, 20))
		default:
			value = randString(r, valueRunes, 0, 24)
		}
		switch r.Intn(6) {
		case 0:
			req.Header.Add(name, value) // a second value if already present
			req.Header.Add(name, randString(r, valueRunes, 0, 8))
		case 1:
			req.Header[strings.ToLower(name)] = append(req.Header[strings.ToLower(name)], value) // non-canonical key
		default:
			req.Header.Set(name, value)
		}
	}

	cred := auth.Credentials{SecretID: "AKID" + randString(r, alnum, 32, 32), SecretKey: randString(r, alnum, 32, 32)}
	if r.Intn(2) == 0 {
		cred.SessionToken = randString(r, alnum, 20, 200) + "+/=" + randString(r, alnum, 0, 10)
	}
	start := time.Unix(1500000000+r.Int63n(500000000), 0)
	end := start.Add(time.Duration(1+r.Intn(86400)) * time.Second)
	return generated{req: req, cred: cred, start: start, end: end,
		describe: fmt.Sprintf("%s %s (Host %s) headers %q token %v", method, u.String(), req.Host, req.Header, cred.SessionToken != "")}
}

// signBoth signs two clones of g.req, one by each implementation, and
// reports the first difference.
func signBoth(g generated) error {
	ours := g.req.Clone(context.Background())
	auth.SignCOS(ours, g.cred, g.start, g.end)

	theirs := g.req.Clone(context.Background())
	cos.AddAuthorizationHeader(g.cred.SecretID, g.cred.SecretKey, g.cred.SessionToken, theirs, &cos.AuthTime{
		SignStartTime: g.start, SignEndTime: g.end,
		KeyStartTime: g.start, KeyEndTime: g.end,
	})

	if a, b := ours.Header.Get("Authorization"), theirs.Header.Get("Authorization"); a != b || a == "" {
		return fmt.Errorf("Authorization differs:\n cosmount %s\n sdk      %s", a, b)
	}
	if a, b := ours.Header.Values("X-Cos-Security-Token"), theirs.Header.Values("X-Cos-Security-Token"); strings.Join(a, "\x00") != strings.Join(b, "\x00") {
		return fmt.Errorf("x-cos-security-token differs: cosmount %d values, sdk %d", len(a), len(b))
	}
	if (g.cred.SessionToken != "") != (ours.Header.Get("X-Cos-Security-Token") != "") {
		return fmt.Errorf("token header presence wrong")
	}
	return nil
}

func TestSignCOSMatchesSDK(t *testing.T) {
	if *count < 1000 {
		t.Fatalf("-n %d: at least 1000 requests", *count)
	}
	r := rand.New(rand.NewSource(*seed))
	withToken, withQuery, withHeaders := 0, 0, 0
	for i := 0; i < *count; i++ {
		g := generate(t, r)
		if err := signBoth(g); err != nil {
			t.Fatalf("request %d (seed %d): %v\nrequest: %s", i, *seed, err, g.describe)
		}
		if g.cred.SessionToken != "" {
			withToken++
		}
		if g.req.URL.RawQuery != "" {
			withQuery++
		}
		if len(g.req.Header) > 0 {
			withHeaders++
		}
	}
	// The generator really produced the variety the test claims.
	if withToken < *count/4 || withQuery < *count/4 || withHeaders < *count/2 {
		t.Fatalf("poor variety: %d with token, %d with query, %d with headers of %d", withToken, withQuery, withHeaders, *count)
	}
	t.Logf("%d requests agree (seed %d): %d with token, %d with query, %d with headers", *count, *seed, withToken, withQuery, withHeaders)
}

// The published example of COS's documentation, through the SDK too: the
// oracle itself is checked against the documentation.
func TestSDKReproducesPublishedExample(t *testing.T) {
	req, err := http.NewRequest(http.MethodPut, "http://examplebucket-1250000000.cos.ap-beijing.myqcloud.com/exampleobject(%E8%85%BE%E8%AE%AF%E4%BA%91)", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Date", "Thu, 16 May 2019 06:45:51 GMT")
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Content-Length", "13")
	req.Header.Set("Content-MD5", "mQ/fVh815F3k6TAUm8m0eg==")
	req.Header.Set("x-cos-acl", "private")
	req.Header.Set("x-cos-grant-read", `uin="100000000011"`)
	start, end := time.Unix(1557989151, 0), time.Unix(1557996351, 0)
	g := generated{req: req, cred: auth.Credentials{SecretID: "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q", SecretKey: "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz"}, start: start, end: end}
	if err := signBoth(g); err != nil {
		t.Fatal(err)
	}
	signed := req.Clone(context.Background())
	auth.SignCOS(signed, g.cred, start, end)
	if !strings.HasSuffix(signed.Header.Get("Authorization"), "&q-signature=3b8851a11a569213c17ba8fa7dcf2abec6935172") {
		t.Fatalf("published example: %s", signed.Header.Get("Authorization"))
	}
}

// The deliberate difference: a header off the SDK's default list is signed
// by cosmount and not by the SDK, and that is the only difference.
func TestUnlistedHeaderIsSignedByCosmountOnly(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "https://b-1250000000.cos.ap-guangzhou.myqcloud.com/k", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Unlisted", "v")
	cred := auth.Credentials{SecretID: "AKIDx", SecretKey: "k"}
	start, end := time.Unix(1700000000, 0), time.Unix(1700000600, 0)
	ours := req.Clone(context.Background())
	auth.SignCOS(ours, cred, start, end)
	if !strings.Contains(ours.Header.Get("Authorization"), "&q-header-list=host;x-unlisted&") {
		t.Fatalf("cosmount: %s", ours.Header.Get("Authorization"))
	}
	theirs := req.Clone(context.Background())
	cos.AddAuthorizationHeader(cred.SecretID, cred.SecretKey, "", theirs, &cos.AuthTime{SignStartTime: start, SignEndTime: end, KeyStartTime: start, KeyEndTime: end})
	if !strings.Contains(theirs.Header.Get("Authorization"), "&q-header-list=host&") {
		t.Fatalf("sdk: %s", theirs.Header.Get("Authorization"))
	}
	// Without the header the two agree again.
	req.Header.Del("X-Unlisted")
	if err := signBoth(generated{req: req, cred: cred, start: start, end: end}); err != nil {
		t.Fatal(err)
	}
}

// SignCOS keeps no state: many goroutines signing at once agree with the SDK
// (run under -race).
func TestSignCOSConcurrent(t *testing.T) {
	r := rand.New(rand.NewSource(*seed + 1))
	gs := make([]generated, 400)
	for i := range gs {
		gs[i] = generate(t, r)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(gs))
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(gs); i += 4 {
				if err := signBoth(gs[i]); err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
