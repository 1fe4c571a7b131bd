package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cosTokenHeader carries temporary credentials' token on COS requests
// (canonical form of x-cos-security-token).
const cosTokenHeader = "X-Cos-Security-Token"

// SignCOS signs req with COS's q-sign-algorithm=sha1 scheme. It sets
// x-cos-security-token when cred carries a token (and removes one left by an
// earlier signing when it does not), then sets Authorization, signing host
// plus every header present in req.Header and every query parameter, valid
// from start to end (whole unix seconds).
//
// The canonical request follows COS's "Request Signature" page:
//
//	HttpString   = lower(method) \n path \n params \n headers \n
//	StringToSign = "sha1" \n KeyTime \n hex(SHA1(HttpString)) \n
//	SignKey      = hex(HMAC-SHA1(SecretKey, KeyTime))
//	Signature    = hex(HMAC-SHA1(SignKey, StringToSign))
//
// where path is req.URL.Path as is (decoded, "/" when empty), params and
// headers are "k=v" joined by "&", keys UrlEncoded then lowercased, values
// UrlEncoded, sorted by key (then by value), and UrlEncode escapes every byte
// except A-Z a-z 0-9 - _ . ~ as %XX.
//
// What is signed, precisely:
//   - host is req.Host, or req.URL.Host when that is empty — what net/http
//     puts on the wire. A "Host" entry in req.Header is ignored.
//   - every other entry of req.Header except Authorization (so that a request
//     can be signed again, for a retry, without signing its old signature).
//     Content-Length is signed only when the caller put it in req.Header;
//     net/http sends req.ContentLength, so keep the two equal.
//   - every query parameter of req.URL.RawQuery, parsed the way
//     url.ParseQuery does (pairs with a raw ';' or a bad %-escape are
//     dropped, '+' means space); a parameter without a value is "k=".
//
// Differences from the reference SDK (cos-go-sdk-v5), all deliberate: the SDK
// signs only headers on its NeedSignHeaders list plus x-cos-* and x-ci-*
// (SignCOS signs every header, as COS allows); it signs req.Host even when
// empty and the path "" when req.URL.Path is empty (SignCOS signs the host
// and path net/http actually sends). For requests without those cases the
// two agree byte for byte; internal/cosoracle checks that.
func SignCOS(req *http.Request, cred Credentials, start, end time.Time) {
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	if cred.SessionToken != "" {
		req.Header.Set(cosTokenHeader, cred.SessionToken)
	} else {
		req.Header.Del(cosTokenHeader)
	}
	req.Header.Set("Authorization", cosAuthorization(req, cred, start.Unix(), end.Unix()))
}

// cosPair is one signed header or query parameter.
type cosPair struct {
	key   []byte // UrlEncoded, then lowercased
	value string // as sent; UrlEncoded when written
}

func compareCOSPairs(a, b cosPair) int {
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c
	}
	return strings.Compare(a.value, b.value)
}

// cosAuthorization computes the Authorization value for req. It reads req
// and never changes it.
func cosAuthorization(req *http.Request, cred Credentials, start, end int64) string {
	var scratch [24]cosPair
	httpString, params, headers := cosHTTPString(req, &scratch)
	httpSum := sha1.Sum(httpString)

	// KeyTime, also the q-sign-time.
	var ktBuf [48]byte
	kt := strconv.AppendInt(ktBuf[:0], start, 10)
	kt = append(kt, ';')
	kt = strconv.AppendInt(kt, end, 10)

	// StringToSign.
	var stsBuf [5 + 48 + 1 + 2*sha1.Size + 1]byte
	sts := append(stsBuf[:0], "sha1\n"...)
	sts = append(sts, kt...)
	sts = append(sts, '\n')
	sts = hex.AppendEncode(sts, httpSum[:])
	sts = append(sts, '\n')

	// SignKey is the hex text of the first HMAC; that text keys the second.
	var signKey [2 * sha1.Size]byte
	sum := hmacSHA1([]byte(cred.SecretKey), kt)
	hex.Encode(signKey[:], sum[:])
	sum = hmacSHA1(signKey[:], sts)
	var sig [2 * sha1.Size]byte
	hex.Encode(sig[:], sum[:])

	var b strings.Builder
	b.Grow(len("q-sign-algorithm=sha1&q-ak=&q-sign-time=&q-key-time=&q-header-list=&q-url-param-list=&q-signature=") +
		len(cred.SecretID) + 2*len(kt) + listLen(params) + listLen(headers) + len(sig))
	b.WriteString("q-sign-algorithm=sha1&q-ak=")
	b.WriteString(cred.SecretID)
	b.WriteString("&q-sign-time=")
	b.Write(kt)
	b.WriteString("&q-key-time=")
	b.Write(kt)
	b.WriteString("&q-header-list=")
	writeKeyList(&b, headers)
	b.WriteString("&q-url-param-list=")
	writeKeyList(&b, params)
	b.WriteString("&q-signature=")
	b.Write(sig[:])
	return b.String()
}

