package transport

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"cosmount/auth"
)

// TestCOSRequestShapes checks each call's wire form against COS's API
// documentation: method, path, query (sub-resource first), headers.
func TestCOSRequestShapes(t *testing.T) {
	f := newCOSFake(t)
	c := f.client(t, func(cfg *Config) { cfg.CheckContentMD5, cfg.AddMetaMD5 = true, true })
	ctx := testCtx(t)
	key := "dir/a b+c%(腾讯云).txt"
	path := "/dir/a%20b%2Bc%25%28%E8%85%BE%E8%AE%AF%E4%BA%91%29.txt"
	data := []byte("hello, cos")
	sum := md5.Sum(data)

	one := func(what string) cfRecord {
		t.Helper()
		recs := f.records()
		if len(recs) != 1 {
			t.Fatalf("%s: %d requests", what, len(recs))
		}
		r := recs[0]
		if r.Host != cosHost || !strings.HasPrefix(r.Header.Get("Authorization"), "q-sign-algorithm=sha1&q-ak=") ||
			r.Header.Get("x-cos-security-token") != f.getCred().SessionToken {
			t.Errorf("%s: host %q, headers %v", what, r.Host, r.Header)
		}
		return r
	}
	expect := func(r cfRecord, method, uri string, headers ...string) {
		t.Helper()
		if r.Method != method || r.URI != uri {
			t.Errorf("%s %s, want %s %s", r.Method, r.URI, method, uri)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			if got := r.Header.Get(headers[i]); got != headers[i+1] {
				t.Errorf("%s %s: %s = %q, want %q", r.Method, r.URI, headers[i], got, headers[i+1])
			}
		}
	}

	if _, err := c.Put(ctx, &PutInput{Key: key, Body: bytes.NewReader(data), Size: int64(len(data)),
		ContentType: "text/plain", Metadata: map[string]string{"mtime": "1700000000", "Mode": "33188"}}); err != nil {
		t.Fatal(err)
	}
	expect(one("put"), "PUT", path, "Content-Type", "text/plain", "x-cos-meta-mtime", "1700000000",
		"x-cos-meta-mode", "33188", "Content-MD5", md5Base64(data), "x-cos-meta-md5", hex.EncodeToString(sum[:]))

	if _, err := c.Head(ctx, &HeadInput{Key: key}); err != nil {
		t.Fatal(err)
	}
	expect(one("head"), "HEAD", path)

	if got, _ := mustGet(t, c, &GetInput{Key: key, Offset: 1, Length: 3, IfMatch: hex.EncodeToString(sum[:])}); string(got) != "ell" {
		t.Errorf("get: %q", got)
	}
	expect(one("get"), "GET", path, "Range", "bytes=1-3", "If-Match", `"`+hex.EncodeToString(sum[:])+`"`)

	if _, err := c.Copy(ctx, &CopyInput{SrcKey: key, DstKey: "copy"}); err != nil {
		t.Fatal(err)
	}
	expect(one("copy"), "PUT", "/copy", "x-cos-copy-source", cosHost+path, "x-cos-metadata-directive", "Copy")
	if _, err := c.Copy(ctx, &CopyInput{SrcKey: key, DstKey: "copy", ReplaceMetadata: true, SrcIfMatch: "abc",
		ContentType: "a/b", Metadata: map[string]string{"mtime": "2"}}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("copy with stale source: %v", err)
	}
	expect(one("copy replace"), "PUT", "/copy", "x-cos-metadata-directive", "Replaced", "x-cos-copy-source-if-match", `"abc"`,
		"Content-Type", "a/b", "x-cos-meta-mtime", "2")

	id, err := c.InitiateMultipart(ctx, &InitiateInput{Key: key, ContentType: "x/y", Metadata: map[string]string{"uid": "7"}})
	if err != nil {
		t.Fatal(err)
	}
	expect(one("initiate"), "POST", path+"?uploads", "Content-Type", "x/y", "x-cos-meta-uid", "7")
	p1, err := c.UploadPart(ctx, &UploadPartInput{Key: key, UploadID: id, PartNumber: 1, Body: bytes.NewReader(data), Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	expect(one("upload part"), "PUT", path+"?uploadId="+id+"&partNumber=1", "Content-MD5", md5Base64(data))
	p2, err := c.UploadPartCopy(ctx, &UploadPartCopyInput{Key: key, UploadID: id, PartNumber: 2, SrcKey: "copy", Offset: 0, Length: 3})
	if err != nil {
		t.Fatal(err)
	}
	expect(one("upload part copy"), "PUT", path+"?uploadId="+id+"&partNumber=2", "x-cos-copy-source", cosHost+"/copy",
		"x-cos-copy-source-range", "bytes=0-2")
	if parts, err := c.ListParts(ctx, key, id); err != nil || len(parts) != 2 {
		t.Fatalf("list parts: %v %v", parts, err)
	}
	expect(one("list parts"), "GET", path+"?uploadId="+id+"&max-parts=1000")
	if _, err := c.ListMultipartUploads(ctx, "dir/"); err != nil {
		t.Fatal(err)
	}
	expect(one("list uploads"), "GET", "/?uploads&encoding-type=url&max-uploads=1000&prefix=dir%2F")
	if _, err := c.CompleteMultipart(ctx, &CompleteInput{Key: key, UploadID: id, Parts: []Part{*p2, *p1}}); err != nil {
		t.Fatal(err)
	}
	r := one("complete")
	expect(r, "POST", path+"?uploadId="+id, "Content-Type", "application/xml")
	want := `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&#34;` + p1.ETag + `&#34;</ETag></Part><Part><PartNumber>2</PartNumber>`
	if !strings.HasPrefix(string(r.Body), want) {
		t.Errorf("complete body %s", r.Body)
	}
	if err := c.AbortMultipart(ctx, key, "gone"); err != nil {
		t.Errorf("abort of a finished upload: %v", err)
	}
	expect(one("abort"), "DELETE", path+"?uploadId=gone")

	if _, err := c.List(ctx, &ListInput{Prefix: "dir/", Delimiter: "/", Token: "dir/a b", MaxKeys: 2}); err != nil {
		t.Fatal(err)
	}
	expect(one("list"), "GET", "/?delimiter=%2F&encoding-type=url&marker=dir%2Fa%20b&max-keys=2&prefix=dir%2F")
	if _, err := c.DeleteMany(ctx, []string{key, "copy"}); err != nil {
		t.Fatal(err)
	}
	r = one("delete many")
	expect(r, "POST", "/?delete", "Content-MD5", md5Base64(r.Body), "Content-Type", "application/xml")
	if !strings.HasPrefix(string(r.Body), "<Delete><Quiet>true</Quiet><Object><Key>dir/a b+c%(腾讯云).txt</Key></Object>") {
		t.Errorf("delete body %s", r.Body)
	}
	if err := c.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	expect(one("delete"), "DELETE", path)
	if err := c.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	expect(one("create bucket"), "PUT", "/")
}

// TestCOSSignatureWindow: the signature's validity is now-60s..now+1h by
// the client's clock, widened to the credentials' StartTime/ExpiredTime
// (server clock) so a client clock that is off still signs valid requests.
func TestCOSSignatureWindow(t *testing.T) {
	f := newCOSFake(t)
	c := f.client(t)
	ctx := testCtx(t)
	if _, err := c.Head(ctx, &HeadInput{Key: "x"}); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	r := f.records()[0]
	fields := map[string]string{}
	for _, kv := range strings.Split(r.Header.Get("Authorization"), "&") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	a, b, _ := strings.Cut(fields["q-sign-time"], ";")
	start, _ := strconv.ParseInt(a, 10, 64)
	end, _ := strconv.ParseInt(b, 10, 64)
	now := time.Now().Unix()
	if start < now-62 || start > now-58 || end < now+3598 || end > now+3602 {
		t.Errorf("q-sign-time %d;%d at %d", start, end, now)
	}
	for _, off := range []time.Duration{30 * time.Minute, -2 * time.Hour} {
		f.setCred(func(c *auth.Credentials) {
			c.StartTime, c.ExpiredTime = time.Now().Add(-10*time.Minute), time.Now().Add(2*time.Hour)
		})
		c := f.client(t, func(cfg *Config) { cfg.Now = func() time.Time { return time.Now().Add(off) } })
		if _, err := c.Put(ctx, &PutInput{Key: "k", Body: strings.NewReader("x"), Size: 1}); err != nil {
			t.Errorf("clock off by %v: %v", off, err)
		}
		if n := c.Stats()["PUT"]; n != 1 {
			t.Errorf("clock off by %v: %d PUTs", off, n)
		}
	}
}

// TestCOSClockSkew: permanent keys and a clock two hours fast. The server
// refuses; the client learns the offset from Date and retries once.
func TestCOSClockSkew(t *testing.T) {
	f := newCOSFake(t)
	f.setCred(func(c *auth.Credentials) { c.SessionToken = "" })
	c := f.client(t, func(cfg *Config) { cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } })
	ctx := testCtx(t)
	if _, err := c.Put(ctx, &PutInput{Key: "k", Body: strings.NewReader("x"), Size: 1}); err != nil {
		t.Fatal(err)
	}
	if n := c.Stats()["PUT"]; n != 2 {
		t.Errorf("%d PUTs, want 2", n)
	}
	if off := c.ClockOffset(); (off + 2*time.Hour).Abs() > 3*time.Second {
		t.Errorf("offset %v", off)
	}
}

// TestCOSCRC64 checks x-cos-hash-crc64ecma on uploads and whole GETs.
func TestCOSCRC64(t *testing.T) {
	f := newCOSFake(t)
	c := f.client(t)
	ctx := testCtx(t)
	data := randBytes(200_000, 20)
	// Uploads: a wrong CRC64 from the server means the body was damaged on
	// the way: sent again, and in the end an ErrChecksum.
	wrongCRC := func(n int, match func(*http.Request) bool) {
		f.SetHook(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
			if n == 0 || !match(r) {
				return false
			}
			n--
			w.Header().Set("ETag", `"`+md5hexOf(body)+`"`)
			w.Header().Set(crcHeader, "12345")
			return true
		})
	}
	wrongCRC(2, isPut)
	if _, err := c.Put(ctx, &PutInput{Key: "k", Body: bytes.NewReader(data), Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if n := c.Stats()["PUT"]; n != 3 {
		t.Errorf("%d PUTs, want 3", n)
	}
	wrongCRC(100, isPut)
	_, err := c.Put(ctx, &PutInput{Key: "k2", Body: bytes.NewReader(data), Size: int64(len(data))})
	if !errors.Is(err, ErrChecksum) {
		t.Errorf("put with wrong CRC: %v", err)
	}
	wrongCRC(100, isUploadPart)
	id, _ := c.InitiateMultipart(ctx, &InitiateInput{Key: "mp"})
	_, err = c.UploadPart(ctx, &UploadPartInput{Key: "mp", UploadID: id, PartNumber: 1, Body: bytes.NewReader(data), Size: int64(len(data))})
	if !errors.Is(err, ErrChecksum) {
		t.Errorf("part with wrong CRC: %v", err)
	}
	// A whole GET whose bytes do not match the CRC64: every byte is
	// delivered, then ErrChecksum instead of EOF.
	f.SetHook(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method != "GET" {
			return false
		}
		bad := bytes.Clone(data)
		bad[1000] ^= 1
		w.Header().Set(crcHeader, crcOf(data))
		w.Header().Set("ETag", `"`+md5hexOf(data)+`"`)
		if rg := r.Header.Get("Range"); rg != "" {
			lo, hi, _, _ := parseRange(rg, int64(len(bad)))
			w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(lo, 10)+"-"+strconv.FormatInt(hi-1, 10)+"/"+strconv.Itoa(len(bad)))
			w.WriteHeader(206)
			w.Write(bad[lo:hi])
			return true
		}
		w.Write(bad)
		return true
	})
	out, err := c.Get(ctx, &GetInput{Key: "k", Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if !errors.Is(err, ErrChecksum) || len(got) != len(data) {
		t.Errorf("corrupted whole GET: %d bytes, %v", len(got), err)
	}
	// Ranged reads carry the whole object's CRC64: not checked.
	if got, _ := mustGet(t, c, &GetInput{Key: "k", Offset: 10, Length: 100}); !bytes.Equal(got, data[10:110]) {
		t.Error("ranged read differs")
	}
}

// TestDeleteManyKeyErrors: per-key failures come back; missing keys do not
// count as failures.
func TestDeleteManyKeyErrors(t *testing.T) {
	f := newCOSFake(t)
	c := f.client(t)
	f.SetHook(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method != "POST" {
			return false
		}
		cfXML(w, struct {
			XMLName xml.Name                              `xml:"DeleteResult"`
			Errors  []struct{ Key, Code, Message string } `xml:"Error"`
		}{Errors: []struct{ Key, Code, Message string }{
			{"locked & key", "AccessDenied", "Access Denied"},
			{"gone", "NoSuchKey", "The specified key does not exist."},
		}})
		return true
	})
	failed, err := c.DeleteMany(testCtx(t), []string{"a", "locked & key", "gone"})
	if err != nil || len(failed) != 1 || failed[0] != (DeleteError{Key: "locked & key", Code: "AccessDenied", Message: "Access Denied"}) {
		t.Errorf("%+v %v", failed, err)
	}
}
