package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// fakeSource answers with next(n) on its n-th call (from 1). While gate is
// non-nil, each call first waits for it to be closed.
type fakeSource struct {
	calls atomic.Int32
	mu    sync.Mutex
	gate  chan struct{}
	next  func(n int) (Credentials, error)
}

func (s *fakeSource) Retrieve(ctx context.Context) (Credentials, error) {
	n := int(s.calls.Add(1))
	s.mu.Lock()
	gate, next := s.gate, s.next
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return Credentials{}, ctx.Err()
		}
	}
	return next(n)
}

func (s *fakeSource) set(next func(n int) (Credentials, error)) {
	s.mu.Lock()
	s.next = next
	s.mu.Unlock()
}

func (s *fakeSource) hold() chan struct{} {
	g := make(chan struct{})
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
	return g
}

func (s *fakeSource) open() {
	s.mu.Lock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
	s.mu.Unlock()
}

// rotating hands out keys AKID<n> valid for life from clk's now.
func rotating(clk *fakeClock, life time.Duration) func(int) (Credentials, error) {
	return func(n int) (Credentials, error) {
		return Credentials{SecretID: fmt.Sprintf("AKID%d", n), SecretKey: "key", SessionToken: "tok",
			ExpiredTime: clk.Now().Add(life)}, nil
	}
}

func waitCalls(t *testing.T, s *fakeSource, n int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.calls.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("source called %d times, want %d", s.calls.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRefreshMargin(t *testing.T) {
	for _, tc := range []struct{ life, want time.Duration }{
		{time.Hour, 5 * time.Minute},
		{15 * time.Minute, 5 * time.Minute},
		{6 * time.Minute, 2 * time.Minute},
		{30 * time.Second, 10 * time.Second},
		{12 * time.Second, 5 * time.Second},
		{6 * time.Second, 3 * time.Second},
		{2 * time.Second, time.Second},
	} {
		if got := RefreshMargin(tc.life); got != tc.want {
			t.Errorf("RefreshMargin(%s) = %s, want %s", tc.life, got, tc.want)
		}
	}
}

func TestRefresherSingleflightFirstFetch(t *testing.T) {
	clk := newFakeClock(t0)
	src := &fakeSource{}
	src.set(rotating(clk, time.Hour))
	src.hold()
	r := NewRefresher(src, RefresherOptions{Now: clk.Now})
	var wg sync.WaitGroup
	var got sync.Map
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.Retrieve(context.Background())
			if err != nil {
				t.Error(err)
			}
			got.Store(c.SecretID, true)
		}()
	}
	waitCalls(t, src, 1)
	time.Sleep(20 * time.Millisecond) // let the others queue up behind the call
	src.open()
	wg.Wait()
	if n := src.calls.Load(); n != 1 {
		t.Errorf("100 concurrent first Retrieves made %d source calls, want 1", n)
	}
	got.Range(func(k, _ any) bool {
		if k != "AKID1" {
			t.Errorf("got keys %v", k)
		}
		return true
	})
}

func TestRefresherRefreshesAheadWithoutBlocking(t *testing.T) {
	clk := newFakeClock(t0)
	src := &fakeSource{}
	src.set(rotating(clk, 15*time.Minute))
	r := NewRefresher(src, RefresherOptions{Now: clk.Now})
	ctx := context.Background()
	if c, err := r.Retrieve(ctx); err != nil || c.SecretID != "AKID1" {
		t.Fatal(c, err)
	}
	clk.Add(9*time.Minute + 59*time.Second) // margin is 5 min: not yet
	r.Retrieve(ctx)
	r.bg.Wait()
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("refreshed %d times before the margin", n-1)
	}

	clk.Add(2 * time.Second) // in the margin: one refresh, nobody waits for it
	src.hold()
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.Retrieve(ctx)
			if err != nil || c.SecretID != "AKID1" {
				t.Errorf("during the refresh: %v %v", c, err)
			}
		}()
	}
	wg.Wait() // returned while the source is still held
	waitCalls(t, src, 2)
	src.open()
	r.bg.Wait()
	if n := src.calls.Load(); n != 2 {
		t.Errorf("100 Retrieves in the margin made %d refreshes, want 1", n-1)
	}
	if c, _ := r.Retrieve(ctx); c.SecretID != "AKID2" {
		t.Errorf("after the refresh: %v", c)
	}
}

