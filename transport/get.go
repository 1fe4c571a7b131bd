package transport

import (
	"context"
	"errors"
	"hash"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Get streams an object, whole or a byte range. The body is never
// buffered whole. Reading it resumes after a dropped connection with a
// ranged GET of the rest (pinned to the first answer's ETag), up to
// MaxRetries times; a whole-object body is checked against the server's
// CRC64 when it sends one, a mismatch surfacing as ErrChecksum at EOF.
// A range that starts at or past the end gives an empty body.
func (c *Client) Get(ctx context.Context, in *GetInput) (*GetOutput, error) {
	r := &request{op: opGet, method: http.MethodGet, key: in.Key, header: http.Header{}, stream: true}
	if err := checkKey(r, in.Key); err != nil {
		return nil, err
	}
	if in.Offset < 0 {
		return nil, invalid(r, "negative offset")
	}
	if in.IfMatch != "" {
		r.header.Set("If-Match", quote(in.IfMatch))
	}
	if in.Length == 0 {
		return c.emptyGet(ctx, in, nil)
	}
	ranged := in.Offset > 0 || in.Length >= 0
	if ranged {
		r.header.Set("Range", rangeHeader(in.Offset, in.Length))
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		var e *Error
		if ranged && errors.As(err, &e) && e.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			return c.emptyGet(ctx, in, err)
		}
		return nil, err
	}
	info := c.infoFromHeader(in.Key, resp.Header)
	b := &getBody{c: c, ctx: ctx, key: in.Key, etag: info.ETag, cur: resp.stream,
		off: in.Offset, remaining: resp.ContentLength}
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		first, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || first != in.Offset {
			resp.stream.Close()
			return nil, &Error{Op: r.op.String(), Key: in.Key, StatusCode: resp.StatusCode,
				Message:   "bad Content-Range " + strconv.Quote(resp.Header.Get("Content-Range")),
				RequestID: requestID(resp.Header), Kind: ErrServer}
		}
		info.Size = total
	case ranged:
		// The server ignored the Range: skip to the offset ourselves, and
		// stop at the length asked for, with or without a Content-Length.
		if _, err := io.CopyN(io.Discard, resp.stream, in.Offset); err != nil {
			resp.stream.Close()
			return nil, &Error{Op: r.op.String(), Key: in.Key, Kind: ErrNetwork, Err: err}
		}
		if b.remaining >= 0 {
			b.remaining = max(b.remaining-in.Offset, 0)
		}
		if in.Length >= 0 && (b.remaining < 0 || in.Length < b.remaining) {
			// Without a Content-Length the object may end before the
			// range does: its end is then the body's.
			b.upTo = b.remaining < 0
			b.remaining = in.Length
			b.limited = true
		}
	default:
		if info.CRC64 != "" {
			b.crc, b.want = crc64.New(crcTable), info.CRC64
		}
	}
	n := b.remaining
	if b.upTo {
		n = -1
	}
	return &GetOutput{Body: b, Info: info, ContentLength: n}, nil
}

// emptyGet answers a zero-length read, or a range that begins at or past
// the end of the object (cause is the server's 416), with an empty body.
func (c *Client) emptyGet(ctx context.Context, in *GetInput, cause error) (*GetOutput, error) {
	info, err := c.Head(ctx, &HeadInput{Key: in.Key})
	if err != nil {
		return nil, err
	}
	if in.IfMatch != "" && unquote(in.IfMatch) != info.ETag {
		return nil, &Error{Op: opGet.String(), Key: in.Key, Message: "ETag changed", Kind: ErrPreconditionFailed}
	}
	if cause != nil && in.Offset < info.Size {
		return nil, cause
	}
	return &GetOutput{Body: io.NopCloser(strings.NewReader("")), Info: *info}, nil
}

func rangeHeader(off, length int64) string {
	if length < 0 {
		return "bytes=" + strconv.FormatInt(off, 10) + "-"
	}
	return "bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+length-1, 10)
}

// parseContentRange reads "bytes first-last/total"; total is -1 for "*".
func parseContentRange(s string) (first, total int64, ok bool) {
	s, found := strings.CutPrefix(strings.TrimSpace(s), "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if tot == "*" {
		return first, -1, true
	}
	total, err = strconv.ParseInt(tot, 10, 64)
	return first, total, err == nil
}

// getBody is a GET's body that resumes after a dropped connection.
type getBody struct {
	c    *Client
	ctx  context.Context
	key  string
	etag string
	cur  io.ReadCloser

	off       int64 // object offset of the next byte
	remaining int64 // bytes still due; -1 when unknown
	limited   bool  // remaining is a limit on a longer stream
	upTo      bool  // remaining is only a limit: the stream may end before
	crc       hash.Hash64
	want      string // the server's CRC64 of the whole object
	resumes   int
	err       error // sticky
}

func (b *getBody) Read(p []byte) (int, error) {
	for {
		if b.err != nil {
			return 0, b.err
		}
		if b.remaining == 0 {
			return 0, b.finish()
		}
		if b.remaining > 0 && int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err := b.cur.Read(p)
		b.off += int64(n)
		if b.remaining > 0 {
			b.remaining -= int64(n)
		}
		if b.crc != nil {
			b.crc.Write(p[:n])
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && (b.remaining <= 0 || b.upTo):
			if n > 0 {
				b.remaining = 0
				return n, nil
			}
			return 0, b.finish()
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		}
		if b.ctx.Err() != nil {
			b.err = &Error{Op: opGet.String(), Key: b.key, Err: b.ctx.Err()}
		} else if rerr := b.resume(err); rerr != nil {
			b.err = rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// finish is the end of the body: EOF, or ErrChecksum.
func (b *getBody) finish() error {
	b.err = io.EOF
	if b.crc != nil && b.want != "" {
		if got := strconv.FormatUint(b.crc.Sum64(), 10); got != b.want {
			b.err = &Error{Op: opGet.String(), Key: b.key, Kind: ErrChecksum,
				Message: "body's CRC64 " + got + " differs from the server's " + b.want}
		}
	}
	return b.err
}

// resume replaces the broken stream with a ranged GET of the rest.
func (b *getBody) resume(cause error) error {
	b.cur.Close()
	b.cur = io.NopCloser(strings.NewReader(""))
	fail := &Error{Op: opGet.String(), Key: b.key, Kind: ErrNetwork, Err: cause}
	if b.resumes >= b.c.maxRetries || b.etag == "" || b.limited {
		return fail
	}
	b.resumes++
	if err := sleep(b.ctx, b.c.backoff(b.resumes)); err != nil {
		return &Error{Op: opGet.String(), Key: b.key, Err: err}
	}
	r := &request{op: opGet, method: http.MethodGet, key: b.key, header: http.Header{}, stream: true}
	r.header.Set("Range", rangeHeader(b.off, b.remaining))
	r.header.Set("If-Match", quote(b.etag))
	resp, err := b.c.do(b.ctx, r)
	if err != nil {
		return err
	}
	first, _, ok := parseContentRange(resp.Header.Get("Content-Range"))
	if resp.StatusCode != http.StatusPartialContent || !ok || first != b.off {
		resp.stream.Close()
		return fail
	}
	b.cur = resp.stream
	return nil
}

func (b *getBody) Close() error {
	if b.err == nil {
		b.err = errors.New("transport: read after Close")
	}
	return b.cur.Close()
}
