package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Refresh timing defaults.
const (
	MinRefreshMargin  = 5 * time.Second
	MaxRefreshMargin  = 5 * time.Minute
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
	DefaultSourceWait = 2 * time.Minute
)

// RefreshMargin is how long before their expiry keys that live lifetime
// are refreshed: a third of the lifetime, clamped to [5 s, 5 min], and never
// more than half the lifetime. Keys valid 15 min are refreshed 5 min
// before they expire, keys valid 12 s with 5 s to go, keys valid 6 s with
// 3 s to go. The lifetime is ExpiredTime-StartTime when the source gives a
// StartTime, else the time from the fetch to ExpiredTime.
func RefreshMargin(lifetime time.Duration) time.Duration {
	m := min(max(lifetime/3, MinRefreshMargin), MaxRefreshMargin)
	return min(m, lifetime/2)
}

// RefresherOptions tunes a Refresher; zero values mean the defaults.
type RefresherOptions struct {
	Now        func() time.Time // the clock; nil means time.Now
	MinBackoff time.Duration    // first wait after a failed refresh; DefaultMinBackoff
	MaxBackoff time.Duration    // longest wait between attempts; DefaultMaxBackoff
	Timeout    time.Duration    // bound on one call of the source; DefaultSourceWait
	// Logf, when set, is told of refreshes and failures, never with the
	// Refresher's lock held. Nothing secret is ever passed to it.
	Logf func(format string, args ...any)
}

// Refresher is the one Provider a mount signs with. It fetches keys from
// its source, hands the current keys to every caller, and refreshes
// temporary keys ahead of their expiry (see RefreshMargin):
//
//   - one refresh at a time: concurrent callers share it (singleflight);
//   - while a refresh runs, callers keep getting the still-valid current
//     keys; they wait only when there are no keys, or they have really
//     expired, or the server refused them (Invalidate);
//   - a refresh that fails, or brings back the same keys, is retried after
//     a backoff (MinBackoff doubling to MaxBackoff, at most half the
//     remaining validity, and at most a few seconds once they have
//     expired), and the current keys are used until they really expire;
//   - permanent keys (zero ExpiredTime) are fetched once and never
//     refreshed, except from a source that reads files (key files, a
//     passwd file, an STS file without a token): it is read again when the
//     server refuses its keys (Invalidate), and every few minutes when it
//     says so (key files with a token file), since the files can be
//     rewritten under a running mount.
type Refresher struct {
	src    Provider
	opts   RefresherOptions
	reread bool           // src reads files: its permanent keys are re-read on Invalidate
	every  time.Duration  // and this often when not zero
	bg     sync.WaitGroup // running refreshes; tests wait on it

	mu        sync.Mutex
	have      bool        // cur holds keys once fetched
	cur       Credentials //
	refreshAt time.Time   // refresh cur from then on
	stale     bool        // the server refused cur: do not hand it out without trying a refresh
	retryAt   time.Time   // no new source call before then (backoff)
	tries     int         // refreshes in a row that brought no new keys
	lastErr   error       // of the last failed refresh, nil after a good one
	done      chan struct{}
	// done is non-nil while a refresh runs; closed when it has updated
	// the state above.
}

var (
	_ Provider    = (*Refresher)(nil)
	_ Invalidator = (*Refresher)(nil)
)

// NewRefresher returns a Refresher over src. It fetches nothing until the
// first Retrieve.
func NewRefresher(src Provider, opts RefresherOptions) *Refresher {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultSourceWait
	}
	r := &Refresher{src: src, opts: opts}
	if f, ok := src.(fileSource); ok {
		r.reread, r.every = true, f.rereadEvery()
	}
	return r
}

// fileSource is implemented by the sources that read files. The keys they
// give carry no expiry but change when the files are rewritten: a
// Refresher reads them again when the server refuses the keys and, when
// rereadEvery is not zero, that often.
type fileSource interface {
	rereadEvery() time.Duration
}

