package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cosmount/auth"
	"cosmount/internal/testrig"
	"cosmount/transport"
)

func TestMain(m *testing.M) {
	testrig.Main(m, func() {
		if binary != "" {
			_ = os.RemoveAll(filepath.Dir(binary))
		}
	})
}

var binary string

// build compiles cosmount once per test binary.
func build(t *testing.T) string {
	t.Helper()
	if binary != "" {
		return binary
	}
	dir, err := os.MkdirTemp("", "cosmount-bin-")
	if err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(dir, "cosmount")
	args := []string{"build", "-o", b}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	binary = b
	return b
}

func mounted(mnt string) bool {
	b, _ := os.ReadFile("/proc/mounts")
	return strings.Contains(string(b), " "+mnt+" ")
}

type env struct {
	srv    *testrig.Server
	bucket string
	bin    string
	tmp    string // TMPDIR of the mounts: their default cache dirs go there
}

func setup(t *testing.T) *env {
	srv := testrig.Get(t)
	e := &env{srv: srv, bucket: srv.NewBucket(t), bin: build(t), tmp: t.TempDir()}
	c := e.client(t)
	if _, err := c.Put(context.Background(), &transport.PutInput{Key: "dir/hello", Body: strings.NewReader("hello"), Size: 5}); err != nil {
		t.Fatal(err)
	}
	return e
}

