package transport

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"cosmount/auth"
	"cosmount/internal/testrig"
)

func TestClockSkewCorrected(t *testing.T) {
	for _, off := range []time.Duration{-2 * time.Hour, 3 * time.Hour} {
		c := newS3Client(t, func(cfg *Config) {
			cfg.Now = func() time.Time { return time.Now().Add(off) }
		})
		ctx := testCtx(t)
		if _, err := c.Put(ctx, &PutInput{Key: "k", Body: strings.NewReader("abc"), Size: 3}); err != nil {
			t.Fatalf("offset %v: %v", off, err)
		}
		if got := c.ClockOffset(); (got + off).Abs() > 5*time.Second {
			t.Errorf("offset %v: learned %v", off, got)
		}
		if st := c.Stats(); st["PUT"] != 2 {
			t.Errorf("offset %v: %d PUTs, want 2", off, st["PUT"])
		}
		// Later calls sign with the corrected clock at once.
		if _, err := c.Head(ctx, &HeadInput{Key: "k"}); err != nil || c.Stats()["HEAD"] != 1 {
			t.Errorf("offset %v: head %v, %d HEADs", off, err, c.Stats()["HEAD"])
		}
	}
}

// rotatingProvider hands out refused keys until told they were refused.
type rotatingProvider struct {
	mu      sync.Mutex
	cur     auth.Credentials
	next    auth.Credentials
	refused []auth.Credentials
}

func (p *rotatingProvider) Retrieve(context.Context) (auth.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur, nil
}

func (p *rotatingProvider) Invalidate(c auth.Credentials) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused = append(p.refused, c)
	p.cur = p.next
}

func TestExpiredCredentialsRefreshed(t *testing.T) {
	srv := testrig.Get(t)
	good := auth.Credentials{SecretID: srv.AccessKey, SecretKey: srv.SecretKey}
	bad := auth.Credentials{SecretID: "AKIDEXPIRED0000", SecretKey: "SeCrEtKeY123", SessionToken: "SeSsIoNtOkEn456"}
	prov := &rotatingProvider{cur: bad, next: good}
	c := newS3Client(t, func(cfg *Config) { cfg.Credentials = prov })
	ctx := testCtx(t)
	if _, err := c.Put(ctx, &PutInput{Key: "k", Body: strings.NewReader("abc"), Size: 3}); err != nil {
		t.Fatal(err)
	}
	if len(prov.refused) != 1 || prov.refused[0].SecretID != bad.SecretID || c.Stats()["PUT"] != 2 {
		t.Errorf("refused %v, stats %v", prov.refused, c.Stats())
	}
	// Keys that stay refused: one refresh, then the typed error, with no
	// secret in its text. A HEAD's bodiless 400 is explained by a GET.
	prov.cur, prov.next = bad, bad
	_, err := c.Head(ctx, &HeadInput{Key: "k"})
	if !errors.Is(err, ErrExpiredCredentials) || !strings.HasPrefix(err.Error(), "HEAD") {
		t.Errorf("head with refused keys: %v", err)
	}
	_, err = c.Get(ctx, &GetInput{Key: "k", Length: -1})
	if !errors.Is(err, ErrExpiredCredentials) {
		t.Errorf("get with refused keys: %v", err)
	}
	if st := c.Stats(); st["HEAD"] != 1 || st["GET"] != 4 || len(prov.refused) != 3 {
		t.Errorf("stats %v, %d refusals", st, len(prov.refused))
	}
	for _, s := range []string{bad.SecretKey, bad.SessionToken, srv.SecretKey} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q shows a secret", err)
		}
	}
	// Refreshed keys that work: the HEAD's probe refreshes them and the
	// HEAD is sent again.
	prov.cur, prov.next = bad, good
	if _, err := c.Head(ctx, &HeadInput{Key: "k"}); err != nil {
		t.Errorf("head after refresh: %v", err)
	}
}

// A provider without Invalidate: the answer is retried once all the same
// (the provider may have refreshed by itself) and then returned.
func TestExpiredCredentialsWithoutInvalidator(t *testing.T) {
	c := newS3Client(t, func(cfg *Config) {
		cfg.Credentials = auth.NewStatic(auth.Credentials{SecretID: "AKIDUNKNOWN", SecretKey: "x"})
	})
	_, err := c.Get(testCtx(t), &GetInput{Key: "k", Length: -1})
	var e *Error
	if !errors.Is(err, ErrExpiredCredentials) || !errors.As(err, &e) || e.RequestID == "" {
		t.Errorf("get: %#v", err)
	}
}

func TestProviderError(t *testing.T) {
	c := newS3Client(t, func(cfg *Config) { cfg.Credentials = failingProvider{} })
	_, err := c.Head(testCtx(t), &HeadInput{Key: "k"})
	if !errors.Is(err, ErrExpiredCredentials) || !strings.Contains(err.Error(), "sts down") {
		t.Errorf("head: %v", err)
	}
	if c.Stats()["HEAD"] != 0 {
		t.Errorf("a request went out without credentials")
	}
}

type failingProvider struct{}

func (failingProvider) Retrieve(context.Context) (auth.Credentials, error) {
	return auth.Credentials{}, errors.New("sts down")
}

func TestBackoff(t *testing.T) {
	c := &Client{backoffBase: 100 * time.Millisecond, backoffCap: 5 * time.Second}
	for n := 1; n <= 10; n++ {
		limit := min(100*time.Millisecond<<(n-1), 5*time.Second)
		var maxSeen time.Duration
		for i := 0; i < 200; i++ {
			d := c.backoff(n)
			if d < 0 || d > limit {
				t.Fatalf("backoff(%d) = %v, limit %v", n, d, limit)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < limit/2 {
			t.Errorf("backoff(%d) never above %v (limit %v): not full jitter", n, maxSeen, limit)
		}
	}
}
