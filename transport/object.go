package transport

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Head returns an object's attributes and metadata. A HEAD refused with
// 400 or 403 carries no body to say why; a one-byte GET (counted as "GET")
// then asks, so that expired keys are refreshed and the error has a code.
func (c *Client) Head(ctx context.Context, in *HeadInput) (*ObjectInfo, error) {
	r := &request{op: opHead, method: http.MethodHead, key: in.Key}
	if err := checkKey(r, in.Key); err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, r)
	var e *Error
	if errors.As(err, &e) && e.Code == "" && (e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusForbidden) {
		// A HEAD answer has no body to say why it failed. Ask again with
		// a one-byte GET, whose error document names the code (and whose
		// expired-credentials answer gets the keys refreshed).
		perr := c.probe(ctx, in.Key)
		var pe *Error
		switch {
		case errors.As(perr, &pe) && pe.Code != "" && isAuthKind(pe.Kind):
			pe.Op = r.op.String()
			return nil, pe
		case perr == nil || errors.As(perr, &pe) && pe.Code != "":
			// The GET got past authentication: try the HEAD once more.
			resp, err = c.do(ctx, r)
		}
	}
	if err != nil {
		return nil, err
	}
	info := c.infoFromHeader(in.Key, resp.Header)
	return &info, nil
}

// probe GETs the first byte of key, for an error document.
func (c *Client) probe(ctx context.Context, key string) error {
	r := &request{op: opGet, method: http.MethodGet, key: key, header: http.Header{}, stream: true}
	r.header.Set("Range", "bytes=0-0")
	resp, err := c.do(ctx, r)
	if err == nil {
		resp.stream.Close()
	}
	return err
}

func isAuthKind(k error) bool {
	return k == ErrAccessDenied || k == ErrExpiredCredentials || k == ErrClockSkew
}

// Put uploads one object in a single request. The body is sent from its
// current offset, Size bytes (Size < 0: to its end), and rewound for a
// retry.
func (c *Client) Put(ctx context.Context, in *PutInput) (*PutOutput, error) {
	r := &request{op: opPut, method: http.MethodPut, key: in.Key, header: http.Header{},
		crc: c.cfg.Flavor == FlavorCOS}
	if err := checkKey(r, in.Key); err != nil {
		return nil, err
	}
	if err := r.setBody(in.Body, in.Size); err != nil {
		return nil, invalid(r, "body: "+err.Error())
	}
	if in.ContentType != "" {
		r.header.Set("Content-Type", in.ContentType)
	}
	if err := c.setMeta(r, in.Metadata); err != nil {
		return nil, err
	}
	if c.cfg.CheckContentMD5 || c.cfg.AddMetaMD5 {
		sum, err := bodyMD5(r)
		if err != nil {
			return nil, c.opError(r, err)
		}
		if c.cfg.CheckContentMD5 {
			r.header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum))
		}
		if c.cfg.AddMetaMD5 {
			r.header.Set(c.hdr+"meta-md5", hex.EncodeToString(sum))
		}
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	return &PutOutput{ETag: unquote(resp.Header.Get("ETag"))}, nil
}

// Delete removes an object; a missing object is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	r := &request{op: opDelete, method: http.MethodDelete, key: key}
	if err := checkKey(r, key); err != nil {
		return err
	}
	_, err := c.do(ctx, r)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// DeleteMany removes keys, 1,000 per request (quiet mode), and returns the
