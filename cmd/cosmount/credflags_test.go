package main

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestCredFlagsSourceConfig: every credential flag lands in auth's
// configuration.
func TestCredFlagsSourceConfig(t *testing.T) {
	c, err := parseArgs([]string{
		"--credential-process", "get-keys --role r", "--sts-url", "https://sts.example/keys",
		"--sts-header", "X-Source=cosmount", "--sts-header", "authorization=@/run/bearer",
		"--cam-role", "r1", "--cam-endpoint", "http://127.0.0.1:9/", "--sts-file", "/s",
		"--secret-id-file", "/i", "--secret-key-file", "/k", "--token-file", "/t", "--passwd-file", "/p",
		"bkt-125", "/mnt"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sc := c.creds.sourceConfig(c.bucket)
	got := []string{sc.Bucket, sc.CredentialProcess, sc.STSURL, sc.CAMRole, sc.CAMEndpoint, sc.STSFile,
		sc.SecretIDFile, sc.SecretKeyFile, sc.TokenFile, sc.PasswdFile}
	want := []string{"bkt-125", "get-keys --role r", "https://sts.example/keys", "r1", "http://127.0.0.1:9/", "/s",
		"/i", "/k", "/t", "/p"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if !reflect.DeepEqual(sc.STSHeaders, map[string]string{"X-Source": "cosmount"}) ||
		!reflect.DeepEqual(sc.STSHeaderFiles, map[string]string{"Authorization": "/run/bearer"}) {
		t.Errorf("headers %v, header files %v", sc.STSHeaders, sc.STSHeaderFiles)
	}
	if sc.Env == nil || sc.Refresh.Logf == nil {
		t.Error("no environment or no refresh log")
	}

	c, err = parseArgs([]string{"b", "/m"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if sc := c.creds.sourceConfig("b"); sc.STSHeaders != nil || sc.STSHeaderFiles != nil || sc.STSURL != "" {
		t.Errorf("defaults: %+v", sc)
	}
}

// TestCredFlagsSTSHeader: the forms --sts-header takes and refuses; a
// refusal never quotes the value.
func TestCredFlagsSTSHeader(t *testing.T) {
	const secret = "s3cr3t-VALUE"
	for _, tc := range []struct {
		args []string
		want string // "" means accepted
	}{
		{[]string{"X-Trace=abc"}, ""},
		{[]string{"X-Empty="}, ""},
		{[]string{"Authorization=@/run/token"}, ""},
		{[]string{"X-Api-Key=@/k", "X-Other=v=w"}, ""},
		{[]string{"Authorization=Bearer " + secret}, "put the value in a file"},
		{[]string{"X-Api-Key=" + secret}, "put the value in a file"},
		{[]string{"Cookie=" + secret}, "put the value in a file"},
		{[]string{"X-Session-Token=" + secret}, "put the value in a file"},
		{[]string{"novalue"}, "want Name=value"},
		{[]string{"=" + secret}, "want Name=value"},
		{[]string{"Bad Name=" + secret}, "header name"},
		{[]string{"X-A=1", "x-a=2"}, "given twice"},
		{[]string{"X-File=@"}, "no file after @"},
		{[]string{"X-Line=a\r\nInjected: " + secret}, "line break"},
	} {
		var h headerFlag
		var err error
		for _, a := range tc.args {
			if err = h.Set(a); err != nil {
				break
			}
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one saying %q", tc.args, err, tc.want)
		case err != nil && strings.Contains(err.Error(), secret):
			t.Errorf("%q: the error quotes the value: %v", tc.args, err)
		}
		if strings.Contains(h.String(), secret) || strings.Contains(h.String(), "abc") {
			t.Errorf("String() shows a value: %q", h.String())
		}
	}
}

// TestCredFlagsHelp: -h lists every credential flag.
func TestCredFlagsHelp(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseArgs([]string{"-h"}, &out); err != flag.ErrHelp {
		t.Fatalf("-h: %v", err)
	}
	for _, f := range []string{"-passwd-file", "-credential-process", "-sts-url", "-sts-header", "-cam-role",
		"-cam-endpoint", "-sts-file", "-secret-id-file", "-secret-key-file", "-token-file"} {
		if !strings.Contains(out.String(), f+" ") && !strings.Contains(out.String(), f+"\n") {
			t.Errorf("help lacks %s", f)
		}
	}
}

// TestCredFlagsRefreshLog: refresh messages go to the logger given with
// setLogger, failures as warnings, and nowhere without one.
func TestCredFlagsRefreshLog(t *testing.T) {
	cf := &credFlags{}
	logf := cf.sourceConfig("b").Refresh.Logf
	logf("credentials %s loaded", "X") // no logger: dropped, no panic
	var buf bytes.Buffer
	cf.setLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	logf("credentials %s loaded, expire in %s", "K***", "12s")
	logf("refreshing credentials failed: %v", "boom")
	got := buf.String()
	if !strings.Contains(got, `level=INFO msg="credentials K*** loaded, expire in 12s"`) ||
		!strings.Contains(got, `level=WARN msg="refreshing credentials failed: boom"`) {
		t.Errorf("log:\n%s", got)
	}
}

// TestCredFlagsMountFailures: a source that cannot give keys fails the
// mount with a one-line reason, before anything is mounted, and without
// the secrets the source handled.
func TestCredFlagsMountFailures(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	const leak = "LeAkMe0123456789"
	worldReadable := filepath.Join(dir, "sts")
	if err := os.WriteFile(worldReadable, []byte("COSAccessKeyId=AKID\nCOSSecretKey="+leak+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unreachable STS URL", []string{"--sts-url", "http://127.0.0.1:1/keys"}, 1, "unreachable"},
		{"command fails", []string{"--credential-process", "sh -c 'echo no keys for you >&2; exit 3'"}, 1, "exit status 3: no keys for you"},
		{"command prints junk", []string{"--credential-process", `sh -c 'echo "{\"TmpSecretId\":\"a\",\"TmpSecretKey\":\"` + leak + `\""'`}, 1, "malformed JSON"},
		{"command prints expired keys", []string{"--credential-process", `sh -c 'echo "{\"TmpSecretId\":\"a\",\"TmpSecretKey\":\"` + leak + `\",\"ExpiredTime\":1000}"'`}, 1, "expired"},
		{"unreachable CAM role", []string{"--cam-role", "r", "--cam-endpoint", "http://127.0.0.1:1/role/"}, 1, "unreachable"},
		{"STS file readable by others", []string{"--sts-file", worldReadable}, 1, "STS file"},
		{"key file alone", []string{"--secret-key-file", worldReadable}, 1, "given together"},
		{"inline bearer token", []string{"--sts-url", "http://127.0.0.1:1/", "--sts-header", "Authorization=Bearer x"}, 2, "in a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			logFile := filepath.Join(t.TempDir(), "log")
			// In the background, as users run it: the reason comes back
			// through the parent, and the log goes to its file.
			c := exec.Command(bin, append(tc.args, "--log-level", "debug", "--log-file", logFile,
				"--endpoint", "http://127.0.0.1:1", "--timeout", "2s", "bkt", mnt)...)
			c.Env, c.Stderr = credEnv(), &stderr
			err := c.Run()
			code := -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			msg := stderr.String()
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Errorf("exit %d (%v) %q; want exit %d and a reason saying %q", code, err, msg, tc.code, tc.want)
			}
			if tc.code == 1 && strings.Count(strings.TrimSpace(msg), "\n") != 0 {
				t.Errorf("the reason is not one line: %q", msg)
			}
			log, _ := os.ReadFile(logFile)
			if strings.Contains(msg, leak) || strings.Contains(string(log), leak) {
				t.Errorf("the reason or the log shows the secret: %q\n%s", msg, log)
			}
			if mounted(mnt) {
				t.Errorf("mounted")
			}
		})
	}
}

// TestCredFlagsSTSURLSecret: an --sts-url with a query or user info is
// refused (ps would show it, the background process's arguments too)
// without quoting it; @/path/file names a file holding the URL.
func TestCredFlagsSTSURLSecret(t *testing.T) {
	const secret = "s3cr3t-VALUE"
	for _, tc := range []struct{ url, want string }{
		{"https://sts.example/keys", ""},
		{"https://sts.example/keys?token=" + secret, "put the URL in a file"},
		{"https://user:" + secret + "@sts.example/keys", "put the URL in a file"},
		{"https://" + secret + "@sts.example/keys", "put the URL in a file"},
		{"https://sts.example/keys?", "put the URL in a file"},
		{"@/run/sts-url", ""},
		{"@", "no file after @"},
	} {
		c, err := parseArgs([]string{"--sts-url", tc.url, "b", "/m"}, io.Discard)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--sts-url @/path/file") && tc.url != "@"):
			t.Errorf("%q: error %v, want one saying %q", tc.url, err, tc.want)
		case err != nil && strings.Contains(err.Error(), secret):
			t.Errorf("%q: the error quotes the URL: %v", tc.url, err)
		}
		if err != nil || tc.url[0] != '@' {
			continue
		}
		if sc := c.creds.sourceConfig("b"); sc.STSURL != "" || sc.STSURLFile != "/run/sts-url" {
			t.Errorf("%q: STSURL %q, STSURLFile %q", tc.url, sc.STSURL, sc.STSURLFile)
		}
	}
}

// TestURLFlagsUserInfo: --endpoint and --cam-endpoint refuse user info
// (ps shows flags, the background process's too), and no refusal quotes
// the URL's user info or query.
func TestURLFlagsUserInfo(t *testing.T) {
	const secret = "s3cr3t-VALUE"
	for _, flagName := range []string{"--endpoint", "--cam-endpoint"} {
		for _, tc := range []struct{ url, want string }{
			{"http://127.0.0.1:9000", ""},
			{"https://s3.example/base/", ""},
			{"http://AKID:" + secret + "@127.0.0.1:9000", "user info"},
			{"https://" + secret + "@s3.example", "user info"},
			{"http://:" + secret + "@s3.example", "user info"},
			{"ftp://u:" + secret + "@s3.example/?k=" + secret, "user info"},
			{"ftp://s3.example/p?sig=" + secret + "#" + secret, "--url ftp://s3.example/p: want an http:// or https:// URL"},
			{"mailto:u:" + secret + "@s3.example?x=" + secret, "is not an http:// or https:// URL"},
			{"AKID:" + secret + "@s3.example", "is not an http:// or https:// URL"},
			{"http://s3.example:bad" + secret, "is not a URL"},
			{"http:///only/" + "path?" + secret, "want an http:// or https:// URL with a host"},
		} {
			args := []string{flagName, tc.url, "b", "/m"}
			if flagName == "--cam-endpoint" {
				args = append([]string{"--cam-role", "r"}, args...)
			}
			_, err := parseArgs(args, io.Discard)
			want := strings.ReplaceAll(tc.want, "--url", flagName)
			switch {
			case want == "" && err != nil:
				t.Errorf("%s %q: %v", flagName, tc.url, err)
			case want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), flagName)):
				t.Errorf("%s %q: error %v, want one saying %q", flagName, tc.url, err, want)
			case err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(strings.ToLower(err.Error()), "akid")):
				t.Errorf("%s %q: the error quotes the secret: %v", flagName, tc.url, err)
			}
		}
	}
}
