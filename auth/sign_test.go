package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// The published example of COS's "Request Signature" page (PUT Object).
const (
	cosDocSecretID  = "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q"
	cosDocSecretKey = "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz"
	cosDocHost      = "examplebucket-1250000000.cos.ap-beijing.myqcloud.com"
)

func mustRequest(t *testing.T, method, rawURL string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func httpStringOf(req *http.Request) string {
	var scratch [24]cosPair
	b, _, _ := cosHTTPString(req, &scratch)
	return string(b)
}

func TestSignCOSPublishedPutExample(t *testing.T) {
	req := mustRequest(t, http.MethodPut, "http://"+cosDocHost+"/exampleobject(%E8%85%BE%E8%AE%AF%E4%BA%91)")
	req.Header.Set("Date", "Thu, 16 May 2019 06:45:51 GMT")
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Content-Length", "13")
	req.Header.Set("Content-MD5", "mQ/fVh815F3k6TAUm8m0eg==")
	req.Header.Set("x-cos-acl", "private")
	req.Header.Set("x-cos-grant-read", `uin="100000000011"`)

	wantHTTP := "put\n/exampleobject(腾讯云)\n\n" +
		"content-length=13&content-md5=mQ%2FfVh815F3k6TAUm8m0eg%3D%3D&content-type=text%2Fplain" +
		"&date=Thu%2C%2016%20May%202019%2006%3A45%3A51%20GMT" +
		"&host=examplebucket-1250000000.cos.ap-beijing.myqcloud.com" +
		"&x-cos-acl=private&x-cos-grant-read=uin%3D%22100000000011%22\n"
	got := httpStringOf(req)
	if got != wantHTTP {
		t.Fatalf("HttpString:\n got %q\nwant %q", got, wantHTTP)
	}
	if sum := sha1.Sum([]byte(got)); hex.EncodeToString(sum[:]) != "8b2751e77f43a0995d6e9eb9477f4b685cca4172" {
		t.Fatalf("SHA1(HttpString) = %x", sum)
	}

	SignCOS(req, Credentials{SecretID: cosDocSecretID, SecretKey: cosDocSecretKey},
		time.Unix(1557989151, 0), time.Unix(1557996351, 0))
	want := "q-sign-algorithm=sha1&q-ak=AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q" +
		"&q-sign-time=1557989151;1557996351&q-key-time=1557989151;1557996351" +
		"&q-header-list=content-length;content-md5;content-type;date;host;x-cos-acl;x-cos-grant-read" +
		"&q-url-param-list=&q-signature=3b8851a11a569213c17ba8fa7dcf2abec6935172"
	if got := req.Header.Get("Authorization"); got != want {
		t.Fatalf("Authorization:\n got %s\nwant %s", got, want)
	}
	if req.Header.Get(cosTokenHeader) != "" {
		t.Fatal("x-cos-security-token set without a token")
	}
}

func TestSignCOSPublishedGetExample(t *testing.T) {
	req := mustRequest(t, http.MethodGet, "http://"+cosDocHost+
		"/exampleobject(%E8%85%BE%E8%AE%AF%E4%BA%91)?response-content-type=application%2Foctet-stream&response-cache-control=max-age%3D600")
	req.Header.Set("Date", "Thu, 16 May 2019 06:55:53 GMT")

	wantHTTP := "get\n/exampleobject(腾讯云)\n" +
		"response-cache-control=max-age%3D600&response-content-type=application%2Foctet-stream\n" +
		"date=Thu%2C%2016%20May%202019%2006%3A55%3A53%20GMT&host=examplebucket-1250000000.cos.ap-beijing.myqcloud.com\n"
	got := httpStringOf(req)
	if got != wantHTTP {
		t.Fatalf("HttpString:\n got %q\nwant %q", got, wantHTTP)
	}
	if sum := sha1.Sum([]byte(got)); hex.EncodeToString(sum[:]) != "54ecfe22f59d3514fdc764b87a32d8133ea611e6" {
		t.Fatalf("SHA1(HttpString) = %x", sum)
	}

	SignCOS(req, Credentials{SecretID: cosDocSecretID, SecretKey: cosDocSecretKey},
		time.Unix(1557989753, 0), time.Unix(1557996953, 0))
	want := "q-sign-algorithm=sha1&q-ak=AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q" +
		"&q-sign-time=1557989753;1557996953&q-key-time=1557989753;1557996953" +
		"&q-header-list=date;host&q-url-param-list=response-cache-control;response-content-type" +
		"&q-signature=01681b8c9d798a678e43b685a9f1bba0f6c0e012"
	if got := req.Header.Get("Authorization"); got != want {
		t.Fatalf("Authorization:\n got %s\nwant %s", got, want)
	}
}

// The vector of cos-go-sdk-v5's own TestNewAuthorization.
func TestSignCOSReferenceSDKVector(t *testing.T) {
	req := mustRequest(t, http.MethodPut, "http://testbucket-125000000.cos.ap-guangzhou.myqcloud.com/testfile2")
	req.Header.Add("Host", "testbucket-125000000.cos.ap-guangzhou.myqcloud.com")
	req.Header.Add("x-cos-content-sha1", "db8ac1c259eb89d4a131b253bacfca5f319d54f2")
	req.Header.Add("x-cos-stroage-class", "nearline")
	SignCOS(req, Credentials{SecretID: "QmFzZTY0IGlzIGEgZ2VuZXJp", SecretKey: "AKIDZfbOA78asKUYBcXFrJD0a1ICvR98JM"},
		time.Unix(1480932292, 0), time.Unix(1481012292, 0))
	want := "q-sign-algorithm=sha1&q-ak=QmFzZTY0IGlzIGEgZ2VuZXJp&q-sign-time=1480932292;1481012292" +
		"&q-key-time=1480932292;1481012292&q-header-list=host;x-cos-content-sha1;x-cos-stroage-class" +
		"&q-url-param-list=&q-signature=ce4ac0ecbcdb30538b3fee0a97cc6389694ce53a"
	if got := req.Header.Get("Authorization"); got != want {
		t.Fatalf("Authorization:\n got %s\nwant %s", got, want)
	}
}

// cosSignatureOf recomputes the signature of an HttpString the long way,
// independently of SignCOS's code, with the formulas of COS's documentation.
func cosSignatureOf(secretKey, keyTime, httpString string) string {
	h := sha1.Sum([]byte(httpString))
	stringToSign := "sha1\n" + keyTime + "\n" + hex.EncodeToString(h[:]) + "\n"
	m := hmac.New(sha1.New, []byte(secretKey))
	m.Write([]byte(keyTime))
	signKey := hex.EncodeToString(m.Sum(nil))
	m = hmac.New(sha1.New, []byte(signKey))
	m.Write([]byte(stringToSign))
	return hex.EncodeToString(m.Sum(nil))
}

func parseCOSAuthorization(t *testing.T, a string) map[string]string {
	t.Helper()
	fields := map[string]string{}
	for _, kv := range strings.Split(a, "&") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("malformed Authorization field %q", kv)
		}
		fields[k] = v
	}
	for _, k := range []string{"q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time", "q-header-list", "q-url-param-list", "q-signature"} {
		if _, ok := fields[k]; !ok {
			t.Fatalf("Authorization lacks %s", k)
		}
	}
	if len(fields) != 7 {
		t.Fatalf("Authorization has %d fields, want 7", len(fields))
	}
	return fields
}