// Retrieve implements Provider: it returns the current keys, starting a
// refresh in the background when they near their expiry, or waits for a
// refresh when there are no usable keys.
func (r *Refresher) Retrieve(ctx context.Context) (Credentials, error) {
	r.mu.Lock()
	now := r.opts.Now()
	if r.have && r.cur.Permanent() && !r.stale {
		if r.reread && r.done == nil && !r.refreshAt.IsZero() && !now.Before(r.refreshAt) && !now.Before(r.retryAt) {
			r.startLocked() // the files' periodic re-read
		}
		defer r.mu.Unlock()
		return r.cur, nil
	}
	valid := r.validLocked(now)
	if valid && !r.stale {
		if r.done == nil && !now.Before(r.refreshAt) && !now.Before(r.retryAt) {
			r.startLocked()
		}
		defer r.mu.Unlock()
		return r.cur, nil
	}
	if r.done == nil {
		if now.Before(r.retryAt) { // backing off after a failure
			if valid {
				defer r.mu.Unlock()
				return r.cur, nil
			}
			// The keys ran out during the backoff: rather than fail at
			// once, wait for the next attempt when it is near.
			wait := r.retryAt.Sub(now)
			if wait > maxExpiredWait {
				defer r.mu.Unlock()
				return Credentials{}, r.errLocked()
			}
			r.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return Credentials{}, ctx.Err()
			}
			r.mu.Lock()
			r.retryAt = time.Time{}
			r.mu.Unlock()
			return r.Retrieve(ctx)
		}
		r.startLocked()
	}
	done := r.done
	r.mu.Unlock()

	select {
	case <-done:
	case <-ctx.Done():
		return Credentials{}, fmt.Errorf("waiting for credentials: %w", ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.have && (r.cur.Permanent() || r.opts.Now().Before(r.cur.ExpiredTime)) {
		return r.cur, nil // new keys, or the refused ones when nothing better came
	}
	return Credentials{}, r.errLocked()
}

// Invalidate implements Invalidator: when refused are still the current
// keys, the next Retrieve waits for a refresh, which starts now. Refused
// keys that were already replaced are ignored, so many requests refused at
// once cause one refresh. Permanent keys are never refreshed, unless they
// come from files.
func (r *Refresher) Invalidate(refused Credentials) {
	r.mu.Lock()
	if !r.have || (r.cur.Permanent() && !r.reread) || r.stale || !sameKeys(refused, r.cur) {
		r.mu.Unlock()
		return
	}
	r.stale = true
	if r.done == nil {
		r.startLocked()
	}
	r.mu.Unlock()
	r.logf("credentials %s refused by the server; refreshing", refused)
}

// startLocked starts a refresh; r.mu is held and no refresh runs.
func (r *Refresher) startLocked() {
	done := make(chan struct{})
	r.done = done
	r.bg.Add(1)
	go r.refresh(done)
}

// refresh calls the source once and records the outcome. It runs on its
// own context, so a caller giving up does not cancel it for the others.
func (r *Refresher) refresh(done chan struct{}) {
	defer r.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout)
	c, err := r.src.Retrieve(ctx)
	cancel()
	now := r.opts.Now()
	if err == nil {
		err = usable(c, now)
	}
	r.mu.Lock()
	msg := r.recordLocked(c, err, now)
	r.done = nil
	close(done)
	r.mu.Unlock()
	if msg != "" {
		r.logf("%s", msg)
	}
}

