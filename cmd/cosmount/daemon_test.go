package main

import (
	"bytes"
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

// TestBackgroundMountFailureSaysWhy: when the mount fails in fusermount3,
// what it says reaches the user along with cosmount's reason (the
// background process's stderr was /dev/null: only "fusermount exited with
// code 256" was left). Root in a user namespace of its own has no right to
// mount: go-fuse's direct mount fails, and so does fusermount3.
func TestBackgroundMountFailureSaysWhy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("maps root into a user namespace: needs root")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skip("no fusermount3")
	}
	e := setup(t)
	mnt := t.TempDir()
	c := e.cmd(e.srv.SecretKey, "--endpoint", e.srv.Endpoint, "--cache-dir", t.TempDir(), e.bucket, mnt)
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	err := c.Run()
	if err != nil && strings.Contains(err.Error(), "fork/exec") {
		t.Skipf("no user namespace: %v", err)
	}
	if mounted(mnt) {
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		t.Fatal("mounted from a user namespace")
	}
	msg := stderr.String()
	t.Logf("cosmount says:\n%s", msg)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit %v, want 1: %s", err, msg)
	}
	if !strings.Contains(msg, "fusermount3: ") || !strings.Contains(msg, "cosmount: mount "+mnt) {
		t.Errorf("the failure does not say why (want fusermount3's words, then cosmount's reason): %q", msg)
	}
	if strings.Contains(msg, e.srv.SecretKey) {
		t.Errorf("the secret appears in the error: %q", msg)
	}
}

// TestCheckFuseDevice: a missing FUSE device is named with its cause and
// what to do, before any mount is tried.
func TestCheckFuseDevice(t *testing.T) {
	if fuseDevice == "" {
		t.Skip("no /dev/fuse on this system")
	}
	missing := filepath.Join(t.TempDir(), "fuse")
	for _, euid := range []int{0, 1000} {
		err := checkFuseDevice(missing, euid)
		if err == nil || !strings.Contains(err.Error(), "FUSE device "+missing+" does not exist") ||
			!strings.Contains(err.Error(), "modprobe fuse") {
			t.Errorf("euid %d, missing device: %v", euid, err)
		}
	}
	if err := checkFuseDevice(os.DevNull, 0); err != nil {
		t.Errorf("a device that opens: %v", err)
	}
}

// TestBackgroundStderrLeavesTheParent: once the background mount is up its
// stderr is no longer the parent's pipe (which is gone once the parent
// exits): /dev/null, or the log file with --log-file.
func TestBackgroundStderrLeavesTheParent(t *testing.T) {
	e := setup(t)
	for _, logged := range []bool{false, true} {
		mnt := t.TempDir()
		args := []string{"--endpoint", e.srv.Endpoint, "--cache-dir", t.TempDir()}
		logFile := filepath.Join(t.TempDir(), "log")
		if logged {
			args = append(args, "--log-file", logFile)
		}
		var stderr bytes.Buffer
		c := e.cmd(e.srv.SecretKey, append(args, e.bucket, mnt)...)
		c.Stderr = &stderr
		if err := c.Run(); err != nil {
			t.Fatalf("mount: %v: %s", err, stderr.String())
		}
		pid := findMountProcess(t, mnt)
		fd2, err := os.Readlink("/proc/" + pid + "/fd/2")
		want := os.DevNull
		if logged {
			want = logFile
		}
		if err != nil || fd2 != want {
			t.Errorf("--log-file %v: the background process's stderr is %q (%v), want %s", logged, fd2, err, want)
		}
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
			t.Fatalf("umount: %v %s", err, out)
		}
		waitGone(t, pid)
	}
}

// TestSignalToWaitingParentCancelsMount: Ctrl-C (or SIGTERM) to cosmount
// while it waits for its background process to mount reaches that
// process, in a session of its own: the parent exits 128+N once it ended,
// and nothing is mounted, then or later.
func TestSignalToWaitingParentCancelsMount(t *testing.T) {
	e := setup(t)
	u, err := url.Parse(e.srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			// The bucket's first listing waits here until the signal was
			// sent and a little more: without the signal passed on, the
			// background process mounts after it.
			listing := make(chan struct{}, 1)
			release := make(chan struct{})
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					select {
					case listing <- struct{}{}:
					default:
					}
					select {
					case <-release:
					case <-r.Context().Done():
						return
					}
				}
				rp.ServeHTTP(w, r)
			}))
			defer proxy.Close()
			mnt := t.TempDir()
			c := e.cmd(e.srv.SecretKey, "--endpoint", proxy.URL, "--cache-dir", t.TempDir(), e.bucket, mnt)
			var stderr bytes.Buffer
			c.Stderr = &stderr
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- c.Wait() }()
			t.Cleanup(func() {
				if mounted(mnt) {
					syscall.Unmount(mnt, syscall.MNT_DETACH)
				}
				killMountProcesses(mnt)
			})
			select {
			case <-listing:
			case err := <-done:
				close(release)
				t.Fatalf("ended before listing the bucket: %v %s", err, stderr.String())
			case <-time.After(20 * time.Second):
				close(release)
				t.Fatal("the bucket was not listed")
			}
			c.Process.Signal(tc.sig)
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				close(release)
				t.Fatalf("the parent still waits 20 s after %v", tc.sig)
			}
			time.AfterFunc(200*time.Millisecond, func() { close(release) })
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != tc.code {
				t.Errorf("exit %v, want %d: %s", err, tc.code, stderr.String())
			}
			// Long enough for a background process left running to mount.
			time.Sleep(2 * time.Second)
			if mounted(mnt) {
				t.Errorf("mounted after %v to the waiting parent", tc.sig)
			}
			if pids := mountProcesses(mnt); len(pids) != 0 {
				t.Errorf("background process %v still running after the parent ended", pids)
			}
		})
	}
}

// mountProcesses lists the cosmount processes that have mnt in their
// arguments.
func mountProcesses(mnt string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && args[0] == binary && strings.Contains(string(b), "\x00"+mnt+"\x00") {
			if st, _ := os.ReadFile("/proc/" + d.Name() + "/stat"); !strings.Contains(string(st), ") Z ") {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func killMountProcesses(mnt string) {
	for _, pid := range mountProcesses(mnt) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