// keys the server could not delete. Missing keys count as deleted. Keys
// that XML 1.0 cannot hold (control characters such as \x01) are deleted
// one request each, after the batches: in the request's XML they would
// name another key. The error is for a whole request failing; keys of the
// requests before it have been deleted.
func (c *Client) DeleteMany(ctx context.Context, keys []string) ([]DeleteError, error) {
	var failed []DeleteError
	var single []string
	if i := slices.IndexFunc(keys, notXMLText); i >= 0 {
		batchable := slices.Clone(keys[:i])
		for _, k := range keys[i:] {
			if notXMLText(k) {
				single = append(single, k)
			} else {
				batchable = append(batchable, k)
			}
		}
		keys = batchable
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), maxDeleteBatch)]
		keys = keys[len(batch):]
		doc := deleteRequest{Quiet: true, Objects: make([]deleteRequObj, len(batch))}
		for i, k := range batch {
			doc.Objects[i].Key = k
		}
		b, err := xml.Marshal(doc)
		if err != nil {
			return failed, err
		}
		r := &request{op: opDeleteMany, method: http.MethodPost, bucket: true, query: "delete"}
		r.setXML(b, true) // S3 requires Content-MD5 here
		resp, err := c.do(ctx, r)
		if err != nil {
			return failed, err
		}
		var res deleteResult
		if err := decodeXML(r, resp, &res); err != nil {
			return failed, err
		}
		for _, e := range res.Errors {
			if e.Code == "NoSuchKey" {
				continue
			}
			failed = append(failed, DeleteError{Key: e.Key, Code: e.Code, Message: e.Message})
		}
	}
	for _, k := range single {
		err := c.Delete(ctx, k)
		var e *Error
		switch {
		case err == nil:
		case errors.As(err, &e) && (e.Code != "" || e.Kind == ErrInvalidRequest):
			// This key's answer, as a batch would have given it.
			failed = append(failed, DeleteError{Key: k, Code: e.Code, Message: e.Message})
		default:
			return failed, err
		}
	}
	return failed, nil
}

// notXMLText reports whether s holds what XML 1.0 cannot carry: bytes that
// are not UTF-8, control characters other than tab, newline and carriage
// return, U+FFFE and U+FFFF. encoding/xml writes U+FFFD in their place.
func notXMLText(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
		case r < 0x20 || r == 0xFFFE || r == 0xFFFF:
			return true
		}
	}
	return false
}

