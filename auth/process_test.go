package auth

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"get-creds", []string{"get-creds"}},
		{"  /usr/bin/get-creds  --role  r1 ", []string{"/usr/bin/get-creds", "--role", "r1"}},
		{`sh -c 'echo "$X" | jq .'`, []string{"sh", "-c", `echo "$X" | jq .`}},
		{`cmd "a b" "c\"d" "e\$f" "g\h"`, []string{"cmd", "a b", `c"d`, "e$f", `g\h`}},
		{`cmd a\ b 'it''s' ""`, []string{"cmd", "a b", "its", ""}},
		{"cmd a\\\nb", []string{"cmd", "ab"}},
	} {
		got, err := SplitCommand(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "empty command"},
		{"   ", "empty command"},
		{"cmd 'open", "unterminated single quote"},
		{`cmd "open`, "unterminated double quote"},
		{`cmd \`, "ends with a backslash"},
		{"cmd | jq", `unquoted '|'`},
		{"cmd > out", `unquoted '>'`},
		{"cmd $HOME", `unquoted '$'`},
		{"a; b", `unquoted ';'`},
	} {
		if _, err := SplitCommand(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SplitCommand(%q): error %v, want %q", tc.in, err, tc.want)
		}
	}
}

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "creds.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProcess(t *testing.T) {
	ctx := context.Background()
	ok := script(t, `echo "{\"TmpSecretId\":\"AKID$1\",\"TmpSecretKey\":\"k\",\"SecurityToken\":\"t\",\"StartTime\":`+st0+`,\"ExpiredTime\":\"`+exp1h+`\"}"`)
	c, err := (&Process{Command: ok + " 'x y'", Now: fixedNow(t0)}).Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretID != "AKIDx y" || c.SessionToken != "t" || !c.StartTime.Equal(t0) || !c.ExpiredTime.Equal(t0.Add(time.Hour)) {
		t.Errorf("got %q %v %v", c.SecretID, c.StartTime, c.ExpiredTime)
	}
	aws := script(t, `printf '{"Version":1,"AccessKeyId":"AKIA","SecretAccessKey":"k","SessionToken":"t","Expiration":"2024-01-01T01:00:00Z"}'`)
	if c, err := (&Process{Command: aws, Now: fixedNow(t0)}).Retrieve(ctx); err != nil || c.SecretID != "AKIA" {
		t.Errorf("aws shape: %v %v", c, err)
	}
}

func TestProcessFailures(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, body string
		timeout    time.Duration
		limit      int
		want       []string
	}{
		{"exit 1 with stderr", "echo '{\"TmpSecretKey\":\"stdout-secret\"}'\necho 'Traceback (most recent call last):' >&2\necho '  File x' >&2\nprintf 'PermissionError: role not allowed\\n\\n' >&2\nexit 1",
			0, 0, []string{"credential-process ", "exit status 1: PermissionError: role not allowed"}},
		{"exit 3 no stderr", "exit 3", 0, 0, []string{"exit status 3"}},
		{"long stderr", "head -c 5000 /dev/zero | tr '\\0' e >&2; exit 2", 0, 0, []string{"exit status 2: eeee", "..."}},
		{"hangs", "sleep 30", 200 * time.Millisecond, 0, []string{"did not finish within 200ms; killed"}},
		{"hangs with a child holding stdout", "sleep 30 &\nwait", 200 * time.Millisecond, 0, []string{"did not finish within 200ms; killed"}},
		{"huge output", "while :; do echo '{\"TmpSecretKey\":\"stdout-secret\"}'; done", 0, 4096, []string{"printed more than 4096 bytes on stdout; refused"}},
		{"huge default limit", "head -c 3000000 /dev/zero", 0, 0, []string{"printed more than 1048576 bytes"}},
		{"nothing", "true", 0, 0, []string{"printed nothing on stdout"}},
		{"not json", "echo 'TmpSecretKey=stdout-secret'", 0, 0, []string{"answer is not a JSON object"}},
		{"expired", "echo '{\"TmpSecretId\":\"AKIDa\",\"TmpSecretKey\":\"stdout-secret\",\"ExpiredTime\":1704060000}'", 0, 0, []string{"expired at"}},
		{"missing field", "echo '{\"TmpSecretId\":\"AKIDa\",\"TmpSecretKey\":\"stdout-secret\"}'", 0, 0, []string{"missing ExpiredTime"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p := &Process{Command: script(t, tc.body), Timeout: tc.timeout, OutputLimit: tc.limit, Now: fixedNow(t0)}
			_, err := p.Retrieve(ctx)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "stdout-secret") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error shows stdout or spans lines: %q", err)
			}
			if len(err.Error()) > 400 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
	if _, err := (&Process{Command: "/nonexistent/get-creds"}).Retrieve(ctx); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing command: %v", err)
	}
	if _, err := (&Process{Command: "get-creds | jq"}).Retrieve(ctx); err == nil || !strings.Contains(err.Error(), "sh -c") {
		t.Errorf("shell syntax: %v", err)
	}
}
