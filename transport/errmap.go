package transport

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"cosmount/auth"
)

// xmlError is the <Error> body of a failed call.
type xmlError struct {
	XMLName   xml.Name
	Code      string `xml:"Code"`
	Message   string `xml:"Message"`
	RequestID string `xml:"RequestId"`
}

const maxMessage = 512

// httpError turns a failed answer into an *Error: the Code and Message
// from an XML body when there is one (even a truncated one), the request
// id from the headers, and a kind from the code or else the status. An
// HTML, empty or cut-off body still gives a typed error.
func (c *Client) httpError(r *request, resp *http.Response, body []byte, cred auth.Credentials) *Error {
	e := &Error{Op: r.op.String(), Key: r.key, StatusCode: resp.StatusCode, RequestID: requestID(resp.Header)}
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		e.date = d
	}
	if x, ok := parseErrorBody(body); ok {
		e.Code, e.Message = x.Code, x.Message
		if e.RequestID == "" {
			e.RequestID = strings.TrimSpace(x.RequestID)
		}
	}
	if len(e.Message) > maxMessage {
		e.Message = e.Message[:maxMessage] + "..."
	}
	e.Kind = kindOf(resp.StatusCode, e.Code, e.Message)
	// A HEAD answer has no body: a 403 with keys that have run out by our
	// clock is taken as expiry, so that the keys get refreshed.
	if e.Code == "" && resp.StatusCode == http.StatusForbidden &&
		!cred.ExpiredTime.IsZero() && !c.now().Before(cred.ExpiredTime) {
		e.Kind = ErrExpiredCredentials
	}
	return e
}

// parseErrorBody reads an <Error> document, accepting one cut short after
// some of its fields.
func parseErrorBody(body []byte) (xmlError, bool) {
	var x xmlError
	if len(bytes.TrimSpace(body)) == 0 {
		return x, false
	}
	_ = xml.Unmarshal(body, &x)
	if x.XMLName.Local != "Error" {
		return xmlError{}, false
	}
	x.Code, x.Message = strings.TrimSpace(x.Code), strings.TrimSpace(x.Message)
	return x, true
}

// isErrorBody reports whether an XML body's root element is <Error>.
func isErrorBody(body []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local == "Error"
		}
	}
}

// kindOf maps an S3/COS error code, or failing that the HTTP status, to
// one of the sentinels.
func kindOf(status int, code, message string) error {
	switch code {
	case "NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NoSuchVersion", "NotFound":
		return ErrNotFound
	case "PreconditionFailed":
		return ErrPreconditionFailed
	case "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId", "InvalidClientTokenId",
		"TokenRefreshRequired", "InvalidToken", "InvalidSecurityToken",
		"XAdminUserNotFound": // versitygw's word for an unknown access key
		return ErrExpiredCredentials
	case "RequestTimeTooSkewed", "RequestExpired":
		return ErrClockSkew
	case "AccessDenied":
		// COS and S3 say so when a signature's validity has passed.
		if strings.Contains(strings.ToLower(message), "request has expired") {
			return ErrExpiredCredentials
		}
		return ErrAccessDenied
	case "SignatureDoesNotMatch", "AllAccessDisabled", "AccountProblem", "InvalidObjectState":
		return ErrAccessDenied
	case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
		"TooManyRequests", "RequestRateLimited", "RequestThrottled":
		return ErrThrottled
	case "EntityTooLarge":
		return ErrTooLarge
	case "BucketAlreadyOwnedByYou", "BucketAlreadyExists", "OperationAborted", "BucketNotEmpty":
		return ErrConflict
	case "InternalError", "ServiceUnavailable":
		return ErrServer
	case "NotImplemented", "InvalidPart", "InvalidPartOrder", "EntityTooSmall", "InvalidArgument",
		"InvalidRequest", "MalformedXML", "InvalidRange", "InvalidDigest", "InvalidBucketName",
		"KeyTooLong", "MetadataTooLarge", "InvalidObjectName":
		return ErrInvalidRequest
	case "BadDigest":
		// The body changed on the way; sending it again may do.
		return ErrChecksum
	}
	switch {
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusPreconditionFailed:
		return ErrPreconditionFailed
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return ErrAccessDenied
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		// S3 answers 503 for SlowDown; a HEAD's 503 has no code to say so.
		return ErrThrottled
	case status == http.StatusConflict:
		return ErrConflict
	case status == http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case status == http.StatusRequestTimeout:
		return ErrNetwork
	case status == http.StatusNotImplemented:
		return ErrInvalidRequest
	case status >= 500, status/100 == 2:
		// 2xx here is a 200 whose body was an <Error>: a failure while
		// the server copied or assembled, which is worth another try.
		return ErrServer
	}
	return ErrInvalidRequest
}

func requestID(h http.Header) string {
	if id := h.Get("x-cos-request-id"); id != "" {
		return id
	}
	return h.Get("x-amz-request-id")
}

// opError is a failure with no answer from the server: cancellation, a
// body that cannot be rewound. It has no kind.
func (c *Client) opError(r *request, err error) *Error {
	return &Error{Op: r.op.String(), Key: r.key, Err: err}
}

// netError is a failed round trip or body read: a cancelled ctx gives an
// error without kind; anything else is ErrNetwork, retryable.
func (c *Client) netError(r *request, ctx, actx context.Context, err error) *Error {
	if ctx.Err() != nil {
		return c.opError(r, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if context.Cause(actx) == errIdle {
		err = idleTimeout{}
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &Error{Op: r.op.String(), Key: r.key, Kind: ErrNetwork, Err: err}
}
