package main

// No secret key or token in any log line, error message or process
// argument, through a whole run with every kind of logging on.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cosmount/auth"
	"cosmount/internal/testrig"
)

// leaks returns the secrets found in any of the texts, by text name.
func leaks(texts map[string]string, secrets []string) []string {
	var found []string
	for name, txt := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(txt, s) {
				found = append(found, fmt.Sprintf("%s holds %.10s…", name, s))
			}
		}
	}
	return found
}

// refreshLogged reports whether main.go hands its logger to the credential
// flags; only then are credential refreshes logged.
func refreshLogged() bool {
	b, _ := os.ReadFile("main.go")
	return bytes.Contains(b, []byte("creds.setLogger("))
}

// procText reads /proc/PID/name with NULs made spaces.
func procText(pid int, name string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

// TestSecretsNeverShown runs a mount with --log-level debug and --debug-fuse
// through mount, ls, read, write, a failed lookup, keys revoked by the
// server while an STS refresh fails (so a read fails), recovery, and
// unmount; no secret key and no bearer token may appear anywhere.
func TestSecretsNeverShown(t *testing.T) {
	bin := build(t)
	ctx := context.Background()
	iam := testrig.StartIAM(t)
	bucket := iam.Root().NewBucket(t)
	is := newIssuer(t, iam, time.Minute, 2*time.Minute) // no rotation but the one forced below
	bearer := "BeArEr" + randHex(12)
	bearerFile := filepath.Join(t.TempDir(), "bearer")
	if err := os.WriteFile(bearerFile, []byte("Bearer "+bearer), 0o600); err != nil {
		t.Fatal(err)
	}
	base := startIssuer(t, is, bearer)
	rec := startRecorder(t, iam.Endpoint)
	root := newS3Client(t, iam.Endpoint, bucket, auth.NewStatic(auth.Credentials{SecretID: iam.AccessKey, SecretKey: iam.SecretKey}))
	if err := putSmall(ctx, root, "dir/", []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}

	m := startMount(t, bin, bucket, "--debug-fuse", "--sts-url", base+"/sts/mount",
		"--sts-header", "Authorization=@"+bearerFile, "--sts-header", "X-Client=cosmount-test",
		"--endpoint", rec.URL, "--stat-cache-ttl", "1s", "--negative-cache-ttl", "1s")
	if m.failed() {
		t.Fatalf("mount failed: %v: %s", m.err, m.stderr.String())
	}
	pid := m.cmd.Process.Pid
	texts := map[string]string{"cmdline": procText(pid, "cmdline"), "environ": procText(pid, "environ")}
	var msgs []string // every error the run met
	note := func(err error) {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}

	dir := filepath.Join(m.mnt, "dir")
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 3 {
		t.Fatalf("ls: %d entries, %v", len(ents), err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a")); err != nil || !bytes.Equal(b, smallContent("a")) {
		t.Fatalf("read: %v", err)
	}
	_, err = os.Stat(filepath.Join(dir, "nope"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of a missing name: %v", err)
	}
	note(err)
	if err := os.WriteFile(filepath.Join(dir, "new"), smallContent("new"), 0o644); err != nil {
		t.Errorf("write: %v", err)
	}

	// The server drops the keys; the refresh that follows fails once
	// (HTTP 500 from the STS endpoint), so a read fails with them...
	is.mu.Lock()
	is.failNext = 1
	is.mu.Unlock()
	if _, err := is.revokeCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = os.ReadFile(filepath.Join(dir, "b"))
	if err == nil {
		t.Errorf("a read with revoked keys and a failing STS endpoint succeeded")
	}
	note(err)
	// ... and after the backoff new keys come and reads work again.
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "b"))
		if err == nil && bytes.Equal(b, smallContent("b")) {
			break
		}
		note(err)
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the keys were revoked: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := m.stop(t); err != nil {
		t.Errorf("cosmount exit: %v", err)
	}

	texts["log"], texts["stderr"], texts["errors"] = m.log(), m.stderr.String(), strings.Join(msgs, "\n")
	all := texts["log"] + texts["stderr"]
	wants := []string{"fuse: ", "level=WARN", "InvalidAccessKeyId"}
	if refreshLogged() {
		wants = append(wants, "refused by the server", "refreshing credentials failed", "HTTP 500")
	} else {
		t.Log("main.go does not call c.creds.setLogger(logger) yet: credential refreshes are not logged")
	}
	for _, want := range wants {
		if !strings.Contains(all, want) {
			t.Errorf("the logs lack %q: the run did not go where this test wants", want)
		}
	}
	secrets := append(is.secrets(), bearer, is.secretMark)
	for _, l := range leaks(texts, secrets) {
		t.Error(l)
	}
	if t.Failed() {
		t.Logf("log and stderr:\n%s", all)
	}
	keys, sent, refused := rec.counts()
	t.Logf("%d requests with %d keys, %d refused; %d errors met: %q; %d log lines",
		sent, keys, refused, len(msgs), msgs, strings.Count(all, "\n"))
}

// TestSecretTokenNotShownOnFailure: keys with a session token, from three
// sources. versitygw refuses any token, so the mount fails; the recording
// proxy proves the token was sent, and the failure message, the logs and
// the arguments must not hold it nor the secret key.
func TestSecretTokenNotShownOnFailure(t *testing.T) {
	bin := build(t)
	ctx := context.Background()
	iam := testrig.StartIAM(t)
	bucket := iam.Root().NewBucket(t)
	files := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	account := func() auth.Credentials {
		c := auth.Credentials{SecretID: "tok" + randHex(4), SecretKey: "SeCrEt" + randHex(16), SessionToken: "ToKeN" + randHex(24)}
		if err := iam.CreateUser(ctx, c.SecretID, c.SecretKey, testrig.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		return c
	}

	cases := []struct {
		name  string
		flags func(t *testing.T) ([]string, auth.Credentials)
	}{
		{"sts-url", func(t *testing.T) ([]string, auth.Credentials) {
			is := newIssuer(t, iam, time.Minute, 2*time.Minute)
			is.token = "ToKeN" + randHex(24)
			base := startIssuer(t, is, "")
			a, err := is.issue(ctx, "/sts/mount")
			if err != nil {
				t.Fatal(err)
			}
			c := a.cred
			c.SessionToken = is.token
			return []string{"--sts-url", base + "/sts/mount"}, c
		}},
		{"key files", func(t *testing.T) ([]string, auth.Credentials) {
			c := account()
			return []string{"--secret-id-file", write("id", c.SecretID), "--secret-key-file", write("key", c.SecretKey),
				"--token-file", write("token", c.SessionToken)}, c
		}},
		{"cosfs sts file", func(t *testing.T) ([]string, auth.Credentials) {
			c := account()
			exp := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05")
			return []string{"--sts-file", write("sts", fmt.Sprintf("COSAccessKeyId=%s\nCOSSecretKey=%s\nCOSAccessToken=%s\nCOSAccessTokenExpire=%s\n",
				c.SecretID, c.SecretKey, c.SessionToken, exp))}, c
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			flags, c := tc.flags(t)
			rec := startRecorder(t, iam.Endpoint)
			m := startMount(t, bin, bucket, append(flags, "--debug-fuse", "--endpoint", rec.URL, "--timeout", "10s")...)
			select {
			case <-m.exited:
			case <-time.After(60 * time.Second):
				t.Fatal("mounted with a token the server refuses")
			}
			msg := m.stderr.String()
			if m.err == nil || strings.Count(strings.TrimSpace(msg), "\n") != 0 || !strings.Contains(msg, "bucket") {
				t.Errorf("want exit 1 with a one-line reason naming the bucket, got %v: %q", m.err, msg)
			}
			rec.mu.Lock()
			sent := rec.tokens[c.SessionToken]
			rec.mu.Unlock()
			if sent == 0 {
				t.Errorf("the token never reached the server (x-amz-security-token)")
			}
			texts := map[string]string{"stderr": msg, "log": m.log(), "cmdline": strings.Join(m.cmd.Args, " ")}
			for _, l := range leaks(texts, []string{c.SecretKey, c.SessionToken}) {
				t.Error(l)
			}
			t.Logf("token sent %d times; the mount said: %s", sent, strings.TrimSpace(msg))
		})
	}
}