// Copy copies an object within the bucket on the server, keeping its
// metadata or replacing it.
func (c *Client) Copy(ctx context.Context, in *CopyInput) (*CopyOutput, error) {
	r := &request{op: opCopy, method: http.MethodPut, key: in.DstKey, header: http.Header{}, errorIn200: true}
	if err := checkKey(r, in.DstKey); err != nil {
		return nil, err
	}
	if err := checkKey(r, in.SrcKey); err != nil {
		return nil, err
	}
	r.header.Set(c.hdr+"copy-source", c.copySource(in.SrcKey))
	if in.SrcIfMatch != "" {
		r.header.Set(c.hdr+"copy-source-if-match", quote(in.SrcIfMatch))
	}
	if in.ReplaceMetadata {
		r.header.Set(c.hdr+"metadata-directive", c.directive(true))
		if in.ContentType != "" {
			r.header.Set("Content-Type", in.ContentType)
		}
		if err := c.setMeta(r, in.Metadata); err != nil {
			return nil, err
		}
	} else {
		r.header.Set(c.hdr+"metadata-directive", c.directive(false))
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	var res copyResult
	if err := decodeXML(r, resp, &res); err != nil {
		return nil, err
	}
	return &CopyOutput{ETag: unquote(res.ETag)}, nil
}

// CreateBucket creates the client's bucket (tests, demo). A bucket that is
// already ours is not an error.
func (c *Client) CreateBucket(ctx context.Context) error {
	r := &request{op: opCreateBucket, method: http.MethodPut, bucket: true}
	if c.cfg.Flavor == FlavorS3 && c.region != defaultS3Region {
		b, _ := xml.Marshal(createBucketConfig{LocationConstraint: c.region})
		r.setXML(b, false)
	}
	_, err := c.do(ctx, r)
	var e *Error
	if errors.As(err, &e) && e.Code == "BucketAlreadyOwnedByYou" {
		return nil
	}
	return err
}

// directive is the metadata-directive value: COS spells it Copy/Replaced,
// S3 COPY/REPLACE.
func (c *Client) directive(replace bool) string {
	switch {
	case c.cfg.Flavor == FlavorCOS && replace:
		return "Replaced"
	case c.cfg.Flavor == FlavorCOS:
		return "Copy"
	case replace:
		return "REPLACE"
	}
	return "COPY"
}

// copySource names a key of this bucket for x-…-copy-source: COS wants
// "bucket-appid.cos.region.myqcloud.com/key", S3 "/bucket/key"; the key
// is percent-encoded but for its slashes.
func (c *Client) copySource(key string) string {
	if c.cfg.Flavor == FlavorCOS {
		return c.copyHost + "/" + escapePath(key)
	}
	return "/" + c.cfg.Bucket + "/" + escapePath(key)
}

// infoFromHeader reads an object's attributes from HEAD or GET headers.
func (c *Client) infoFromHeader(key string, h http.Header) ObjectInfo {
	info := ObjectInfo{
		Key:          key,
		ETag:         unquote(h.Get("ETag")),
		LastModified: parseTime(h.Get("Last-Modified")),
		ContentType:  h.Get("Content-Type"),
		StorageClass: h.Get(c.hdr + "storage-class"),
		CRC64:        h.Get(crcHeader),
	}
	info.Size, _ = strconv.ParseInt(h.Get("Content-Length"), 10, 64)
	prefix := c.hdr + "meta-"
	var dec mime.WordDecoder
	for name, vals := range h {
		lname := strings.ToLower(name)
		if !strings.HasPrefix(lname, prefix) || len(vals) == 0 || len(lname) == len(prefix) {
			continue
		}
		if info.Metadata == nil {
			info.Metadata = map[string]string{}
		}
		v := vals[0]
		if strings.Contains(v, "=?") {
			if d, err := dec.DecodeHeader(v); err == nil {
				v = d
			}
		}
		info.Metadata[lname[len(prefix):]] = v
	}
	return info
}

// setMeta adds user metadata headers. Names must be header tokens; values
// that are not printable ASCII are sent RFC 2047-encoded (as AWS SDKs do).
func (c *Client) setMeta(r *request, meta map[string]string) error {
	for k, v := range meta {
		if k == "" || !isToken(k) {
			return invalid(r, "metadata name "+strconv.Quote(k)+" is not an HTTP token")
		}
		if !isPlainASCII(v) {
			if !utf8.ValidString(v) {
				return invalid(r, "metadata "+k+" is not valid UTF-8")
			}
			v = mime.BEncoding.Encode("UTF-8", v)
		}
		r.header.Set(c.hdr+"meta-"+strings.ToLower(k), v)
	}
	return nil
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch <= ' ' || ch >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, ch) >= 0 {
			return false
		}
	}
	return true
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return !strings.HasPrefix(s, "=?")
}

// bodyMD5 hashes the request body from its start and rewinds it.
func bodyMD5(r *request) ([]byte, error) {
	h := md5.New()
	if r.body != nil && r.size > 0 {
		if _, err := r.body.Seek(r.start, io.SeekStart); err != nil {
			return nil, err
		}
		n, err := io.CopyN(h, r.body, r.size)
		if err != nil {
			return nil, err
		}
		if n != r.size {
			return nil, io.ErrUnexpectedEOF
		}
		if _, err := r.body.Seek(r.start, io.SeekStart); err != nil {
			return nil, err
		}
	}
	return h.Sum(nil), nil
}

func checkKey(r *request, key string) error {
	if key == "" {
		return invalid(r, "empty key")
	}
	if !utf8.ValidString(key) {
		return invalid(r, "key is not valid UTF-8")
	}
	return nil
}

// invalid is a call refused before it is sent.
func invalid(r *request, msg string) *Error {
	return &Error{Op: r.op.String(), Key: r.key, Message: msg, Kind: ErrInvalidRequest}
}