// client talks to the test bucket directly, past any mount.
func (e *env) client(t *testing.T) *transport.Client {
	t.Helper()
	c, err := transport.New(transport.Config{Flavor: transport.FlavorS3, Endpoint: e.srv.Endpoint, Bucket: e.bucket,
		Region: e.srv.Region, PathStyle: true,
		Credentials: auth.NewStatic(auth.Credentials{SecretID: e.srv.AccessKey, SecretKey: e.srv.SecretKey})})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cmd runs cosmount with the server's keys in the environment.
func (e *env) cmd(secret string, args ...string) *exec.Cmd {
	c := exec.Command(e.bin, args...)
	c.Env = append(os.Environ(), "TMPDIR="+e.tmp, "AWS_ACCESS_KEY_ID="+e.srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+secret,
		"TENCENTCLOUD_SECRET_ID=", "TENCENTCLOUD_SECRET_KEY=", "COSACCESSKEYID=", "COSSECRETACCESSKEY=")
	return c
}

func TestBadCommandLine(t *testing.T) {
	bin := build(t)
	for _, args := range [][]string{
		{},
		{"onlyone"},
		{"--no-such-flag", "b", "m"},
		{"--read-cache-size", "lots", "b", "m"},
		{"--endpoint", "ftp://x", "b", "m"},
		{"--file-mode", "999", "b", "m"},
	} {
		var stderr bytes.Buffer
		c := exec.Command(bin, args...)
		c.Stderr = &stderr
		err := c.Run()
		var ee *exec.ExitError
		if err == nil || !errorsAs(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("cosmount %q: %v, want exit 2", args, err)
		}
		if !strings.Contains(stderr.String(), "cosmount:") {
			t.Errorf("cosmount %q: no reason given: %q", args, stderr.String())
		}
	}
}

func errorsAs(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

func TestFailedMountsLeaveNothingMounted(t *testing.T) {
	e := setup(t)
	mnt := t.TempDir()
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	cases := []struct {
		name, secret, want string
		args               []string
	}{
		{"wrong secret", "wrong-secret-value", "bucket", []string{"--endpoint", e.srv.Endpoint, e.bucket, mnt}},
		{"no such bucket", e.srv.SecretKey, "bucket", []string{"--endpoint", e.srv.Endpoint, "nosuchbucket", mnt}},
		{"unreachable", e.srv.SecretKey, "bucket", []string{"--endpoint", "http://127.0.0.1:1", "--timeout", "2s", "--chunk-retry-times", "0", e.bucket, mnt}},
		{"missing mount point", e.srv.SecretKey, "mount point", []string{"--endpoint", e.srv.Endpoint, e.bucket, filepath.Join(mnt, "nope")}},
		{"mount point is a file", e.srv.SecretKey, "not a directory", []string{"--endpoint", e.srv.Endpoint, e.bucket, notDir}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c := e.cmd(tc.secret, tc.args...)
			c.Stderr = &stderr
			err := c.Run()
			if err == nil {
				t.Fatalf("mount succeeded")
			}
			msg := stderr.String()
			if strings.Count(strings.TrimSpace(msg), "\n") != 0 || !strings.Contains(msg, tc.want) {
				t.Errorf("want a one-line reason mentioning %q, got %q", tc.want, msg)
			}
			if strings.Contains(msg, tc.secret) {
				t.Errorf("the secret appears in the error: %q", msg)
			}
			if mounted(mnt) {
				t.Errorf("%s is mounted after a failed mount", mnt)
			}
		})
	}
}

func TestBackgroundMountAndUmount(t *testing.T) {
	e := setup(t)
	mnt := t.TempDir()
	var stderr bytes.Buffer
	c := e.cmd(e.srv.SecretKey, "--endpoint", e.srv.Endpoint, e.bucket, mnt)
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("mount: %v: %s", err, stderr.String())
	}
	// The command returned: the mount must be usable right away.
	b, err := os.ReadFile(filepath.Join(mnt, "dir", "hello"))
	if err != nil || string(b) != "hello" {
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		t.Fatalf("read through the background mount: %q %v", b, err)
	}
	pid := findMountProcess(t, mnt)
	cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
	if bytes.Contains(cmdline, []byte(e.srv.SecretKey)) {
		t.Errorf("the secret key is visible in the process arguments")
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	waitGone(t, pid)
	if mounted(mnt) {
		t.Fatal("still mounted after umount")
	}
}

func TestForegroundSIGTERMUnmounts(t *testing.T) { foregroundSignalUnmounts(t, syscall.SIGTERM) }

// SIGHUP (the terminal of a --foreground mount closing) unmounts cleanly
// like SIGTERM: it must not kill the process and leave a dead mount.
func TestForegroundSIGHUPUnmounts(t *testing.T) { foregroundSignalUnmounts(t, syscall.SIGHUP) }

func foregroundSignalUnmounts(t *testing.T, sig syscall.Signal) {
	e := setup(t)
	mnt := t.TempDir()
	c := e.cmd(e.srv.SecretKey, "--foreground", "--endpoint", e.srv.Endpoint, e.bucket, mnt)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !mounted(mnt) {
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatalf("not mounted: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(mnt, "dir", "hello")); err != nil {
		t.Errorf("stat through the mount: %v", err)
	}
	c.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after %v: %v: %s", sig, err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		c.Process.Kill()
		t.Fatalf("did not exit after %v", sig)
	}
	if mounted(mnt) {
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		t.Fatalf("still mounted after %v", sig)
	}
}

// A --foreground mount whose stderr is a pipe that closes (cosmount ...
// 2>&1 | tee log, and tee ends) keeps serving: its writes to stderr fail
// with EPIPE instead of killing it with SIGPIPE, which left a dead mount.
func TestForegroundBrokenStderrKeepsServing(t *testing.T) {
	e := setup(t)
	mnt := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// --debug-fuse: every request is logged to stderr.
	c := e.cmd(e.srv.SecretKey, "--foreground", "--debug-fuse", "--endpoint", e.srv.Endpoint, e.bucket, mnt)
	c.Stderr = w
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	t.Cleanup(func() {
		if mounted(mnt) {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, r); close(drained) }()
	waitMounted(t, mnt, c)
	r.Close() // the reader of the pipe goes away
	<-drained
	for i := 0; i < 3; i++ {
		if _, err := os.Stat(filepath.Join(mnt, "dir", "hello")); err != nil {
			c.Process.Kill()
			t.Fatalf("stat through the mount after its stderr closed: %v (exit: %v)", err, waitExit(done))
		}
		b, err := os.ReadFile(filepath.Join(mnt, "dir", "hello"))
		if err != nil || string(b) != "hello" {
			c.Process.Kill()
			t.Fatalf("read through the mount after its stderr closed: %q %v", b, err)
		}
		os.Stat(filepath.Join(mnt, "nosuch")) // more requests, more log lines
	}
	c.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		c.Process.Kill()
		t.Fatal("did not exit after SIGTERM")
	}
	if mounted(mnt) {
		t.Fatal("still mounted after SIGTERM")
	}
}

// waitExit reports how the process waited on by done ended, if it did
// within a second.
func waitExit(done chan error) any {
	select {
	case err := <-done:
		return err
	case <-time.After(time.Second):
		return "still running"
	}
}

// A SIGTERM that comes the moment the mount appears, while cosmount is
// still starting up, unmounts it and ends the process cleanly: no dead
// mount is left behind.
func TestSIGTERMWhileStartingLeavesNoMount(t *testing.T) {
	e := setup(t)
	mnt := t.TempDir()
	c := e.cmd(e.srv.SecretKey, "--foreground", "--endpoint", e.srv.Endpoint, e.bucket, mnt)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !mounted(mnt) {
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatalf("not mounted: %s", stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	c.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after an early SIGTERM: %v: %s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		c.Process.Kill()
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		t.Fatal("did not exit after SIGTERM")
	}
	if mounted(mnt) {
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		t.Fatal("a dead mount was left behind")
	}
}

func findMountProcess(t *testing.T, mnt string) string {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && args[0] == binary && strings.Contains(string(b), mnt) {
			return d.Name()
		}
	}
	t.Fatal("no cosmount process for the mount")
	return ""
}

func waitGone(t *testing.T, pid string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if _, err := os.Stat("/proc/" + pid); err != nil {
			return
		}
		b, _ := os.ReadFile("/proc/" + pid + "/stat")
		if strings.Contains(string(b), ") Z ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("process %s still running after umount", pid)
}