// recordLocked updates the state with the outcome of a refresh and says
// what happened, for the log ("" when there is nothing to say).
func (r *Refresher) recordLocked(c Credentials, err error, now time.Time) string {
	valid := r.validLocked(now)
	switch {
	case err != nil:
		r.tries++
		r.lastErr = err
		wait := r.backoffLocked(now)
		r.retryAt = now.Add(wait)
		if valid && r.cur.Permanent() {
			return fmt.Sprintf("re-reading credentials failed: %v; using the current ones, next attempt in %s", err, wait)
		}
		if valid {
			return fmt.Sprintf("refreshing credentials failed: %v; using the current ones (expire in %s), next attempt in %s",
				err, r.cur.ExpiredTime.Sub(now).Round(time.Second), wait)
		}
		return fmt.Sprintf("fetching credentials failed: %v; next attempt in %s", err, wait)
	case r.have && sameKeys(c, r.cur) && c.ExpiredTime.Equal(r.cur.ExpiredTime) && c.Permanent() && !r.stale:
		// A periodic re-read of files that did not change.
		r.tries, r.lastErr, r.retryAt = 0, nil, time.Time{}
		r.refreshAt = r.nextRereadLocked(now)
		return ""
	case r.have && sameKeys(c, r.cur) && c.ExpiredTime.Equal(r.cur.ExpiredTime):
		// The source has nothing newer yet (a CVM role or an STS file
		// not rotated yet): ask again later.
		r.tries++
		r.lastErr = nil
		r.stale = false
		wait := r.backoffLocked(now)
		r.retryAt = now.Add(wait)
		return fmt.Sprintf("the source has no newer credentials than %s yet; next attempt in %s", c, wait)
	}
	r.cur, r.have, r.stale = c, true, false
	r.tries, r.lastErr, r.retryAt = 0, nil, time.Time{}
	if c.Permanent() {
		r.refreshAt = r.nextRereadLocked(now)
		switch {
		case r.reread && r.every > 0:
			return fmt.Sprintf("credentials %s loaded from files, read again every %s and when the server refuses them", c, r.every)
		case r.reread:
			return fmt.Sprintf("credentials %s loaded from a file, read again when the server refuses them", c)
		}
		return fmt.Sprintf("credentials %s loaded (permanent)", c)
	}
	lifetime := c.ExpiredTime.Sub(now)
	if !c.StartTime.IsZero() && c.StartTime.Before(c.ExpiredTime) {
		lifetime = c.ExpiredTime.Sub(c.StartTime)
	}
	margin := RefreshMargin(lifetime)
	r.refreshAt = c.ExpiredTime.Add(-margin)
	return fmt.Sprintf("credentials %s loaded, expire in %s, refreshed from %s before",
		c, c.ExpiredTime.Sub(now).Round(time.Second), margin)
}

// maxExpiredWait is the longest a caller waits, when the keys have run out,
// for a refresh attempt that a backoff put off.
const maxExpiredWait = 3 * time.Second

// backoffLocked is the wait before the next attempt after r.tries fruitless
// refreshes: MinBackoff doubling up to MaxBackoff, and no more than half of
// what remains of the current keys' validity (but at least MinBackoff).
// Once no valid keys remain it is at most maxExpiredWait, whatever the
// tries before the expiry: callers wait for the next attempt rather than
// fail at once, and a source that recovered is asked again within seconds.
func (r *Refresher) backoffLocked(now time.Time) time.Duration {
	d := r.opts.MinBackoff << min(max(r.tries-1, 0), 20)
	d = min(d, r.opts.MaxBackoff)
	switch {
	case r.have && r.cur.Permanent():
	case r.have && now.Before(r.cur.ExpiredTime):
		d = min(d, max(r.cur.ExpiredTime.Sub(now)/2, r.opts.MinBackoff))
	default:
		d = min(d, maxExpiredWait)
	}
	return d
}

// validLocked reports whether there are keys that have not expired.
func (r *Refresher) validLocked(now time.Time) bool {
	return r.have && (r.cur.Permanent() || now.Before(r.cur.ExpiredTime))
}

// nextRereadLocked is when permanent keys from files are read again
// unasked: zero for never.
func (r *Refresher) nextRereadLocked(now time.Time) time.Time {
	if !r.reread || r.every <= 0 {
		return time.Time{}
	}
	return now.Add(r.every)
}

// errLocked explains why there are no usable keys.
func (r *Refresher) errLocked() error {
	err := r.lastErr
	if err == nil {
		err = errors.New("the source has no newer keys")
	}
	if r.have {
		return fmt.Errorf("credentials expired at %s and could not be refreshed: %w",
			r.cur.ExpiredTime.UTC().Format(time.RFC3339), err)
	}
	return err
}

func (r *Refresher) logf(format string, args ...any) {
	if r.opts.Logf != nil {
		r.opts.Logf(format, args...)
	}
}

// usable checks what a source returned.
func usable(c Credentials, now time.Time) error {
	if c.SecretID == "" || c.SecretKey == "" {
		return errors.New("the source returned an empty SecretId or SecretKey")
	}
	return checkTimes(c, now)
}

// sameKeys compares the secrets, not the times.
func sameKeys(a, b Credentials) bool {
	return a.SecretID == b.SecretID && a.SecretKey == b.SecretKey && a.SessionToken == b.SessionToken
}
