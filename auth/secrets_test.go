package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Known secrets fed through every error path; none may appear in an error
// message or a log line.
const (
	secID  = "AKIDsecretidVALUE0001"
	secKey = "SECRETkeyVALUE0002"
	secTok = "TOKENvalue0003"
	secHdr = "BEARERvalue0004"
	secQry = "QUERYvalue0005"
)

var knownSecrets = []string{secKey, secTok, secHdr, secQry, "VALUE000"}

func assertNoSecret(t *testing.T, what, msg string) {
	t.Helper()
	for _, s := range knownSecrets {
		if strings.Contains(msg, s) {
			t.Errorf("%s leaks a secret: %q", what, msg)
			return
		}
	}
}

// shapeTemplates are the accepted JSON shapes, every secret field set.
var shapeTemplates = []string{
	`{"TmpSecretId":"` + secID + `","TmpSecretKey":"` + secKey + `","SecurityToken":"` + secTok + `","StartTime":START,"ExpiredTime":EXP}`,
	`{"TmpSecretId":"` + secID + `","TmpSecretKey":"` + secKey + `","Token":"` + secTok + `","ExpiredTime":EXP,"Code":"Success"}`,
	`{"Response":{"Credentials":{"TmpSecretId":"` + secID + `","TmpSecretKey":"` + secKey + `","Token":"` + secTok + `"},"ExpiredTime":EXP}}`,
	`{"credentials":{"tmpSecretId":"` + secID + `","tmpSecretKey":"` + secKey + `","sessionToken":"` + secTok + `"},"expiredTime":EXP,"startTime":START}`,
	`{"AccessKeyId":"` + secID + `","SecretAccessKey":"` + secKey + `","SessionToken":"` + secTok + `","Expiration":"EXPRFC"}`,
}

func hostileBodies() []string {
	var out []string
	for _, tpl := range shapeTemplates {
		good := strings.NewReplacer("START", st0, "EXP", exp1h, "EXPRFC", "2024-01-01T01:00:00Z").Replace(tpl)
		for i := 0; i < len(good); i++ {
			out = append(out, good[:i]) // every truncation
		}
		for _, r := range [][2]string{
			{"START", `"garbage"`}, {"EXP", `"garbage"`}, {"EXP", "1704060000"}, {"EXP", "1704070800000"},
			{"EXP", `{"x":1}`}, {"EXPRFC", "garbage"}, {"EXPRFC", "2020-01-01T00:00:00Z"},
		} {
			bad := strings.NewReplacer(r[0], r[1], "START", st0, "EXP", exp1h, "EXPRFC", "2024-01-01T01:00:00Z").Replace(tpl)
			out = append(out, bad)
		}
		for _, field := range []string{secID, secKey} { // the value of a key becomes the wrong type
			out = append(out, strings.Replace(good, `"`+field+`"`, `["`+field+`"]`, 1))
		}
		out = append(out, strings.Replace(good, `"`+secID+`"`, `""`, 1))
	}
	out = append(out,
		`{"TmpSecretId":"`+secID+`","TmpSecretKey":"`+secKey+`"}`,
		`{"`+secKey+`":"`+secTok+`"}`,
		`["`+secKey+`"]`,
		secKey,
		`{"TmpSecretId":"`+secID+`","TmpSecretKey":"`+secKey+`",}`,
	)
	return out
}

func TestNoSecretInParseErrors(t *testing.T) {
	n := 0
	for _, body := range hostileBodies() {
		_, err := ParseCredentialsJSON([]byte(body), t0)
		if err == nil {
			continue
		}
		n++
		assertNoSecret(t, "ParseCredentialsJSON", err.Error())
	}
	if n < 500 {
		t.Errorf("only %d bodies failed to parse", n)
	}
}

