package auth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestPasswdFile(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	p := writeFile(t, dir, "passwd", `# cosmount keys
   
AKIDdefault:keydefault
other-1250000000:AKIDother:keyother
mybucket-1250000000 : AKIDmine : keymine
AKIDdefault2:keydefault2
`, 0o600)
	c, err := (&PasswdFile{Path: p, Bucket: "mybucket-1250000000"}).Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretID != "AKIDmine" || c.SecretKey != "keymine" || !c.Permanent() {
		t.Errorf("bucket line: got %q %q", c.SecretID, c.SecretKey)
	}
	c, err = (&PasswdFile{Path: p, Bucket: "third-1"}).Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretID != "AKIDdefault" || c.SecretKey != "keydefault" {
		t.Errorf("default line: got %q %q", c.SecretID, c.SecretKey)
	}

	only := writeFile(t, dir, "only", "b1:AKIDx:keyx\n", 0o600)
	if _, err := (&PasswdFile{Path: only, Bucket: "b2"}).Retrieve(ctx); err == nil || !strings.Contains(err.Error(), `no line for bucket "b2"`) {
		t.Errorf("no matching line: %v", err)
	}
	bad := writeFile(t, dir, "bad", "AKIDx:keyx\nAKIDsecretish\n", 0o600)
	if _, err := (&PasswdFile{Path: bad}).Retrieve(ctx); err == nil || !strings.Contains(err.Error(), "line 2: want SecretId:SecretKey") {
		t.Errorf("malformed line: %v", err)
	} else if strings.Contains(err.Error(), "AKIDsecretish") {
		t.Errorf("error quotes the line: %v", err)
	}

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		open := writeFile(t, dir, "open", "AKIDx:keyx\n", mode)
		_, err := (&PasswdFile{Path: open}).Retrieve(ctx)
		if err == nil || !strings.Contains(err.Error(), "accessible to group or others") || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %o: %v", mode, err)
		}
	}
	if _, err := (&PasswdFile{Path: filepath.Join(dir, "missing")}).Retrieve(ctx); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := (&PasswdFile{Path: dir}).Retrieve(ctx); err == nil {
		t.Error("a directory was accepted")
	}
}

func TestPasswdFileInSTSFormat(t *testing.T) {
	now := time.Date(2017, 8, 29, 20, 0, 0, 0, time.UTC)
	p := writeFile(t, t.TempDir(), "passwd-sts", "COSAccessKeyId=AKIDtmp\nCOSSecretKey=ktmp\nCOSAccessToken=tok\nCOSAccessTokenExpire=2017-08-29T20:30:00\n", 0o600)
	c, err := (&PasswdFile{Path: p, Now: fixedNow(now)}).Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretID != "AKIDtmp" || c.SessionToken != "tok" || !c.ExpiredTime.Equal(now.Add(30*time.Minute)) {
		t.Errorf("got %v %q %v", c, c.SessionToken, c.ExpiredTime)
	}
}

func TestSTSFile(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2017, 8, 29, 20, 0, 0, 0, time.UTC)
	p := writeFile(t, dir, "sts", `# from the rotation job
COSAccessKeyId=AKIDXXXX  #the temporary key's id
COSSecretKey=GYYYY
COSAccessToken=109dbb14ca0c30ef4b7e2fc9612f26788cadbfac3
COSAccessTokenExpire=2017-08-29T20:30:00  #GMT
`, 0o600)
	c, err := (&STSFile{Path: p, Now: fixedNow(now)}).Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretID != "AKIDXXXX" || c.SecretKey != "GYYYY" || c.SessionToken != "109dbb14ca0c30ef4b7e2fc9612f26788cadbfac3" {
		t.Errorf("got %q %q %q", c.SecretID, c.SecretKey, c.SessionToken)
	}
	if want := time.Date(2017, 8, 29, 20, 30, 0, 0, time.UTC); !c.ExpiredTime.Equal(want) {
		t.Errorf("expiry %v, want %v (GMT)", c.ExpiredTime, want)
	}

	perm := writeFile(t, dir, "perm", "COSAccessKeyId=AKIDp\nCOSSecretKey=kp\n", 0o600)
	if c, err := (&STSFile{Path: perm}).Retrieve(context.Background()); err != nil || !c.Permanent() {
		t.Errorf("permanent keys: %v %v", c, err)
	}

	for _, tc := range []struct{ body, want string }{
		{"COSSecretKey=k\n", "missing COSAccessKeyId="},
		{"COSAccessKeyId=a\n", "missing COSSecretKey="},
		{"COSAccessKeyId=a\nCOSSecretKey=k\nCOSAccessToken=t\n", "COSAccessToken= without COSAccessTokenExpire="},
		{"COSAccessKeyId=a\nCOSSecretKey=k\nCOSAccessToken=t\nCOSAccessTokenExpire=tomorrow\n", "not a GMT time"},
		{"COSAccessKeyId=a\nCOSSecretKey=k\nCOSAccessToken=t\nCOSAccessTokenExpire=2017-08-29T19:00:00\n", "has passed (1h0m0s ago)"},
		{"COSAccessKeyId=a\nCOSSecretKey=k\njunk\n", "line 3: want KEY=VALUE"},
	} {
		f := writeFile(t, dir, "case", tc.body, 0o600)
		_, err := (&STSFile{Path: f, Now: fixedNow(now)}).Retrieve(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.body, err, tc.want)
		}
	}
	open := writeFile(t, dir, "open", "COSAccessKeyId=a\nCOSSecretKey=k\n", 0o644)
	if _, err := (&STSFile{Path: open}).Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("mode 0644: %v", err)
	}
}

