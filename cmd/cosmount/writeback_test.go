package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"cosmount/auth"
	"cosmount/transport"
)

// TestKillDuringWriteBackThenRemountLosesNothing writes files with a long
// --write-back-delay, kills cosmount with SIGKILL before anything is
// uploaded, and mounts again on the same cache dir: every file must reach
// the bucket, once.
func TestKillDuringWriteBackThenRemountLosesNothing(t *testing.T) {
	e := setup(t)
	mnt, cacheDir := t.TempDir(), t.TempDir()
	args := []string{"--foreground", "--endpoint", e.srv.Endpoint, "--cache-dir", cacheDir, "--write-back-delay", "1h", e.bucket, mnt}
	c := e.cmd(e.srv.SecretKey, args...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitMounted(t, mnt, c)
	files := map[string][]byte{}
	for i := 0; i < 5; i++ {
		data := bytes.Repeat([]byte(strconv.Itoa(i)), 1000*(i+1))
		if i == 4 {
			data = make([]byte, 20<<20+3) // multipart
			for j := range data {
				data[j] = byte(j % 251)
			}
		}
		name := fmt.Sprintf("wb/file-%d", i)
		files[name] = data
		os.MkdirAll(filepath.Join(mnt, "wb"), 0o755)
		if err := os.WriteFile(filepath.Join(mnt, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.Process.Kill()
	c.Wait()
	syscall.Unmount(mnt, syscall.MNT_DETACH)

	client, err := transport.New(transport.Config{Flavor: transport.FlavorS3, Endpoint: e.srv.Endpoint, Bucket: e.bucket,
		Region: e.srv.Region, PathStyle: true,
		Credentials: auth.NewStatic(auth.Credentials{SecretID: e.srv.AccessKey, SecretKey: e.srv.SecretKey})})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.Head(ctx, &transport.HeadInput{Key: "wb/file-0"}); err == nil {
		t.Fatal("uploaded before the kill despite the 1h delay: the test proves nothing")
	}

	c = e.cmd(e.srv.SecretKey, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitMounted(t, mnt, c)
	for name, want := range files {
		out, err := client.Get(ctx, &transport.GetInput{Key: name, Length: -1})
		if err != nil {
			t.Errorf("%s after remount: %v", name, err)
			continue
		}
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes in the bucket, %d written", name, len(got), len(want))
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(cacheDir, "journal")); len(ents) != 0 {
		t.Errorf("%d journal entries left after recovery", len(ents))
	}
	if ups, _ := client.ListMultipartUploads(ctx, ""); len(ups) != 0 {
		t.Errorf("%d multipart uploads left", len(ups))
	}
	c.Process.Signal(syscall.SIGTERM)
	c.Wait()
}

func waitMounted(t *testing.T, mnt string, c *exec.Cmd) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !mounted(mnt) {
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatal("not mounted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
