package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv marks the background process; its value is the descriptor the
// child reports readiness on.
const childEnv = "COSMOUNT_BACKGROUND_FD"

// maxChildStderr bounds what the parent keeps of the background process's
// stderr.
const maxChildStderr = 64 << 10

// daemonize starts this program again in its own session and waits until it
// reports that the mount is usable, or why it is not. Secrets pass through
// the environment, never the command line. Until the mount is usable the
// background process's stderr comes here: what fusermount3 (which inherits
// it) or a crash says reaches the user with the reason.
func daemonize(args []string, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "cosmount: %v\n", err)
		return 1
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "cosmount: %v\n", err)
		return 1
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "cosmount: %v\n", err)
		return 1
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(stderr, "cosmount: %v\n", err)
		return 1
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, errW
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "cosmount: start background process: %v\n", err)
		return 1
	}
	w.Close()
	errW.Close()
	devnull.Close()
	childErr := collectStderr(errR)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	line, err := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case err == nil && line == "ok":
		// The child points its stderr elsewhere before it says ok: what
		// it wrote before is in the pipe.
		childErr.print(stderr, 200*time.Millisecond)
		_ = cmd.Process.Release()
		return 0
	case line != "":
		childErr.print(stderr, 5*time.Second)
		fmt.Fprintf(stderr, "cosmount: %s\n", strings.TrimPrefix(line, "error: "))
	default:
		select {
		case err := <-exited:
			childErr.print(stderr, time.Second)
			fmt.Fprintf(stderr, "cosmount: background process ended before the mount was ready: %v\n", err)
		case <-time.After(5 * time.Second):
			childErr.print(stderr, 0)
			fmt.Fprintln(stderr, "cosmount: background process stopped reporting before the mount was ready")
		}
	}
	return 1
}

// childStderr is what the background process wrote to its stderr, read
// from the pipe until it closes.
type childStderr struct {
	r    *os.File
	done chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
	cut  bool
}

func collectStderr(r *os.File) *childStderr {
	c := &childStderr{r: r, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			c.mu.Lock()
			if room := maxChildStderr - c.buf.Len(); n > room {
				n, c.cut = room, true
			}
			c.buf.Write(b[:n])
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c
}

// print copies what the child wrote to stderr, waiting up to wait for the
// pipe to close (a command the child ran may still hold it open).
func (c *childStderr) print(stderr io.Writer, wait time.Duration) {
	select {
	case <-c.done:
	case <-time.After(wait):
		_ = c.r.SetReadDeadline(time.Now())
		<-c.done
	}
	c.r.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf.Len() == 0 {
		return
	}
	b := c.buf.Bytes()
	stderr.Write(b)
	if b[len(b)-1] != '\n' {
		fmt.Fprintln(stderr)
	}
	if c.cut {
		fmt.Fprintln(stderr, "[...]")
	}
}

// readyNotifier returns the function that tells the waiting parent how the
// mount went; it reports whether a parent was told (only the background
// process has one, and only the first call tells it).
func readyNotifier() func(string) bool {
	if os.Getenv(childEnv) != "3" {
		return func(string) bool { return false }
	}
	// Not inherited by the commands this process runs (--credential-process
	// and its children): one still running would keep the parent waiting.
	syscall.CloseOnExec(3)
	f := os.NewFile(3, "ready")
	os.Unsetenv(childEnv)
	done := false
	return func(msg string) bool {
		if done || f == nil {
			return false
		}
		done = true
		if msg == "" {
			fmt.Fprintln(f, "ok")
		} else {
			fmt.Fprintln(f, "error: "+msg)
		}
		f.Close()
		return true
	}
}

// detachStderr points the background process's stderr, until now the
// waiting parent's pipe, at the log file (logw, if it is one) or
// /dev/null: the parent exits once the mount is usable, and a write to
// the pipe then would fail. What still goes to stderr (Go's own messages,
// go-fuse's) lands in the log.
func detachStderr(logw io.Writer, logger *slog.Logger) {
	target, ok := logw.(*os.File)
	if !ok {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			logger.Warn("stderr left on the parent's pipe", "err", err)
			return
		}
		defer f.Close()
		target = f
	}
	if err := unix.Dup2(int(target.Fd()), 2); err != nil {
		logger.Warn("stderr left on the parent's pipe", "err", err)
	}
}