func TestSignCOSCanonicalForms(t *testing.T) {
	cases := []struct {
		name, method, url string
		host              string // req.Host override
		headers           [][2]string
		wantHTTP          string
		wantHeaders       string
		wantParams        string
	}{
		{
			name: "decoded path with reserved characters", method: "GET",
			url:         "http://b.example/dir/a%20b%2Bc+d%25e%23f%3Fg%26h=(i)!*'%3B:@$,~",
			wantHTTP:    "get\n/dir/a b+c+d%e#f?g&h=(i)!*';:@$,~\n\nhost=b.example\n",
			wantHeaders: "host",
		},
		{
			name: "empty path signs /", method: "HEAD", url: "http://b.example",
			wantHTTP: "head\n/\n\nhost=b.example\n", wantHeaders: "host",
		},
		{
			name: "valueless sub-resource", method: "POST", url: "http://b.example/k?uploads",
			wantHTTP: "post\n/k\nuploads=\nhost=b.example\n", wantHeaders: "host", wantParams: "uploads",
		},
		{
			name: "keys lowercased and sorted", method: "PUT", url: "http://b.example/k?uploadId=Ab%2Bc%2F%3D&partNumber=7",
			wantHTTP:    "put\n/k\npartnumber=7&uploadid=Ab%2Bc%2F%3D\nhost=b.example\n",
			wantHeaders: "host", wantParams: "partnumber;uploadid",
		},
		{
			name: "plus is a space, escaped plus is a plus", method: "GET", url: "http://b.example/?prefix=a+b&marker=x%2By&delimiter=%2F",
			wantHTTP:    "get\n/\ndelimiter=%2F&marker=x%2By&prefix=a%20b\nhost=b.example\n",
			wantHeaders: "host", wantParams: "delimiter;marker;prefix",
		},
		{
			name: "repeated keys sorted by value", method: "GET", url: "http://b.example/?k=2&K=1&k",
			wantHTTP:    "get\n/\nk=&k=1&k=2\nhost=b.example\n",
			wantHeaders: "host", wantParams: "k;k;k",
		},
		{
			name: "encoded keys have lower-case escapes", method: "GET", url: "http://b.example/?%C3%89t%C3%A9%20X=v%C3%A9",
			wantHTTP:    "get\n/\n%c3%89t%c3%a9%20x=v%C3%A9\nhost=b.example\n",
			wantHeaders: "host", wantParams: "%c3%89t%c3%a9%20x",
		},
		{
			name: "pairs ParseQuery drops are not signed", method: "GET", url: "http://b.example/?a=1;b=2&c=%zz&d=4&&",
			wantHTTP:    "get\n/\nd=4\nhost=b.example\n",
			wantHeaders: "host", wantParams: "d",
		},
		{
			name: "req.Host wins over URL host and Host header", method: "GET", url: "http://127.0.0.1:9000/o",
			host:        "bucket-1250000000.cos.ap-guangzhou.myqcloud.com",
			headers:     [][2]string{{"Host", "ignored.example"}},
			wantHTTP:    "get\n/o\n\nhost=bucket-1250000000.cos.ap-guangzhou.myqcloud.com\n",
			wantHeaders: "host",
		},
		{
			name: "every header, values encoded, Authorization never", method: "PUT", url: "http://b.example/o",
			headers: [][2]string{
				{"X-Cos-Meta-Mode", "33188"}, {"x-cos-meta-Name", "a b/c"}, {"User-Agent", "cosmount/1"},
				{"X-Custom", "2"}, {"X-Custom", "1"}, {"Authorization", "old"}, {"Range", "bytes=0-9"},
				{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
			},
			wantHTTP: "put\n/o\n\ncontent-type=application%2Fx-www-form-urlencoded%3B%20charset%3Dutf-8&host=b.example" +
				"&range=bytes%3D0-9&user-agent=cosmount%2F1&x-cos-meta-mode=33188&x-cos-meta-name=a%20b%2Fc&x-custom=1&x-custom=2\n",
			wantHeaders: "content-type;host;range;user-agent;x-cos-meta-mode;x-cos-meta-name;x-custom;x-custom",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := mustRequest(t, c.method, c.url)
			if c.host != "" {
				req.Host = c.host
			}
			for _, h := range c.headers {
				req.Header.Add(h[0], h[1])
			}
			if got := httpStringOf(req); got != c.wantHTTP {
				t.Fatalf("HttpString:\n got %q\nwant %q", got, c.wantHTTP)
			}
			SignCOS(req, Credentials{SecretID: "id", SecretKey: "key"}, time.Unix(1700000000, 0), time.Unix(1700003600, 0))
			f := parseCOSAuthorization(t, req.Header.Get("Authorization"))
			if f["q-header-list"] != c.wantHeaders || f["q-url-param-list"] != c.wantParams {
				t.Fatalf("lists: headers %q params %q; want %q %q", f["q-header-list"], f["q-url-param-list"], c.wantHeaders, c.wantParams)
			}
			if want := cosSignatureOf("key", "1700000000;1700003600", c.wantHTTP); f["q-signature"] != want {
				t.Fatalf("q-signature %s, want %s", f["q-signature"], want)
			}
			if f["q-sign-algorithm"] != "sha1" || f["q-ak"] != "id" ||
				f["q-sign-time"] != "1700000000;1700003600" || f["q-key-time"] != "1700000000;1700003600" {
				t.Fatalf("fields: %v", f)
			}
		})
	}
}

func TestSignCOSUrlEncodeEveryByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		s := string([]byte{byte(c)})
		want := fmt.Sprintf("%%%02X", c)
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~", byte(c)) >= 0 {
			want = s
		}
		if got := string(appendCOSEncoded(nil, s)); got != want {
			t.Errorf("UrlEncode(%q) = %q, want %q", s, got, want)
		}
		if got := string(appendCOSKey(nil, s)); got != strings.ToLower(want) {
			t.Errorf("key UrlEncode(%q) = %q, want %q", s, got, strings.ToLower(want))
		}
	}
}

func TestSignCOSToken(t *testing.T) {
	start, end := time.Unix(1700000000, 0), time.Unix(1700000900, 0)
	req := mustRequest(t, http.MethodGet, "http://b.example/k")
	SignCOS(req, Credentials{SecretID: "tmpid", SecretKey: "tmpkey", SessionToken: "tok en/+="}, start, end)
	if got := req.Header.Get("x-cos-security-token"); got != "tok en/+=" {
		t.Fatalf("x-cos-security-token = %q", got)
	}
	f := parseCOSAuthorization(t, req.Header.Get("Authorization"))
	if f["q-header-list"] != "host;x-cos-security-token" {
		t.Fatalf("q-header-list = %q", f["q-header-list"])
	}
	wantHTTP := "get\n/k\n\nhost=b.example&x-cos-security-token=tok%20en%2F%2B%3D\n"
	if want := cosSignatureOf("tmpkey", "1700000000;1700000900", wantHTTP); f["q-signature"] != want {
		t.Fatalf("token not signed as expected: %s, want %s", f["q-signature"], want)
	}

	// Signing again, for a retry, gives the same answer: neither the old
	// Authorization nor a second token header gets in.
	first := req.Header.Get("Authorization")
	SignCOS(req, Credentials{SecretID: "tmpid", SecretKey: "tmpkey", SessionToken: "tok en/+="}, start, end)
	if got := req.Header.Get("Authorization"); got != first {
		t.Fatalf("re-signing changed Authorization:\n%s\n%s", first, got)
	}
	if n := len(req.Header.Values("X-Cos-Security-Token")); n != 1 {
		t.Fatalf("%d token headers", n)
	}

	// Permanent keys afterwards: the stale token goes away.
	SignCOS(req, Credentials{SecretID: "id", SecretKey: "key"}, start, end)
	if _, ok := req.Header["X-Cos-Security-Token"]; ok {
		t.Fatal("stale x-cos-security-token kept")
	}
	if f := parseCOSAuthorization(t, req.Header.Get("Authorization")); f["q-header-list"] != "host" {
		t.Fatalf("q-header-list = %q", f["q-header-list"])
	}
}

func TestSignCOSManyPairs(t *testing.T) {
	// More pairs than the scratch space holds.
	q := url.Values{}
	req := mustRequest(t, http.MethodGet, "http://b.example/k")
	var wantP, wantH []string
	for i := 0; i < 40; i++ {
		k := fmt.Sprintf("p%02d", i)
		q.Set(k, "v")
		wantP = append(wantP, k)
		h := fmt.Sprintf("x-cos-meta-h%02d", i)
		req.Header.Set(h, "v")
		wantH = append(wantH, h)
	}
	wantH = append(wantH, "host")
	sort.Strings(wantH)
	req.URL.RawQuery = q.Encode()
	SignCOS(req, Credentials{SecretID: "id", SecretKey: "key"}, time.Unix(1, 0), time.Unix(2, 0))
	f := parseCOSAuthorization(t, req.Header.Get("Authorization"))
	if f["q-url-param-list"] != strings.Join(wantP, ";") || f["q-header-list"] != strings.Join(wantH, ";") {
		t.Fatalf("lists: %q %q", f["q-url-param-list"], f["q-header-list"])
	}
}

// --- SigV4 ---

// AWS's published S3 examples ("Signature Calculations for the Authorization
// Header"): keys, time, host.
const (
	awsDocAccessKey = "AKIAIOSFODNN7EXAMPLE"
	awsDocSecretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

var awsDocTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

func TestSignV4AWSExamples(t *testing.T) {
	cases := []struct{ url, sig string }{
		{"https://examplebucket.s3.amazonaws.com/?lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"},
		{"https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"},
	}
	for _, c := range cases {
		req := mustRequest(t, http.MethodGet, c.url)
		if err := SignV4(req, Credentials{SecretID: awsDocAccessKey, SecretKey: awsDocSecretKey}, "us-east-1", EmptyPayloadHash, awsDocTime); err != nil {
			t.Fatal(err)
		}
		want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
			"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + c.sig
		if got := req.Header.Get("Authorization"); got != want {
			t.Errorf("%s:\n got %s\nwant %s", c.url, got, want)
		}
		if got := req.Header.Get("X-Amz-Date"); got != "20130524T000000Z" {
			t.Errorf("x-amz-date = %q", got)
		}
		if got := req.Header.Get("X-Amz-Content-Sha256"); got != EmptyPayloadHash {
			t.Errorf("x-amz-content-sha256 = %q", got)
		}
		if _, ok := req.Header["X-Amz-Security-Token"]; ok {
			t.Error("token header without a token")
		}
	}
}

// refV4 recomputes a SigV4 signature from the AWS specification, written
// separately from SignV4 (and from the library it uses): the canonical URI
// is the strict encoding of the decoded path, each query name and value is
// encoded, pairs sorted; signed headers are host, x-amz-*, content-type and
// content-md5.
func refV4(req *http.Request, secret, region string, tm time.Time) (signedHeaders, signature string) {
	enc := func(s string, keepSlash bool) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~", c) >= 0 || keepSlash && c == '/' {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	var pairs []string
	for k, vs := range req.URL.Query() {
		for _, v := range vs {
			pairs = append(pairs, enc(k, false)+"="+enc(v, false))
		}
	}
	sort.Strings(pairs)
	hv := map[string]string{"host": req.Host}
	for k, vs := range req.Header {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-amz-") || lk == "content-type" || lk == "content-md5" {
			hv[lk] = strings.TrimSpace(strings.Join(vs, ","))
		}
	}
	var names []string
	for k := range hv {
		names = append(names, k)
	}
	sort.Strings(names)
	var canonHeaders strings.Builder
	for _, n := range names {
		canonHeaders.WriteString(n + ":" + hv[n] + "\n")
	}
	path := req.URL.Path
	if path == "" {
		path = "/"
	}
	canon := strings.Join([]string{req.Method, enc(path, true), strings.Join(pairs, "&"),
		canonHeaders.String(), strings.Join(names, ";"), req.Header.Get("X-Amz-Content-Sha256")}, "\n")
	day := tm.UTC().Format("20060102")
	scope := day + "/" + region + "/s3/aws4_request"
	ch := sha256.Sum256([]byte(canon))
	sts := "AWS4-HMAC-SHA256\n" + tm.UTC().Format("20060102T150405Z") + "\n" + scope + "\n" + hex.EncodeToString(ch[:])
	mac := func(k []byte, m string) []byte { h := hmac.New(sha256.New, k); h.Write([]byte(m)); return h.Sum(nil) }
	key := mac(mac(mac(mac([]byte("AWS4"+secret), day), region), "s3"), "aws4_request")
	return strings.Join(names, ";"), hex.EncodeToString(mac(key, sts))
}

