package transport

import (
	"context"
	"testing"
	"time"

	"cosmount/auth"
	"cosmount/internal/testrig"
)

// TestMain gives the package's tests (internal and external) a real S3
// server: the one scripts/test.sh started, or a versitygw of their own.
func TestMain(m *testing.M) { testrig.Main(m) }

// newS3Client is a client for a fresh bucket on the test server, with
// short backoffs. mod adjusts the config before New.
func newS3Client(t testing.TB, mod ...func(*Config)) *Client {
	t.Helper()
	srv := testrig.Get(t)
	cfg := Config{
		Flavor:      FlavorS3,
		Bucket:      srv.NewBucket(t),
		Region:      srv.Region,
		Endpoint:    srv.Endpoint,
		PathStyle:   true,
		Credentials: auth.NewStatic(auth.Credentials{SecretID: srv.AccessKey, SecretKey: srv.SecretKey}),
	}
	for _, f := range mod {
		f(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.backoffBase, c.backoffCap = time.Millisecond, 20*time.Millisecond
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