func TestNoSecretInSourceErrors(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var errs []error
	add := func(_ Credentials, err error) {
		if err == nil {
			t.Errorf("no error (error #%d)", len(errs))
			return
		}
		errs = append(errs, err)
	}
	// passwd files: bad mode, a malformed line, no line for the bucket.
	add((&PasswdFile{Path: writeFile(t, dir, "p1", secID+":"+secKey+"\n", 0o644)}).Retrieve(ctx))
	add((&PasswdFile{Path: writeFile(t, dir, "p2", secID+":"+secKey+":x:y\n", 0o600)}).Retrieve(ctx))
	add((&PasswdFile{Path: writeFile(t, dir, "p3", secKey+"\n", 0o600)}).Retrieve(ctx))
	add((&PasswdFile{Path: writeFile(t, dir, "p4", "other:"+secID+":"+secKey+"\n", 0o600), Bucket: "b"}).Retrieve(ctx))
	// STS files.
	sts := func(body string) (Credentials, error) {
		return (&STSFile{Path: writeFile(t, dir, "sts", body, 0o600), Now: fixedNow(t0)}).Retrieve(ctx)
	}
	add(sts("COSAccessKeyId=" + secID + "\nCOSSecretKey=" + secKey + "\nCOSAccessToken=" + secTok + "\n"))
	add(sts("COSAccessKeyId=" + secID + "\nCOSSecretKey=" + secKey + "\nCOSAccessToken=" + secTok + "\nCOSAccessTokenExpire=2020-01-01T00:00:00\n"))
	add(sts("COSAccessKeyId=" + secID + "\nCOSSecretKey=" + secKey + "\nCOSAccessToken=" + secTok + "\nCOSAccessTokenExpire=" + secKey + "\n"))
	add(sts("COSAccessKeyId=" + secID + "\n" + secKey + "\n"))
	add(sts("COSSecretKey=" + secKey + "\n"))
	// Key files.
	add((&KeyFiles{SecretIDFile: writeFile(t, dir, "id", "\n", 0o600), SecretKeyFile: writeFile(t, dir, "k", secKey, 0o600)}).Retrieve(ctx))
	// The environment, half set.
	_, _, _, err := fromEnv(func(k string) string { return map[string]string{"TENCENTCLOUD_SECRET_KEY": secKey}[k] })
	add(Credentials{}, err)
	// Credential commands: every hostile body on stdout, with and without a failing exit.
	for i, body := range hostileBodies() {
		if i%7 != 0 { // a sample keeps the test fast
			continue
		}
		f := writeFile(t, dir, "out", body, 0o600)
		_, err := (&Process{Command: script(t, "cat "+f), Now: fixedNow(t0)}).Retrieve(ctx)
		if err != nil {
			errs = append(errs, err)
		}
	}
	good := filepath.Join(dir, "good")
	writeFile(t, dir, "good", strings.NewReplacer("START", st0, "EXP", exp1h).Replace(shapeTemplates[0]), 0o600)
	add((&Process{Command: script(t, "cat "+good+"; echo oops >&2; exit 1")}).Retrieve(ctx))
	add((&Process{Command: script(t, "while :; do cat "+good+"; done"), OutputLimit: 4096}).Retrieve(ctx))
	add((&Process{Command: script(t, "cat "+good+"; sleep 10"), Timeout: 100 * time.Millisecond}).Retrieve(ctx))
	// STS URL and CAM role: bodies with secrets, a header and a query that are secrets.
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			w.WriteHeader(500)
			fmt.Fprint(w, strings.NewReplacer("START", st0, "EXP", exp1h).Replace(shapeTemplates[0])+r.Header.Get("Authorization"))
		case "/expired":
			fmt.Fprint(w, strings.NewReplacer("START", st0, "EXP", "1704060000").Replace(shapeTemplates[2]))
		case "/stserr":
			w.WriteHeader(400)
			fmt.Fprint(w, `{"Response":{"Error":{"Code":"AuthFailure","Message":"bad token"}}}`)
		default:
			fmt.Fprint(w, `{"TmpSecretId":"`+secID+`","TmpSecretKey":"`+secKey+`","Token":"`+secTok+`","Code":"Failed"}`)
		}
	})
	for _, p := range []string{"/500", "/expired", "/stserr", "/cam"} {
		add((&STSURL{URL: s.URL + p + "?token=" + secQry, Headers: map[string]string{"Authorization": "Bearer " + secHdr}, Now: fixedNow(t0)}).Retrieve(ctx))
		add((&CAMRole{Role: "r", Endpoint: s.URL + p, Now: fixedNow(t0)}).Retrieve(ctx))
	}
	add((&STSURL{URL: "http://" + secQry + ":" + secHdr + "@127.0.0.1:1/x?k=" + secQry}).Retrieve(ctx))

	// Through NewProvider, whose errors the command prints.
	_, _, err = NewProvider(ctx, SourceConfig{STSURL: s.URL + "/500?token=" + secQry, STSHeaders: map[string]string{"Authorization": secHdr}})
	add(Credentials{}, err)
	_, desc, _ := NewProvider(ctx, SourceConfig{STSURL: s.URL + "/x?token=" + secQry})
	assertNoSecret(t, "description", desc)

	for _, err := range errs {
		assertNoSecret(t, "error", err.Error())
		assertNoSecret(t, "error %v", fmt.Sprintf("%v %+v", err, err))
	}
	if len(errs) < 30 {
		t.Errorf("only %d errors checked", len(errs))
	}
}

func TestNoSecretInRefresherErrorsAndLogs(t *testing.T) {
	clk := newFakeClock(t0)
	var mu sync.Mutex
	var logs []string
	src := &fakeSource{}
	src.set(func(int) (Credentials, error) {
		return Credentials{SecretID: secID, SecretKey: secKey, SessionToken: secTok, ExpiredTime: clk.Now().Add(time.Minute)}, nil
	})
	r := NewRefresher(src, RefresherOptions{Now: clk.Now, Logf: func(f string, a ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf(f, a...))
		mu.Unlock()
	}})
	ctx := context.Background()
	c, _ := r.Retrieve(ctx)
	r.Invalidate(c)
	r.bg.Wait()
	src.set(func(int) (Credentials, error) { return Credentials{}, errors.New("source down") })
	clk.Add(50 * time.Second)
	r.Retrieve(ctx)
	r.bg.Wait()
	clk.Add(20 * time.Second)
	_, err := r.Retrieve(ctx)
	if err == nil {
		t.Fatal("expired keys with a failing source: no error")
	}
	assertNoSecret(t, "refresher error", err.Error())
	mu.Lock()
	defer mu.Unlock()
	if len(logs) < 3 {
		t.Errorf("logs: %q", logs)
	}
	for _, l := range logs {
		assertNoSecret(t, "log line", l)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		assertNoSecret(t, "Credentials "+f, fmt.Sprintf(f, c))
	}
}