func checkV4(t *testing.T, req *http.Request, access, secret, region string, tm time.Time) {
	t.Helper()
	names, sig := refV4(req, secret, region, tm)
	want := "AWS4-HMAC-SHA256 Credential=" + access + "/" + tm.UTC().Format("20060102") + "/" + region +
		"/s3/aws4_request, SignedHeaders=" + names + ", Signature=" + sig
	if got := req.Header.Get("Authorization"); got != want {
		t.Fatalf("Authorization:\n got %s\nwant %s", got, want)
	}
}

func TestSignV4Token(t *testing.T) {
	tm := time.Date(2024, 2, 29, 12, 30, 45, 0, time.UTC)
	req := mustRequest(t, http.MethodPut, "http://127.0.0.1:7070/bucket/key")
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("x-amz-meta-mode", "33188")
	cred := Credentials{SecretID: "ASIATEMP", SecretKey: "tmpsecret", SessionToken: "FQoGZXIvYXdzE//token+="}
	hash := sha256.Sum256([]byte("hello"))
	if err := SignV4(req, cred, "ap-guangzhou", hex.EncodeToString(hash[:]), tm); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get("X-Amz-Security-Token"); got != cred.SessionToken {
		t.Fatalf("x-amz-security-token = %q", got)
	}
	if !strings.Contains(req.Header.Get("Authorization"),
		"SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-mode;x-amz-security-token,") {
		t.Fatalf("token not among the signed headers: %s", req.Header.Get("Authorization"))
	}
	checkV4(t, req, "ASIATEMP", "tmpsecret", "ap-guangzhou", tm)

	// Signing again with permanent keys drops the stale token.
	if err := SignV4(req, Credentials{SecretID: "AKID", SecretKey: "s"}, "ap-guangzhou", hex.EncodeToString(hash[:]), tm); err != nil {
		t.Fatal(err)
	}
	if _, ok := req.Header["X-Amz-Security-Token"]; ok {
		t.Fatal("stale x-amz-security-token kept")
	}
	checkV4(t, req, "AKID", "s", "ap-guangzhou", tm)
}