// cosHTTPString builds COS's HttpString for req and returns it with the
// sorted query parameters and headers it signs. scratch is room for the
// pairs, so that a typical request needs no allocation for them.
func cosHTTPString(req *http.Request, scratch *[24]cosPair) (httpString []byte, params, headers []cosPair) {
	// Keys of every pair live in one arena; a pair's key is a slice of it. A
	// slice taken before the arena grows stays valid (it keeps the old
	// backing array), so growing is safe.
	arena := make([]byte, 0, 256)
	size := 0 // upper bound of the encoded pairs, for pre-sizing

	// Query parameters, parsed as url.ParseQuery does.
	params = scratch[:0:8]
	for q := req.URL.RawQuery; q != ""; {
		var seg string
		seg, q, _ = strings.Cut(q, "&")
		if seg == "" || strings.IndexByte(seg, ';') >= 0 {
			continue
		}
		k, v, _ := strings.Cut(seg, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			continue
		}
		v, err = url.QueryUnescape(v)
		if err != nil {
			continue
		}
		n := len(arena)
		arena = appendCOSKey(arena, k)
		params = append(params, cosPair{key: arena[n:len(arena):len(arena)], value: v})
		size += 2*(len(arena)-n) + 3*len(v) + 2
	}

	// Headers: host as net/http sends it, then the rest of req.Header.
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	arena = append(arena, "host"...)
	headers = scratch[8:8:len(scratch)]
	headers = append(headers, cosPair{key: arena[len(arena)-4 : len(arena) : len(arena)], value: host})
	size += 8 + 3*len(host) + 2
	for k, vs := range req.Header {
		n := len(arena)
		arena = appendCOSKey(arena, k)
		key := arena[n:len(arena):len(arena)]
		if string(key) == "host" || string(key) == "authorization" {
			arena = arena[:n]
			continue
		}
		for _, v := range vs {
			headers = append(headers, cosPair{key: key, value: v})
			size += 2*len(key) + 3*len(v) + 2
		}
	}
	slices.SortFunc(params, compareCOSPairs)
	slices.SortFunc(headers, compareCOSPairs)

	path := req.URL.Path
	if path == "" {
		path = "/"
	}
	buf := make([]byte, 0, len(req.Method)+len(path)+size+4)
	for i := 0; i < len(req.Method); i++ {
		buf = append(buf, cosLower(req.Method[i]))
	}
	buf = append(buf, '\n')
	buf = append(buf, path...)
	buf = append(buf, '\n')
	buf = appendCOSPairs(buf, params)
	buf = append(buf, '\n')
	buf = appendCOSPairs(buf, headers)
	buf = append(buf, '\n')
	return buf, params, headers
}

// appendCOSPairs appends k=v pairs joined by '&', values UrlEncoded.
func appendCOSPairs(dst []byte, pairs []cosPair) []byte {
	for i, p := range pairs {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, p.key...)
		dst = append(dst, '=')
		dst = appendCOSEncoded(dst, p.value)
	}
	return dst
}

// listLen is the length of the ';'-joined keys of pairs.
func listLen(pairs []cosPair) int {
	n := 0
	for _, p := range pairs {
		n += len(p.key) + 1
	}
	return n
}

// writeKeyList writes the keys of pairs joined by ';' (a key with several
// values appears once per value, as COS's reference SDK does).
func writeKeyList(b *strings.Builder, pairs []cosPair) {
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte(';')
		}
		b.Write(p.key)
	}
}

const (
	signUpperHex = "0123456789ABCDEF"
	signLowerHex = "0123456789abcdef"
)

// cosUnreserved reports whether UrlEncode leaves c as is.
func cosUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

func cosLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// appendCOSEncoded appends COS's UrlEncode of s: every byte but
// A-Z a-z 0-9 - _ . ~ becomes %XX with upper-case hex.
func appendCOSEncoded(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if cosUnreserved(c) {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', signUpperHex[c>>4], signUpperHex[c&15])
		}
	}
	return dst
}

// appendCOSKey appends the lower-cased UrlEncode of a key (the hex digits of
// escapes end up lower-case too, as "lowercase after encoding" implies).
func appendCOSKey(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if cosUnreserved(c) {
			dst = append(dst, cosLower(c))
		} else {
			dst = append(dst, '%', signLowerHex[c>>4], signLowerHex[c&15])
		}
	}
	return dst
}

// hmacSHA1 is HMAC-SHA1 (RFC 2104). Messages up to 128 bytes, which is all
// SignCOS feeds it, are hashed in stack buffers without allocating.
func hmacSHA1(key, msg []byte) [sha1.Size]byte {
	const block = 64
	if len(msg) > 128 {
		// Copies keep key and msg from escaping, so the usual short case
		// stays on the stack.
		m := hmac.New(sha1.New, bytes.Clone(key))
		m.Write(bytes.Clone(msg))
		var out [sha1.Size]byte
		copy(out[:], m.Sum(nil))
		return out
	}
	var k [block]byte
	if len(key) > block {
		h := sha1.Sum(key)
		copy(k[:], h[:])
	} else {
		copy(k[:], key)
	}
	var inner [block + 128]byte
	for i := range k {
		inner[i] = k[i] ^ 0x36
	}
	n := block + copy(inner[block:], msg)
	ih := sha1.Sum(inner[:n])
	var outer [block + sha1.Size]byte
	for i := range k {
		outer[i] = k[i] ^ 0x5c
	}
	copy(outer[block:], ih[:])
	return sha1.Sum(outer[:])
}
