package auth

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewProviderPrecedence configures every source at once, then removes
// the winner one by one: each step must pick the next source in the
// documented order.
func TestNewProviderPrecedence(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkdir(t, home)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "cam") {
			fmt.Fprintf(w, `{"TmpSecretId":"AKIDcam","TmpSecretKey":"k","Token":"t","ExpiredTime":%s,"Code":"Success"}`, exp1h)
			return
		}
		fmt.Fprintf(w, `{"credentials":{"tmpSecretId":"AKIDurl","tmpSecretKey":"k","sessionToken":"t"},"expiredTime":%s}`, exp1h)
	})
	cfg := SourceConfig{
		Bucket:            "b-1",
		CredentialProcess: script(t, `echo '{"TmpSecretId":"AKIDproc","TmpSecretKey":"k","ExpiredTime":`+exp1h+`}'`),
		STSURL:            s.URL + "/sts",
		CAMRole:           "role",
		CAMEndpoint:       s.URL + "/cam/",
		STSFile:           writeFile(t, dir, "sts", "COSAccessKeyId=AKIDstsfile\nCOSSecretKey=k\n", 0o600),
		SecretIDFile:      writeFile(t, dir, "id", "AKIDkeyfiles", 0o644),
		SecretKeyFile:     writeFile(t, dir, "key", "k", 0o644),
		PasswdFile:        writeFile(t, dir, "passwd", "AKIDpasswd:k\n", 0o600),
		Env: func(k string) string {
			return map[string]string{"COSACCESSKEYID": "AKIDenv", "COSSECRETACCESSKEY": "k"}[k]
		},
		HomeDir:          home,
		SystemPasswdFile: writeFile(t, dir, "etc-passwd", "AKIDetc:k\n", 0o600),
		Now:              fixedNow(t0),
	}
	writeFile(t, home, ".passwd-cosmount", "b-1:AKIDhome:k\n", 0o600)
	steps := []struct {
		id, desc string
		drop     func(*SourceConfig)
	}{
		{"AKIDproc", "credential process ", func(c *SourceConfig) { c.CredentialProcess = "" }},
		{"AKIDurl", "STS URL " + s.URL + "/sts", func(c *SourceConfig) { c.STSURL = "" }},
		{"AKIDcam", "CAM role role", func(c *SourceConfig) { c.CAMRole = "" }},
		{"AKIDstsfile", "STS file ", func(c *SourceConfig) { c.STSFile = "" }},
		{"AKIDkeyfiles", "key files ", func(c *SourceConfig) { c.SecretIDFile, c.SecretKeyFile = "", "" }},
		{"AKIDpasswd", "passwd file ", func(c *SourceConfig) { c.PasswdFile = "" }},
		{"AKIDenv", "environment (COSACCESSKEYID)", func(c *SourceConfig) { c.Env = func(string) string { return "" } }},
		{"AKIDhome", "passwd file " + filepath.Join(home, ".passwd-cosmount"), func(c *SourceConfig) { c.HomeDir = dir }},
		{"AKIDetc", "passwd file " + filepath.Join(dir, "etc-passwd"), func(c *SourceConfig) { c.SystemPasswdFile = filepath.Join(dir, "none") }},
	}
	for _, st := range steps {
		p, desc, err := NewProvider(context.Background(), cfg)
		if err != nil {
			t.Fatalf("want %s: %v", st.id, err)
		}
		c, _ := p.Retrieve(context.Background())
		if c.SecretID != st.id || !strings.HasPrefix(desc, st.desc) {
			t.Errorf("got %s from %q, want %s from %q", c.SecretID, desc, st.id, st.desc)
		}
		if _, ok := p.(Invalidator); !ok {
			t.Error("the provider is not an Invalidator")
		}
		st.drop(&cfg)
	}
	_, _, err := NewProvider(context.Background(), cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "no credentials: give --credential-process") {
		t.Errorf("nothing configured: %v", err)
	}
}

func TestNewProviderFailsWithOneLine(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		cfg  SourceConfig
		want string
	}{
		{SourceConfig{CredentialProcess: script(t, "echo 'role denied' >&2; exit 1")}, "credentials: credential-process "},
		{SourceConfig{CredentialProcess: "a 'b"}, "--credential-process: command has an unterminated single quote"},
		{SourceConfig{PasswdFile: writeFile(t, dir, "p", "AKIDx:k\n", 0o644)}, "credentials: passwd file "},
		{SourceConfig{SecretKeyFile: "/x"}, "must be given together"},
		{SourceConfig{Env: func(k string) string {
			if k == "AWS_ACCESS_KEY_ID" {
				return "AKIA"
			}
			return ""
		}}, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"},
	} {
		_, _, err := NewProvider(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q, want one line with %q", err, tc.want)
		}
	}
	// A home passwd file that is refused is an error, not a reason to look further.
	home := filepath.Join(dir, "home")
	mkdir(t, home)
	writeFile(t, home, ".passwd-cosmount", "AKIDx:k\n", 0o644)
	_, _, err := NewProvider(context.Background(), SourceConfig{HomeDir: home, Env: func(string) string { return "" },
		SystemPasswdFile: writeFile(t, dir, "etc", "AKIDy:k\n", 0o600)})
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("open home passwd file: %v", err)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}