func TestSignV4PathAndQuery(t *testing.T) {
	tm := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	keys := []string{
		"plain.txt",
		"dir/with space/and+plus",
		"unicode/腾讯云-é.txt",
		"reserved +%#?&=()!*';:@$,~_-.",
		"test$file.text",
	}
	for _, key := range keys {
		u := &url.URL{Scheme: "http", Host: "127.0.0.1:7070", Path: "/bucket/" + key,
			RawQuery: url.Values{"prefix": {"a b/c+d"}, "uploads": {""}, "x": {"~!*"}}.Encode()}
		req, err := http.NewRequest(http.MethodGet, u.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := SignV4(req, Credentials{SecretID: "AKID", SecretKey: "secret"}, "us-east-1", UnsignedPayload, tm); err != nil {
			t.Fatal(err)
		}
		if req.URL.Path != "/bucket/"+key {
			t.Fatalf("path changed: %q", req.URL.Path)
		}
		// What goes on the wire is the strict encoding, and it is what was signed.
		wantWire := "/bucket/" + s3EscapeForTest(key)
		if got := req.URL.EscapedPath(); got != wantWire {
			t.Fatalf("wire path %q, want %q", got, wantWire)
		}
		if got := req.Header.Get("X-Amz-Content-Sha256"); got != UnsignedPayload {
			t.Fatalf("x-amz-content-sha256 = %q", got)
		}
		checkV4(t, req, "AKID", "secret", "us-east-1", tm)
	}
}

func s3EscapeForTest(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestSignV4RejectsBadInput(t *testing.T) {
	for _, h := range []string{"", "abc", strings.Repeat("z", 64), EmptyPayloadHash + "00", "unsigned-payload"} {
		req := mustRequest(t, http.MethodGet, "http://127.0.0.1/b/k")
		if err := SignV4(req, Credentials{SecretID: "a", SecretKey: "b"}, "us-east-1", h, time.Now()); err == nil {
			t.Errorf("payload hash %q accepted", h)
		}
		if req.Header.Get("Authorization") != "" {
			t.Errorf("payload hash %q: request signed anyway", h)
		}
	}
	req := mustRequest(t, http.MethodGet, "http://127.0.0.1/b/k")
	if err := SignV4(req, Credentials{SecretID: "a", SecretKey: "b"}, "", EmptyPayloadHash, time.Now()); err == nil {
		t.Error("empty region accepted")
	}
}

func TestSignV4DefaultsToNow(t *testing.T) {
	req := mustRequest(t, http.MethodGet, "http://127.0.0.1/b/k")
	before := time.Now().UTC().Add(-time.Second)
	if err := SignV4(req, Credentials{SecretID: "a", SecretKey: "b"}, "us-east-1", EmptyPayloadHash, time.Time{}); err != nil {
		t.Fatal(err)
	}
	tm, err := time.Parse("20060102T150405Z", req.Header.Get("X-Amz-Date"))
	if err != nil {
		t.Fatal(err)
	}
	if tm.Before(before.Truncate(time.Second)) || tm.After(time.Now().Add(time.Second)) {
		t.Fatalf("x-amz-date %v is not now", tm)
	}
	checkV4(t, req, "a", "b", "us-east-1", tm)
}

func TestHMACSHA1(t *testing.T) {
	// RFC 2202 test cases 1, 2, 6 and 7 (key longer than a block), then
	// messages on both sides of the stack-buffer limit against crypto/hmac.
	rfc := []struct{ key, msg, want string }{
		{strings.Repeat("\x0b", 20), "Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"},
		{"Jefe", "what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
		{strings.Repeat("\xaa", 80), "Test Using Larger Than Block-Size Key - Hash Key First", "aa4ae5e15272d00e95705637ce8a3b55ed402112"},
		{strings.Repeat("\xaa", 80), "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data", "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"},
	}
	for _, c := range rfc {
		got := hmacSHA1([]byte(c.key), []byte(c.msg))
		if hex.EncodeToString(got[:]) != c.want {
			t.Errorf("HMAC-SHA1(%q) = %x, want %s", c.msg, got, c.want)
		}
	}
	for _, n := range []int{0, 1, 63, 64, 65, 127, 128, 129, 300} {
		for _, kl := range []int{0, 40, 64, 65, 200} {
			key, msg := []byte(strings.Repeat("k", kl)), []byte(strings.Repeat("m", n))
			m := hmac.New(sha1.New, key)
			m.Write(msg)
			if got := hmacSHA1(key, msg); !hmac.Equal(got[:], m.Sum(nil)) {
				t.Errorf("key %d bytes, message %d bytes: mismatch", kl, n)
			}
		}
	}
}
