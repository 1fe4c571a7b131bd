package transport_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"cosmount/auth"
	"cosmount/internal/testrig"
	"cosmount/transport"
)

// TestPublicAPI uses the client as another package does: New, a few calls,
// typed errors, the request hook and counters.
func TestPublicAPI(t *testing.T) {
	srv := testrig.Get(t)
	var hooked atomic.Int64
	c, err := transport.New(transport.Config{
		Flavor:          transport.FlavorS3,
		Bucket:          srv.NewBucket(t),
		Region:          srv.Region,
		Endpoint:        srv.Endpoint,
		PathStyle:       true,
		Credentials:     auth.NewStatic(auth.Credentials{SecretID: srv.AccessKey, SecretKey: srv.SecretKey}),
		Timeout:         10 * time.Second,
		CheckContentMD5: true,
		AddMetaMD5:      true,
		OnRequest:       func(string) { hooked.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte("cosmount "), 1000)
	sum := md5.Sum(data)
	if _, err := c.Put(ctx, &transport.PutInput{Key: "dir/file", Body: bytes.NewReader(data), Size: -1,
		Metadata: map[string]string{"mode": "33188"}}); err != nil {
		t.Fatal(err)
	}
	info, err := c.Head(ctx, &transport.HeadInput{Key: "dir/file"})
	if err != nil || info.Metadata["md5"] != hex.EncodeToString(sum[:]) || info.Metadata["mode"] != "33188" {
		t.Fatalf("head: %+v %v", info, err)
	}
	out, err := c.Get(ctx, &transport.GetInput{Key: "dir/file", Offset: 9, Length: 8})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || string(got) != "cosmount" || out.Info.Size != int64(len(data)) {
		t.Errorf("get: %q %v %+v", got, err, out.Info)
	}
	page, err := c.List(ctx, &transport.ListInput{Delimiter: "/"})
	if err != nil || len(page.CommonPrefixes) != 1 || page.CommonPrefixes[0] != "dir/" {
		t.Errorf("list: %+v %v", page, err)
	}
	_, err = c.Head(ctx, &transport.HeadInput{Key: "missing"})
	var te *transport.Error
	if !errors.Is(err, transport.ErrNotFound) || !errors.As(err, &te) || te.Op != "HEAD" || te.StatusCode != 404 {
		t.Errorf("missing: %v", err)
	}
	st := c.Stats()
	if st["PUT"] != 1 || st["HEAD"] != 2 || st["GET"] != 1 || st["LIST"] != 1 || hooked.Load() != 5 {
		t.Errorf("stats %v, hook %d", st, hooked.Load())
	}
	if _, err := transport.New(transport.Config{Flavor: transport.FlavorCOS, Bucket: "nobucketappid",
		Region: "ap-guangzhou", Credentials: auth.NewStatic(auth.Credentials{})}); !errors.Is(err, transport.ErrBadConfig) {
		t.Errorf("bad bucket accepted: %v", err)
	}
}
