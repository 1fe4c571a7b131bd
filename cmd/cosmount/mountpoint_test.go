package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startForeground runs cosmount --foreground with args and waits until
// mnt is mounted; the process is stopped and mnt unmounted in t.Cleanup.
func startForeground(t *testing.T, e *env, mnt string, args ...string) (c *exec.Cmd, exited chan struct{}) {
	t.Helper()
	c = e.cmd(e.srv.SecretKey, append([]string{"--foreground", "--endpoint", e.srv.Endpoint, "--cache-dir", t.TempDir()}, args...)...)
	stderr := &syncBuffer{}
	c.Stderr = stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan struct{})
	go func() { _ = c.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = c.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = c.Process.Kill()
		}
		if mounted(mnt) {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	// Until it logs "mounted", the mount may be up while go-fuse still
	// holds a file open in it (its epoll probe): a process killed then
	// cannot end, its exit's close waiting on its own mount.
	deadline := time.Now().Add(30 * time.Second)
	for !mounted(mnt) || !strings.Contains(stderr.String(), "msg=mounted") {
		if time.Now().After(deadline) {
			t.Fatalf("not mounted: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c, exited
}

// TestMountPointChecks: cosmount refuses, with a one-line reason and
// nothing mounted, a mount point with files in it (they would be hidden)
// unless --allow-non-empty, one that is already a mount point (mounts
// would stack), and a dead mount (a FUSE process gone).
func TestMountPointChecks(t *testing.T) {
	e := setup(t)
	refused := func(t *testing.T, mnt string, want ...string) {
		t.Helper()
		var stderr bytes.Buffer
		c := e.cmd(e.srv.SecretKey, "--endpoint", e.srv.Endpoint, "--cache-dir", t.TempDir(), e.bucket, mnt)
		c.Stderr = &stderr
		err := c.Run()
		msg := stderr.String()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("exit %v, want 1: %s", err, msg)
		}
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("the reason does not say %q: %q", w, msg)
			}
		}
		if strings.Count(strings.TrimSpace(msg), "\n") != 0 {
			t.Errorf("the reason is not one line: %q", msg)
		}
	}

	t.Run("not empty", func(t *testing.T) {
		mnt := t.TempDir()
		if err := os.WriteFile(filepath.Join(mnt, "keep"), []byte("local"), 0o644); err != nil {
			t.Fatal(err)
		}
		refused(t, mnt, "mount point "+mnt+" is not empty", "--allow-non-empty")
		if mounted(mnt) {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
			t.Fatal("mounted over the files")
		}
		// --allow-non-empty mounts over them; they come back after.
		startForeground(t, e, mnt, "--allow-non-empty", e.bucket, mnt)
		if b, err := os.ReadFile(filepath.Join(mnt, "dir", "hello")); err != nil || string(b) != "hello" {
			t.Errorf("read through the mount: %q %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(mnt, "keep")); err == nil {
			t.Errorf("the local file shows through the mount")
		}
	})

	t.Run("already mounted", func(t *testing.T) {
		mnt := t.TempDir()
		// A prefix with nothing under it: the first mount shows an empty
		// directory, which only the mount table tells from an empty one.
		startForeground(t, e, mnt, e.bucket+":nothing-here", mnt)
		if ents, err := os.ReadDir(mnt); err != nil || len(ents) != 0 {
			t.Fatalf("the first mount is not empty: %v %v", ents, err)
		}
		refused(t, mnt, "mount point "+mnt+" is already a mount point (fuse.cosmount)", "unmount it first")
		b, _ := os.ReadFile("/proc/mounts")
		if n := strings.Count(string(b), " "+mnt+" "); n != 1 {
			t.Errorf("%d mounts on %s, want 1", n, mnt)
		}
	})

	t.Run("dead mount", func(t *testing.T) {
		mnt := t.TempDir()
		c, exited := startForeground(t, e, mnt, e.bucket, mnt)
		_ = c.Process.Kill()
		<-exited
		if _, err := os.ReadDir(mnt); err == nil {
			t.Fatal("the mount point answers after its process was killed: no dead mount to test")
		}
		refused(t, mnt, "a dead mount is there", "umount -l "+mnt)
		// --allow-non-empty does not mount over a dead mount either.
		var stderr bytes.Buffer
		c = e.cmd(e.srv.SecretKey, "--allow-non-empty", "--endpoint", e.srv.Endpoint, "--cache-dir", t.TempDir(), e.bucket, mnt)
		c.Stderr = &stderr
		if err := c.Run(); err == nil || !strings.Contains(stderr.String(), "a dead mount is there") {
			t.Errorf("--allow-non-empty over a dead mount: %v %q", err, stderr.String())
		}
	})
}
