package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
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
	// The background process is in a session of its own: Ctrl-C (or a
	// SIGTERM, or the terminal closing) reaches only this process, which
	// passes it on, so that the mount is abandoned, or undone once up.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
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
	type report struct {
		line string
		err  error
	}
	reported := make(chan report, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		reported <- report{strings.TrimSpace(line), err}
	}()
	var rep report
	select {
	case rep = <-reported:
	case s := <-sigs:
		return stopChild(cmd, s, sigs, exited, childErr, stderr)
	}
	switch {
	case rep.err == nil && rep.line == "ok":
		// The child points its stderr elsewhere before it says ok: what
		// it wrote before is in the pipe.
		childErr.print(stderr, 200*time.Millisecond)
		_ = cmd.Process.Release()
		return 0
	case rep.line != "":
		childErr.print(stderr, 5*time.Second)
		fmt.Fprintf(stderr, "cosmount: %s\n", strings.TrimPrefix(rep.line, "error: "))
	default:
		select {
		case err := <-exited:
			childErr.print(stderr, time.Second)
			fmt.Fprintf(stderr, "cosmount: background process ended before the mount was ready: %v\n", err)
		case s := <-sigs:
			return stopChild(cmd, s, sigs, exited, childErr, stderr)
		case <-time.After(5 * time.Second):
			childErr.print(stderr, 0)
			fmt.Fprintln(stderr, "cosmount: background process stopped reporting before the mount was ready")
		}
	}
	return 1
}

// childStopWait bounds how long the parent waits for the background
// process to end once it passed it a signal.
const childStopWait = 30 * time.Second

// stopChild passes the signal s that the waiting parent got on to the
// background process and waits for it to end, passing on the signals that
// follow too (a second one gives up the uploads of a mount that was up
// already). The child mounts nothing once it has the signal, and unmounts
// a mount it had made. It returns the exit code: 128 + the signal.
func stopChild(cmd *exec.Cmd, s os.Signal, sigs chan os.Signal, exited chan error, childErr *childStderr, stderr io.Writer) int {
	code := signalExit(s)
	_ = cmd.Process.Signal(s)
	timeout := time.After(childStopWait)
	for {
		select {
		case <-exited:
			childErr.print(stderr, time.Second)
			fmt.Fprintf(stderr, "cosmount: stopped by %s\n", signalName(s))
			return code
		case s2 := <-sigs:
			_ = cmd.Process.Signal(s2)
		case <-timeout:
			childErr.print(stderr, 0)
			fmt.Fprintf(stderr, "cosmount: stopped by %s; the background process (pid %d) has not ended after %s: "+
				"it mounts nothing, and unmounts what it mounted\n", signalName(s), cmd.Process.Pid, childStopWait)
			_ = cmd.Process.Release()
			return code
		}
	}
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
