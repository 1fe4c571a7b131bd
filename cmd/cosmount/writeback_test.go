package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

	client := e.client(t)
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

// TestKillDuringAStreamedWriteLeavesNoUpload kills cosmount while a large
// file is being written (its first parts already streamed as a multipart
// upload) and mounts again on the same cache dir: the mount must abort the
// orphaned upload before it is ready.
func TestKillDuringAStreamedWriteLeavesNoUpload(t *testing.T) {
	e := setup(t)
	mnt, cacheDir := t.TempDir(), t.TempDir()
	args := []string{"--foreground", "--endpoint", e.srv.Endpoint, "--cache-dir", cacheDir, e.bucket, mnt}
	c := e.cmd(e.srv.SecretKey, args...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitMounted(t, mnt, c)
	client := e.client(t)
	ctx := context.Background()
	w, err := os.Create(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 20<<20)); err != nil { // two 8 MiB parts stream
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ups, err := client.ListMultipartUploads(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(ups) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d multipart uploads while the file is written, want 1", len(ups))
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Process.Kill()
	c.Wait()
	w.Close()
	syscall.Unmount(mnt, syscall.MNT_DETACH)
	if ups, _ := client.ListMultipartUploads(ctx, ""); len(ups) != 1 {
		t.Fatalf("%d multipart uploads after the kill, want the 1 left behind: the test proves nothing", len(ups))
	}

	c = e.cmd(e.srv.SecretKey, args...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitMounted(t, mnt, c)
	if ups, _ := client.ListMultipartUploads(ctx, ""); len(ups) != 0 {
		t.Errorf("%d multipart uploads left after the remount", len(ups))
	}
	if ents, _ := os.ReadDir(filepath.Join(cacheDir, "uploads")); len(ents) != 0 {
		t.Errorf("%d upload notes left after the remount", len(ents))
	}
	c.Process.Signal(syscall.SIGTERM)
	c.Wait()
}

// TestSecondMountOnTheSameCacheDirIsRefused: two mounts sharing a cache dir
// would upload and remove each other's files; the second one fails with a
// clear message and leaves no mount behind.
func TestSecondMountOnTheSameCacheDirIsRefused(t *testing.T) {
	e := setup(t)
	mnt1, mnt2, cacheDir := t.TempDir(), t.TempDir(), t.TempDir()
	c := e.cmd(e.srv.SecretKey, "--foreground", "--endpoint", e.srv.Endpoint, "--cache-dir", cacheDir, e.bucket, mnt1)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitMounted(t, mnt1, c)
	defer func() {
		c.Process.Signal(syscall.SIGTERM)
		c.Wait()
	}()
	second := e.cmd(e.srv.SecretKey, "--foreground", "--endpoint", e.srv.Endpoint, "--cache-dir", cacheDir, e.bucket, mnt2)
	var out bytes.Buffer
	second.Stdout, second.Stderr = &out, &out
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- second.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			t.Error("the second mount exited without an error")
		}
	case <-time.After(30 * time.Second):
		second.Process.Kill()
		<-exited
		syscall.Unmount(mnt2, syscall.MNT_DETACH)
		t.Fatal("a second mount on the same cache dir was accepted")
	}
	if !bytes.Contains(out.Bytes(), []byte("in use by another cosmount process")) {
		t.Errorf("the refusal does not say why: %s", out.String())
	}
	if mounted(mnt2) {
		syscall.Unmount(mnt2, syscall.MNT_DETACH)
		t.Error("the refused mount left a mount behind")
	}
	if _, err := os.Stat(filepath.Join(mnt1, "dir", "hello")); err != nil {
		t.Errorf("the first mount stopped working: %v", err)
	}
}

// A mount that was unmounted (umount) and is still uploading what was
// pending may find its mount point taken by a new mount. A signal then
// stops its uploads; it must not unmount the new mount by path.
func TestSignalWhileDrainingLeavesTheNextMountAlone(t *testing.T) {
	e := setup(t)
	// PUTs wait at this proxy until the test lets them through, so the
	// first mount is still draining when the second mounts.
	gate := make(chan struct{})
	proxy := serverProxy(t, e, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut {
			select {
			case <-gate:
			case <-r.Context().Done():
				return true
			}
		}
		return false
	})
	defer proxy.Close()
	defer close(gate)

	mnt := t.TempDir()
	a := e.cmd(e.srv.SecretKey, "--foreground", "--endpoint", proxy.URL, "--cache-dir", t.TempDir(), "--write-back-delay", "1h", e.bucket, mnt)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Process.Kill(); _ = a.Wait() }()
	waitMounted(t, mnt, a)
	if err := os.WriteFile(filepath.Join(mnt, "pending"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	b := e.cmd(e.srv.SecretKey, "--foreground", "--endpoint", e.srv.Endpoint, "--cache-dir", t.TempDir(), e.bucket, mnt)
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = b.Process.Signal(syscall.SIGTERM)
		_ = b.Wait()
		syscall.Unmount(mnt, syscall.MNT_DETACH)
	}()
	waitMounted(t, mnt, b)
	if err := a.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("the first mount ended before the signal: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Wait() }()
	select {
	case <-done: // it gave up its uploads (they stay journaled)
	case <-time.After(20 * time.Second):
		t.Fatal("the first mount did not end after the signal")
	}
	if !mounted(mnt) {
		t.Fatal("the signal to the first mount unmounted the second")
	}
	if _, err := os.Stat(filepath.Join(mnt, "dir", "hello")); err != nil {
		t.Errorf("stat through the second mount: %v", err)
	}
}

// TestBackgroundDrainErrorIsLogged: a background mount whose pending
// uploads fail as it ends says so in its --log-file, at error level (the
// reason went only to its stderr, /dev/null in the background).
func TestBackgroundDrainErrorIsLogged(t *testing.T) {
	e := setup(t)
	proxy := serverProxy(t, e, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>no writes</Message></Error>`)
			return true
		}
		return false
	})
	defer proxy.Close()

	mnt, cacheDir := t.TempDir(), t.TempDir()
	logFile := filepath.Join(t.TempDir(), "cosmount.log")
	c := e.cmd(e.srv.SecretKey, "--endpoint", proxy.URL, "--cache-dir", cacheDir, "--write-back-delay", "1h",
		"--log-file", logFile, e.bucket, mnt)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("mount: %v: %s", err, stderr.String())
	}
	pid := findMountProcess(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "pending"), []byte("data"), 0o644); err != nil {
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		t.Fatal(err)
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		t.Fatalf("umount: %v %s", err, out)
	}
	for i := 0; i < 600; i++ { // the drain gives up on a file after three failures, a second apart
		if _, err := os.Stat("/proc/" + pid); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitGone(t, pid)
	b, _ := os.ReadFile(logFile)
	var found bool
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "1 files could not be uploaded; the next mount on "+cacheDir+" uploads them") {
			found = true
		}
	}
	if !found {
		t.Errorf("the log does not say at error level that the upload failed:\n%s", b)
	}
}

// serverProxy is a proxy to the test server on loopback; first sees each
// request and reports whether it answered it (else it goes on).
func serverProxy(t *testing.T, e *env, first func(http.ResponseWriter, *http.Request) bool) *httptest.Server {
	t.Helper()
	u, err := url.Parse(e.srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !first(w, r) {
			rp.ServeHTTP(w, r)
		}
	}))
}