func TestRefresherFailedRefreshKeepsKeysWithBackoff(t *testing.T) {
	clk := newFakeClock(t0)
	src := &fakeSource{}
	src.set(rotating(clk, 15*time.Minute))
	var logs []string
	var logMu sync.Mutex
	r := NewRefresher(src, RefresherOptions{Now: clk.Now, Logf: func(f string, a ...any) {
		logMu.Lock()
		logs = append(logs, fmt.Sprintf(f, a...))
		logMu.Unlock()
	}})
	ctx := context.Background()
	r.Retrieve(ctx)
	src.set(func(int) (Credentials, error) { return Credentials{}, errors.New("STS down") })
	clk.Add(11 * time.Minute) // 4 min left

	step := func(advance time.Duration, wantCalls int32) {
		t.Helper()
		clk.Add(advance)
		c, err := r.Retrieve(ctx)
		if err != nil || c.SecretID != "AKID1" {
			t.Fatalf("old keys not kept: %v %v", c, err)
		}
		r.bg.Wait()
		if n := src.calls.Load(); n != wantCalls {
			t.Fatalf("after +%s: %d source calls, want %d", advance, n, wantCalls)
		}
	}
	step(0, 2)                    // first refresh fails; backoff 1 s
	step(500*time.Millisecond, 2) // backing off
	step(500*time.Millisecond, 3) // second failure; backoff 2 s
	step(time.Second, 3)
	step(time.Second, 4) // backoff 4 s
	step(3*time.Second, 4)
	step(time.Second, 5) // backoff 8 s

	// The keys really expire while the source is still down.
	clk.Add(4 * time.Minute)
	_, err := r.Retrieve(ctx)
	if err == nil || !strings.Contains(err.Error(), "credentials expired at") || !strings.Contains(err.Error(), "STS down") {
		t.Fatalf("expired keys: %v", err)
	}
	n := src.calls.Load()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := r.Retrieve(short); !errors.Is(err, context.DeadlineExceeded) || src.calls.Load() != n {
		t.Fatalf("an expired Retrieve in the backoff did not wait for the next attempt: %v, %d calls", err, src.calls.Load()-n)
	}
	// The source comes back: the next attempt after the backoff blocks and succeeds.
	src.set(rotating(clk, 15*time.Minute))
	clk.Add(time.Minute)
	if c, err := r.Retrieve(ctx); err != nil || c.SecretID == "AKID1" {
		t.Fatalf("after recovery: %v %v", c, err)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if len(logs) == 0 || !strings.Contains(strings.Join(logs, "\n"), "using the current ones") {
		t.Errorf("logs: %q", logs)
	}
}

// TestRefresherExpiredBackoffIsShort: once the keys have expired, the wait
// between attempts is at most maxExpiredWait, however many refreshes failed
// before: a source that recovers is used within seconds.
func TestRefresherExpiredBackoffIsShort(t *testing.T) {
	clk := newFakeClock(t0)
	src := &fakeSource{}
	src.set(rotating(clk, 15*time.Minute))
	r := NewRefresher(src, RefresherOptions{Now: clk.Now})
	ctx := context.Background()
	r.Retrieve(ctx)
	src.set(func(int) (Credentials, error) { return Credentials{}, errors.New("STS down") })
	clk.Add(10*time.Minute + time.Second) // in the margin: refreshes fail
	for i := 0; i < 10; i++ {
		r.Retrieve(ctx)
		r.bg.Wait()
		clk.Add(29 * time.Second)
	}
	clk.Set(t0.Add(15*time.Minute + time.Second)) // expired
	if _, err := r.Retrieve(ctx); err == nil || !strings.Contains(err.Error(), "credentials expired at") {
		t.Fatalf("expired keys: %v", err)
	}
	if n := src.calls.Load(); n < 10 {
		t.Fatalf("%d source calls before the expiry, want at least 10", n)
	}
	src.set(rotating(clk, 15*time.Minute))
	clk.Add(maxExpiredWait)
	if c, err := r.Retrieve(ctx); err != nil || c.SecretID == "AKID1" {
		t.Fatalf("%s after the source recovered: %v %v", maxExpiredWait, c, err)
	}
}

func TestRefresherSameKeysBackOff(t *testing.T) {
	clk := newFakeClock(t0)
	src := &fakeSource{}
	exp := t0.Add(time.Hour)
	src.set(func(int) (Credentials, error) {
		return Credentials{SecretID: "AKIDsame", SecretKey: "k", ExpiredTime: exp}, nil
	})
	r := NewRefresher(src, RefresherOptions{Now: clk.Now})
	r.Retrieve(context.Background())
	clk.Add(56 * time.Minute)
	for i := 0; i < 50; i++ {
		r.Retrieve(context.Background())
		r.bg.Wait()
		clk.Add(100 * time.Millisecond)
	}
	// 5 s of polling with backoff 1, 2 s: at most 3 more calls, not 50.
	if n := src.calls.Load(); n > 4 {
		t.Errorf("a source returning the same keys was called %d times in 5 s", n)
	}
}

func TestRefresherInvalidate(t *testing.T) {
	clk := newFakeClock(t0)
	src := &fakeSource{}
	src.set(rotating(clk, time.Hour))
	r := NewRefresher(src, RefresherOptions{Now: clk.Now})
	ctx := context.Background()
	first, _ := r.Retrieve(ctx)

	// 50 requests refused at once, each invalidating then retrying.
	src.hold()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Invalidate(first)
			c, err := r.Retrieve(ctx)
			if err != nil || c.SecretID != "AKID2" {
				t.Errorf("retry after Invalidate got %v %v, want the new keys", c, err)
			}
		}()
	}
	waitCalls(t, src, 2)
	time.Sleep(20 * time.Millisecond)
	src.open()
	wg.Wait()
	if n := src.calls.Load(); n != 2 {
		t.Errorf("50 invalidations made %d refreshes, want 1", n-1)
	}
	// Keys already replaced: ignored.
	r.Invalidate(first)
	r.bg.Wait()
	if c, _ := r.Retrieve(ctx); c.SecretID != "AKID2" || src.calls.Load() != 2 {
		t.Errorf("stale Invalidate refreshed: %v, %d calls", c, src.calls.Load())
	}

	// A failed forced refresh: the refused keys are all there is, so they
	// are used until they expire, and the next attempt waits for the backoff.
	cur, _ := r.Retrieve(ctx)
	src.set(func(int) (Credentials, error) { return Credentials{}, errors.New("down") })
	r.Invalidate(cur)
	if c, err := r.Retrieve(ctx); err != nil || c.SecretID != "AKID2" {
		t.Errorf("after a failed forced refresh: %v %v", c, err)
	}
	r.bg.Wait()
	if c, err := r.Retrieve(ctx); err != nil || c.SecretID != "AKID2" || src.calls.Load() != 3 {
		t.Errorf("in the backoff: %v %v, %d calls", c, err, src.calls.Load())
	}
	src.set(rotating(clk, time.Hour))
	clk.Add(2 * time.Second)
	if c, err := r.Retrieve(ctx); err != nil || c.SecretID != "AKID4" {
		t.Errorf("after the backoff, a refused key must wait for a refresh: %v %v", c, err)
	}
}