// TestSTSFileRotation: the refresher re-reads the file as the token nears
// its expiry, and picks up what a rotation job wrote.
func TestSTSFileRotation(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock(time.Date(2017, 8, 29, 20, 0, 0, 0, time.UTC))
	write := func(id, exp string) {
		writeFile(t, dir, "sts", "COSAccessKeyId="+id+"\nCOSSecretKey=k\nCOSAccessToken=t\nCOSAccessTokenExpire="+exp+"\n", 0o600)
	}
	write("AKIDone", "2017-08-29T20:15:00")
	r := NewRefresher(&STSFile{Path: filepath.Join(dir, "sts"), Now: clk.Now}, RefresherOptions{Now: clk.Now})
	ctx := context.Background()
	if c, err := r.Retrieve(ctx); err != nil || c.SecretID != "AKIDone" {
		t.Fatalf("first: %v %v", c, err)
	}
	// The job rotates early; the refresher does not look before the margin.
	write("AKIDtwo", "2017-08-29T20:45:00")
	clk.Add(5 * time.Minute)
	if c, _ := r.Retrieve(ctx); c.SecretID != "AKIDone" {
		t.Fatalf("re-read too early: %v", c)
	}
	// 15 min lifetime: refresh in the last 5 min.
	clk.Add(5*time.Minute + time.Second)
	if c, _ := r.Retrieve(ctx); c.SecretID != "AKIDone" {
		t.Fatalf("the refresh in the margin must not block: %v", c)
	}
	r.bg.Wait()
	if c, err := r.Retrieve(ctx); err != nil || c.SecretID != "AKIDtwo" {
		t.Fatalf("after the refresh: %v %v", c, err)
	}
}

