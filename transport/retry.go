package transport

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"cosmount/auth"
)

// do sends r until it succeeds or fails for good: retryable failures
// (5xx, throttling, resets, timeouts, truncated answers, 200-with-Error)
// up to MaxRetries times with full-jitter exponential backoff; a clock-skew
// answer once more after correcting the clock; an expired-credentials
// answer once more with fresh credentials. Cancelling ctx stops it at once.
func (c *Client) do(ctx context.Context, r *request) (*response, error) {
	retries := 0
	skewRetried, credRetried := false, false
	for {
		if err := ctx.Err(); err != nil {
			return nil, c.opError(r, err)
		}
		cred, err := c.cfg.Credentials.Retrieve(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, c.opError(r, ctx.Err())
			}
			return nil, &Error{Op: r.op.String(), Key: r.key, Message: "no credentials", Kind: ErrExpiredCredentials, Err: err}
		}
		c.count(r.op)
		resp, err := c.attempt(ctx, r, cred)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, c.opError(r, ctx.Err())
		}
		var e *Error
		if !errors.As(err, &e) {
			return nil, err
		}
		switch {
		case e.Kind == ErrClockSkew && !skewRetried:
			skewRetried = true
			c.correctClock(e.date)
			continue
		case e.Kind == ErrExpiredCredentials && !credRetried:
			credRetried = true
			// "Request has expired" may be our clock rather than the keys.
			c.correctClock(e.date)
			if inv, ok := c.cfg.Credentials.(auth.Invalidator); ok {
				inv.Invalidate(cred)
			}
			continue
		case shouldRetry(e) && retries < c.maxRetries:
			retries++
			if err := sleep(ctx, c.backoff(retries)); err != nil {
				return nil, c.opError(r, err)
			}
			continue
		}
		return nil, err
	}
}

// shouldRetry reports whether another attempt may succeed.
func shouldRetry(e *Error) bool {
	switch e.Kind {
	case ErrServer, ErrThrottled, ErrNetwork:
		return e.StatusCode != http.StatusNotImplemented
	case ErrChecksum:
		// A body damaged on the way: sending it again fixes it.
		return true
	}
	switch e.Code {
	case "RequestTimeout", "InternalError", "ServiceUnavailable":
		return true
	}
	return false
}

// backoff is the wait before retry n (1, 2, ...): uniformly random in
// [0, min(cap, base*2^(n-1))].
func (c *Client) backoff(n int) time.Duration {
	d := c.backoffBase
	for i := 1; i < n && d < c.backoffCap; i++ {
		d *= 2
	}
	d = min(d, c.backoffCap)
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// correctClock sets the signing clock's offset from a server's Date header.
// Date has a resolution of one second, so offsets under two seconds are
// noise and left alone.
func (c *Client) correctClock(server time.Time) {
	if server.IsZero() {
		return
	}
	off := server.Sub(c.localNow())
	if off > -2*time.Second && off < 2*time.Second {
		off = 0
	}
	c.skew.Store(int64(off))
}

// ClockOffset is what the client adds to its clock when signing, learned
// from the server's Date when it answered RequestTimeTooSkewed.
func (c *Client) ClockOffset() time.Duration { return time.Duration(c.skew.Load()) }

// watchdog cancels an attempt after a silence longer than d: while the
// request is sent, every body read restarts it; after the answer's headers
// it runs only while a response-body read is waiting.
type watchdog struct {
	mu      sync.Mutex
	d       time.Duration
	t       *time.Timer
	sending bool
	done    bool
}

// errIdle is the cause an attempt is cancelled with when the watchdog fires.
var errIdle = errors.New("transport: idle timeout")

// idleTimeout is the error a timed-out attempt reports: a net.Error whose
// Timeout() is true.
type idleTimeout struct{}

func (idleTimeout) Error() string   { return "no progress within the request timeout" }
func (idleTimeout) Timeout() bool   { return true }
func (idleTimeout) Temporary() bool { return true }

func newWatchdog(d time.Duration, cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{d: d, sending: true}
	w.t = time.AfterFunc(d, func() { cancel(errIdle) })
	return w
}

// kickSend notes progress while sending.
func (w *watchdog) kickSend() {
	w.mu.Lock()
	if w.sending && !w.done {
		w.t.Reset(w.d)
	}
	w.mu.Unlock()
}

// received notes that the answer's headers came (or the round trip
// failed): from now on only arm/disarm run the timer.
func (w *watchdog) received() {
	w.mu.Lock()
	w.sending = false
	w.t.Stop()
	w.mu.Unlock()
}

// arm starts the timer before a body read.
func (w *watchdog) arm() {
	w.mu.Lock()
	if !w.done {
		w.t.Reset(w.d)
	}
	w.mu.Unlock()
}

// disarm stops it after the read.
func (w *watchdog) disarm() {
	w.mu.Lock()
	w.t.Stop()
	w.mu.Unlock()
}

// stop ends it for good.
func (w *watchdog) stop() {
	w.mu.Lock()
	w.done = true
	w.t.Stop()
	w.mu.Unlock()
}