func TestRefresherPermanent(t *testing.T) {
	clk := newFakeClock(t0)
	src := &fakeSource{}
	src.set(func(int) (Credentials, error) { return Credentials{SecretID: "AKIDp", SecretKey: "k"}, nil })
	r := NewRefresher(src, RefresherOptions{Now: clk.Now})
	for i := 0; i < 10; i++ {
		c, err := r.Retrieve(context.Background())
		if err != nil || c.SecretID != "AKIDp" {
			t.Fatal(c, err)
		}
		r.Invalidate(c)
		clk.Add(24 * 365 * time.Hour)
	}
	r.bg.Wait()
	if n := src.calls.Load(); n != 1 {
		t.Errorf("permanent keys fetched %d times", n)
	}
}

func TestRefresherStartTimeSetsLifetime(t *testing.T) {
	clk := newFakeClock(t0)
	src := &fakeSource{}
	// Issued 50 min ago for 1 h: the margin is 5 min (a third of 1 h,
	// clamped), not a third of the 10 min left.
	src.set(func(n int) (Credentials, error) {
		return Credentials{SecretID: fmt.Sprint("AKID", n), SecretKey: "k",
			StartTime: clk.Now().Add(-50 * time.Minute), ExpiredTime: clk.Now().Add(10 * time.Minute)}, nil
	})
	r := NewRefresher(src, RefresherOptions{Now: clk.Now})
	c, _ := r.Retrieve(context.Background())
	if !c.StartTime.Equal(t0.Add(-50 * time.Minute)) {
		t.Errorf("StartTime not kept: %v", c.StartTime)
	}
	clk.Add(4*time.Minute + 59*time.Second)
	r.Retrieve(context.Background())
	r.bg.Wait()
	if src.calls.Load() != 1 {
		t.Error("refreshed before the margin")
	}
	clk.Add(2 * time.Second)
	r.Retrieve(context.Background())
	r.bg.Wait()
	if src.calls.Load() != 2 {
		t.Error("not refreshed in the margin")
	}
}

func TestRefresherBadAnswersAndCancel(t *testing.T) {
	clk := newFakeClock(t0)
	src := &fakeSource{}
	src.set(func(int) (Credentials, error) {
		return Credentials{SecretID: "AKID", SecretKey: "k", ExpiredTime: t0.Add(-time.Second)}, nil
	})
	r := NewRefresher(src, RefresherOptions{Now: clk.Now})
	if _, err := r.Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Errorf("expired keys from the source: %v", err)
	}
	src2 := &fakeSource{}
	src2.set(func(int) (Credentials, error) { return Credentials{SecretID: "AKID"}, nil })
	if _, err := NewRefresher(src2, RefresherOptions{}).Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "empty SecretId or SecretKey") {
		t.Errorf("empty key from the source: %v", err)
	}

	src3 := &fakeSource{}
	src3.set(rotating(clk, time.Hour))
	src3.hold()
	r3 := NewRefresher(src3, RefresherOptions{Now: clk.Now})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r3.Retrieve(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	src3.open() // the shared refresh was not cancelled with the caller
	if c, err := r3.Retrieve(context.Background()); err != nil || c.SecretID != "AKID1" {
		t.Errorf("after a cancelled waiter: %v %v", c, err)
	}
}
