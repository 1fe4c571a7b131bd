package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Defaults for a credential command.
const (
	DefaultProcessTimeout = 30 * time.Second
	DefaultOutputLimit    = 1 << 20 // bytes of stdout
	maxStderr             = 64 << 10
)

// Process runs a command and reads keys from the JSON it prints on stdout,
// in any shape ParseCredentialsJSON accepts. It is the filesystem's form of
// the COS SDK's getAuthorization callback.
//
// The command line is split into words like a shell would (quotes and
// backslashes), but no shell runs it: no variables, globs, pipes or
// redirections; for those, use sh -c '...'. The command gets no stdin and
// inherits the environment. It must finish within Timeout and print at most
// OutputLimit bytes; when it exits non-zero the error shows the last line of
// its stderr, cut to 200 characters. Errors never show its stdout.
type Process struct {
	Command     string
	Timeout     time.Duration    // 0 means DefaultProcessTimeout
	OutputLimit int              // 0 means DefaultOutputLimit
	Now         func() time.Time // nil means time.Now
}

// Retrieve implements Provider.
func (p *Process) Retrieve(ctx context.Context) (Credentials, error) {
	argv, err := SplitCommand(p.Command)
	if err != nil {
		return Credentials{}, fmt.Errorf("credential-process: %w", err)
	}
	name := "credential-process " + argv[0]
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultProcessTimeout
	}
	limit := p.OutputLimit
	if limit <= 0 {
		limit = DefaultOutputLimit
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Kill the whole process group, so a shell's children die too.
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = time.Second
	stdout := &cappedBuffer{limit: limit, overflow: cancel}
	stderr := &cappedBuffer{limit: maxStderr, truncate: true}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	runErr := cmd.Run()
	if errors.Is(runErr, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// The command exited 0 but something it started still holds its
		// output open: what it printed is complete.
		runErr = nil
	}
	switch {
	case stdout.overflowed():
		return Credentials{}, fmt.Errorf("%s: printed more than %d bytes on stdout; refused", name, limit)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return Credentials{}, fmt.Errorf("%s: did not finish within %s; killed", name, timeout)
	case ctx.Err() != nil:
		return Credentials{}, fmt.Errorf("%s: %w", name, ctx.Err())
	case runErr != nil:
		var ee *exec.ExitError
		msg := runErr.Error()
		if errors.As(runErr, &ee) {
			msg = ee.ProcessState.String() // "exit status 1", "signal: killed"
		}
		if line := lastLine(stderr.String()); line != "" {
			msg += ": " + line
		}
		return Credentials{}, fmt.Errorf("%s: %s", name, msg)
	}
	if len(bytes.TrimSpace(stdout.Bytes())) == 0 {
		return Credentials{}, fmt.Errorf("%s: printed nothing on stdout", name)
	}
	c, err := ParseCredentialsJSON(stdout.Bytes(), nowOr(p.Now)())
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// lastLine returns the last non-blank line of s, made printable and cut to
// 200 characters.
func lastLine(s string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := oneLine(lines[i], 200); l != "" {
			return l
		}
	}
	return ""
}

// cappedBuffer keeps at most limit bytes. Past the limit it either drops
// the rest (truncate) or fails the write and calls overflow. It is written
// by exec's copying goroutine and read after cmd.Run returns, which waits
// for that goroutine: no lock is needed.
type cappedBuffer struct {
	buf      bytes.Buffer
	limit    int
	truncate bool
	over     bool
	overflow func()
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.buf.Len(); len(p) > room {
		if b.truncate {
			b.buf.Write(p[:max(room, 0)])
			return len(p), nil
		}
		if !b.over && b.overflow != nil {
			b.overflow()
		}
		b.over = true
		return 0, errors.New("output limit exceeded")
	}
	return b.buf.Write(p)
}

func (b *cappedBuffer) overflowed() bool { return b.over }
func (b *cappedBuffer) Bytes() []byte    { return b.buf.Bytes() }
func (b *cappedBuffer) String() string   { return b.buf.String() }

// SplitCommand splits a command line into words the way a POSIX shell
// does for quoting: single quotes keep everything literally, double quotes
// keep everything but \\, \", \$ and \` escapes, and a backslash outside
// quotes escapes the next character. Unquoted shell operators (| & ; < > ( )
// $ `) are refused, since no shell will interpret them.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	end := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			end()
		case '\\':
			if i+1 >= len(s) {
				return nil, errors.New("command ends with a backslash")
			}
			i++
			if s[i] != '\n' {
				w.WriteByte(s[i])
				inWord = true
			}
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("command has an unterminated single quote")
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case '"':
			inWord = true
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '"' {
					closed = true
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0 {
					i++
					if s[i] != '\n' {
						w.WriteByte(s[i])
					}
					continue
				}
				w.WriteByte(s[i])
			}
			if !closed {
				return nil, errors.New("command has an unterminated double quote")
			}
		case '|', '&', ';', '<', '>', '(', ')', '$', '`':
			return nil, fmt.Errorf("command has an unquoted %q, but no shell runs it; use sh -c '...' for shell syntax", c)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	end()
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}
