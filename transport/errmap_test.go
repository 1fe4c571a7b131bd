package transport

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		status        int
		code, message string
		want          error
	}{
		{404, "NoSuchKey", "", ErrNotFound},
		{404, "NoSuchUpload", "", ErrNotFound},
		{404, "", "", ErrNotFound},
		{403, "AccessDenied", "Access Denied.", ErrAccessDenied},
		{403, "AccessDenied", "Request has expired", ErrExpiredCredentials},
		{403, "SignatureDoesNotMatch", "", ErrAccessDenied},
		{403, "", "", ErrAccessDenied},
		{400, "ExpiredToken", "", ErrExpiredCredentials},
		{403, "InvalidAccessKeyId", "", ErrExpiredCredentials},
		{400, "TokenRefreshRequired", "", ErrExpiredCredentials},
		{400, "InvalidToken", "", ErrExpiredCredentials},
		{403, "RequestTimeTooSkewed", "", ErrClockSkew},
		{503, "SlowDown", "", ErrThrottled},
		{503, "", "", ErrThrottled},
		{429, "", "", ErrThrottled},
		{500, "InternalError", "", ErrServer},
		{502, "", "", ErrServer},
		{501, "NotImplemented", "", ErrInvalidRequest},
		{412, "PreconditionFailed", "", ErrPreconditionFailed},
		{412, "", "", ErrPreconditionFailed},
		{400, "EntityTooLarge", "", ErrTooLarge},
		{413, "", "", ErrTooLarge},
		{409, "BucketAlreadyOwnedByYou", "", ErrConflict},
		{400, "InvalidArgument", "", ErrInvalidRequest},
		{416, "InvalidRange", "", ErrInvalidRequest},
		{200, "InternalError", "", ErrServer},
		{200, "SlowDown", "", ErrThrottled},
		{200, "InvalidPart", "", ErrInvalidRequest},
	} {
		if got := kindOf(tc.status, tc.code, tc.message); got != tc.want {
			t.Errorf("%d %s %q: %v, want %v", tc.status, tc.code, tc.message, got, tc.want)
		}
	}
}

// TestErrorBodies: whatever the body, an error answer gives a typed error
// with its status and request id.
func TestErrorBodies(t *testing.T) {
	f := newCOSFake(t)
	c := f.client(t, func(cfg *Config) { cfg.MaxRetries = -1 })
	ctx := testCtx(t)
	for _, tc := range []struct {
		status    int
		body      string
		kind      error
		code, msg string
		ctype     string
	}{
		{404, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><RequestId>body-id</RequestId></Error>`,
			ErrNotFound, "NoSuchKey", "The specified key does not exist.", "application/xml"},
		{404, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Mess`, ErrNotFound, "NoSuchKey", "", "application/xml"},
		{403, `<Error><Code>AccessDenied</Code><Message>Request has expired</Message>`, ErrExpiredCredentials, "AccessDenied", "Request has expired", ""},
		{502, `<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>`, ErrServer, "", "", "text/html"},
		{503, ``, ErrThrottled, "", "", ""},
		{403, ``, ErrAccessDenied, "", "", ""},
		{400, `not xml at all`, ErrInvalidRequest, "", "", "text/plain"},
		{500, `<?xml version="1.0"?><ListBucketResult></ListBucketResult>`, ErrServer, "", "", "application/xml"},
		{400, "<Error><Code>InvalidArgument</Code><Message>" + strings.Repeat("x", 2000) + "</Message></Error>", ErrInvalidRequest, "InvalidArgument", strings.Repeat("x", maxMessage) + "...", ""},
	} {
		f.SetHook(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
			w.Header().Set("x-cos-request-id", "hdr-id")
			if tc.ctype != "" {
				w.Header().Set("Content-Type", tc.ctype)
			}
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
			return true
		})
		_, err := c.Get(ctx, &GetInput{Key: "k", Length: -1})
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%d %q: %v", tc.status, tc.body, err)
			continue
		}
		if !errors.Is(err, tc.kind) || e.StatusCode != tc.status || e.Code != tc.code || e.Message != tc.msg || e.RequestID != "hdr-id" || e.Op != "GET" || e.Key != "k" {
			t.Errorf("%d %.40q: %#v", tc.status, tc.body, e)
		}
	}
	// A HEAD has no body: its status and headers say what they can.
	f.SetHook(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		w.WriteHeader(http.StatusPreconditionFailed)
		return true
	})
	if _, err := c.Head(ctx, &HeadInput{Key: "k"}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("head 412: %v", err)
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Op: "PUT", Key: "a/b", StatusCode: 403, Code: "AccessDenied", Message: "Access Denied.", RequestID: "NjA1", Kind: ErrAccessDenied}
	if got := e.Error(); got != `PUT "a/b": HTTP 403 AccessDenied: Access Denied. (request id NjA1)` {
		t.Errorf("%s", got)
	}
	if !errors.Is(e, ErrAccessDenied) || errors.Is(e, ErrNotFound) {
		t.Error("Is")
	}
	ne := &Error{Op: "GET", Key: "k", Kind: ErrNetwork, Err: io.ErrUnexpectedEOF}
	if !errors.Is(ne, io.ErrUnexpectedEOF) || !errors.Is(ne, ErrNetwork) {
		t.Error("network error wrapping")
	}
}