func TestKeyFilesAndEnv(t *testing.T) {
	dir := t.TempDir()
	id := writeFile(t, dir, "id", "AKIDfile\n", 0o644)
	key := writeFile(t, dir, "key", "  keyfile\n", 0o644)
	tok := writeFile(t, dir, "tok", "tokfile\n", 0o644)
	empty := writeFile(t, dir, "empty", "\n", 0o644)
	c, err := (&KeyFiles{SecretIDFile: id, SecretKeyFile: key, TokenFile: tok}).Retrieve(context.Background())
	if err != nil || c.SecretID != "AKIDfile" || c.SecretKey != "keyfile" || c.SessionToken != "tokfile" {
		t.Errorf("key files: %q %q %q %v", c.SecretID, c.SecretKey, c.SessionToken, err)
	}
	if _, err := (&KeyFiles{SecretIDFile: id, SecretKeyFile: empty}).Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty key file: %v", err)
	}

	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		vars          map[string]string
		name, id, tok string
		err           string
	}{
		{map[string]string{"TENCENTCLOUD_SECRET_ID": "AKIDt", "TENCENTCLOUD_SECRET_KEY": "kt", "TENCENTCLOUD_SESSION_TOKEN": "tt",
			"COSACCESSKEYID": "AKIDc", "COSSECRETACCESSKEY": "kc"}, "TENCENTCLOUD_SECRET_ID", "AKIDt", "tt", ""},
		{map[string]string{"COSACCESSKEYID": "AKIDc", "COSSECRETACCESSKEY": "kc", "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "ka"},
			"COSACCESSKEYID", "AKIDc", "", ""},
		{map[string]string{"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "ka", "AWS_SESSION_TOKEN": "ta"}, "AWS_ACCESS_KEY_ID", "AKIA", "ta", ""},
		{map[string]string{"TENCENTCLOUD_SECRET_ID": "AKIDt"}, "", "", "", "TENCENTCLOUD_SECRET_ID is set but TENCENTCLOUD_SECRET_KEY is not"},
		{map[string]string{"AWS_SECRET_ACCESS_KEY": "ka"}, "", "", "", "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"},
	} {
		c, name, ok, err := fromEnv(env(tc.vars))
		if !ok {
			t.Errorf("%v: not found", tc.vars)
			continue
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want %q", tc.vars, err, tc.err)
			}
			continue
		}
		if err != nil || name != tc.name || c.SecretID != tc.id || c.SessionToken != tc.tok || !c.Permanent() {
			t.Errorf("%v: got %s %q %q %v", tc.vars, name, c.SecretID, c.SessionToken, err)
		}
	}
	if _, _, ok, _ := fromEnv(env(nil)); ok {
		t.Error("empty environment found keys")
	}
}

// TestFileKeysReread: keys from files carry no expiry but are read again
// when the server refuses them, and key files with a token file every
// KeyFilesReread too; keys from the environment stay as they were.
func TestFileKeysReread(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	clk := newFakeClock(t0)
	id := writeFile(t, dir, "id", "AKIDfile\n", 0o644)
	key := writeFile(t, dir, "key", "keyfile\n", 0o644)
	tok := writeFile(t, dir, "tok", "tok1\n", 0o644)
	p, _, err := NewProvider(ctx, SourceConfig{SecretIDFile: id, SecretKeyFile: key, TokenFile: tok, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	r := p.(*Refresher)
	first, _ := r.Retrieve(ctx)
	if first.SessionToken != "tok1" || !first.Permanent() {
		t.Fatalf("first keys: %v %q", first, first.SessionToken)
	}
	// An agent rotates the token; the server refuses the old one.
	writeFile(t, dir, "tok", "tok2\n", 0o644)
	r.Invalidate(first)
	if c, err := r.Retrieve(ctx); err != nil || c.SessionToken != "tok2" {
		t.Fatalf("after Invalidate: %q %v", c.SessionToken, err)
	}
	// Rotated again, nothing refused yet: read again after KeyFilesReread.
	writeFile(t, dir, "tok", "tok3\n", 0o644)
	clk.Add(KeyFilesReread - time.Second)
	r.Retrieve(ctx)
	r.bg.Wait()
	if c, _ := r.Retrieve(ctx); c.SessionToken != "tok2" {
		t.Fatalf("read again before KeyFilesReread: %q", c.SessionToken)
	}
	clk.Add(time.Second)
	if c, err := r.Retrieve(ctx); err != nil || c.SessionToken != "tok2" {
		t.Fatalf("the periodic re-read blocked a caller: %q %v", c.SessionToken, err)
	}
	r.bg.Wait()
	if c, _ := r.Retrieve(ctx); c.SessionToken != "tok3" {
		t.Fatalf("not read again after KeyFilesReread: %q", c.SessionToken)
	}
	// Files being rewritten (missing for a moment): the keys in hand stay.
	os.Remove(tok)
	clk.Add(KeyFilesReread)
	r.Retrieve(ctx)
	r.bg.Wait()
	if c, err := r.Retrieve(ctx); err != nil || c.SessionToken != "tok3" {
		t.Fatalf("while the token file is missing: %q %v", c.SessionToken, err)
	}
	writeFile(t, dir, "tok", "tok4\n", 0o644)
	clk.Add(DefaultMaxBackoff)
	r.Retrieve(ctx)
	r.bg.Wait()
	if c, _ := r.Retrieve(ctx); c.SessionToken != "tok4" {
		t.Fatalf("after the token file came back: %q", c.SessionToken)
	}

	// A passwd file: read again when the server refuses its keys, not
	// unasked.
	pw := writeFile(t, dir, "passwd", "AKIDold:keyold\n", 0o600)
	p, _, err = NewProvider(ctx, SourceConfig{PasswdFile: pw, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	r = p.(*Refresher)
	old, _ := r.Retrieve(ctx)
	writeFile(t, dir, "passwd", "AKIDnew:keynew\n", 0o600)
	clk.Add(24 * time.Hour)
	r.Retrieve(ctx)
	r.bg.Wait()
	if c, _ := r.Retrieve(ctx); c.SecretID != "AKIDold" {
		t.Errorf("passwd file read again unasked: %v", c)
	}
	r.Invalidate(old)
	if c, err := r.Retrieve(ctx); err != nil || c.SecretID != "AKIDnew" {
		t.Errorf("passwd file after Invalidate: %v %v", c, err)
	}

	// The environment's keys stay: nothing to read them from again.
	p, _, err = NewProvider(ctx, SourceConfig{Env: func(k string) string {
		return map[string]string{"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": "k"}[k]
	}, HomeDir: dir, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	r = p.(*Refresher)
	env, _ := r.Retrieve(ctx)
	r.Invalidate(env)
	clk.Add(24 * time.Hour)
	r.Retrieve(ctx)
	r.bg.Wait()
	if c, err := r.Retrieve(ctx); err != nil || c.SecretID != "AKIDenv" || r.stale {
		t.Errorf("environment keys after Invalidate: %v %v", c, err)
	}
}
