package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// childEnv marks the background process; its value is the descriptor the
// child reports readiness on.
const childEnv = "COSMOUNT_BACKGROUND_FD"

// daemonize starts this program again in its own session and waits until it
// reports that the mount is usable, or why it is not. Secrets pass through
// the environment, never the command line.
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
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(stderr, "cosmount: %v\n", err)
		return 1
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "cosmount: start background process: %v\n", err)
		return 1
	}
	w.Close()
	devnull.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	line, err := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case err == nil && line == "ok":
		_ = cmd.Process.Release()
		return 0
	case line != "":
		fmt.Fprintf(stderr, "cosmount: %s\n", strings.TrimPrefix(line, "error: "))
	default:
		select {
		case err := <-exited:
			fmt.Fprintf(stderr, "cosmount: background process ended before the mount was ready: %v\n", err)
		case <-time.After(5 * time.Second):
			fmt.Fprintln(stderr, "cosmount: background process stopped reporting before the mount was ready")
		}
	}
	return 1
}

// readyNotifier returns the function that tells the waiting parent how the
// mount went; in the foreground it does nothing.
func readyNotifier() func(string) {
	if os.Getenv(childEnv) != "3" {
		return func(string) {}
	}
	// Not inherited by the commands this process runs (--credential-process
	// and its children): one still running would keep the parent waiting.
	syscall.CloseOnExec(3)
	f := os.NewFile(3, "ready")
	os.Unsetenv(childEnv)
	done := false
	return func(msg string) {
		if done || f == nil {
			return
		}
		done = true
		if msg == "" {
			fmt.Fprintln(f, "ok")
		} else {
			fmt.Fprintln(f, "error: "+msg)
		}
		f.Close()
	}
}
