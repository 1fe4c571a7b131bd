package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDaemonReadyPipeNotInherited: the background process's readiness pipe
// does not reach the commands it runs. A credential command leaves a child
// running and the background process dies before it reports: the parent
// must see the pipe close at once, not wait for the child.
func TestDaemonReadyPipeNotInherited(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	// sh's parent is the background process: the command kills it after
	// starting a child that outlives both.
	script := "sleep 30 </dev/null >/dev/null 2>&1 & echo $! > " + pidFile + "; kill -9 $PPID"
	c := exec.Command(bin, "--credential-process", "sh -c '"+script+"'",
		"--endpoint", "http://127.0.0.1:1", "--timeout", "2s", "bkt", t.TempDir())
	var stderr bytes.Buffer
	c.Env, c.Stderr = credEnv(), &stderr
	start := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(stderr.String(), "background process ended before the mount was ready") {
			t.Errorf("exit %v, %q", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		_ = c.Process.Kill()
		<-done
		t.Fatalf("the parent still waits %s after the background process died: its child holds the readiness pipe", time.Since(start).Round(time.Second))
	}
}
