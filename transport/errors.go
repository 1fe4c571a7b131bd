package transport

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel kinds; test with errors.Is(err, transport.ErrNotFound).
var (
	ErrNotFound           = errors.New("not found")
	ErrAccessDenied       = errors.New("access denied")
	ErrPreconditionFailed = errors.New("precondition failed")
	ErrExpiredCredentials = errors.New("credentials expired or unknown")
	ErrClockSkew          = errors.New("request time too skewed")
	ErrThrottled          = errors.New("throttled")
	ErrInvalidRequest     = errors.New("invalid request")
	ErrServer             = errors.New("server error")
	ErrTooLarge           = errors.New("entity too large")
	ErrConflict           = errors.New("conflict")
	ErrChecksum           = errors.New("checksum mismatch")
	ErrBadConfig          = errors.New("bad configuration")
	// ErrNetwork is a failure without an answer: a reset or refused
	// connection, a timeout, a truncated body. Err holds the cause.
	ErrNetwork = errors.New("network error")
)

// Error is a failed bucket call. errors.Is(err, Kind) holds.
type Error struct {
	Op         string // "HEAD", "GET", "PUT", "LIST", "UploadPart", ...
	Key        string
	StatusCode int // 0 when no answer came
	Code       string
	Message    string
	RequestID  string
	Kind       error // one of the sentinels above
	Err        error // underlying cause (network error), may be nil

	date time.Time // the answer's Date header, for clock correction
}

func (e *Error) Error() string {
	s := e.Op
	if e.Key != "" {
		s += " " + fmt.Sprintf("%q", e.Key)
	}
	if e.StatusCode != 0 {
		s += fmt.Sprintf(": HTTP %d", e.StatusCode)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	return s
}

// Is reports whether target is e's kind.
func (e *Error) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }
