package main

// The rig of the credential tests: an issuer of short-lived versitygw
// accounts behind a loopback STS endpoint, a recording proxy in front of the
// gateway, and a foreground mount whose log and command line can be read.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cosmount/auth"
	"cosmount/internal/testrig"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// account is one issued versitygw account.
type account struct {
	cred          auth.Credentials // no token: versitygw refuses any
	start, expire time.Time
	deleted       time.Time // zero while it exists
}

// issuer hands out a new versitygw account every `every`, valid for
// `life`, and deletes each account once its expiry has passed.
type issuer struct {
	iam         *testrig.IAMServer
	every, life time.Duration
	secretMark  string // starts every secret key, so logs can be searched

	mu       sync.Mutex
	all      []*account
	cur      *account
	handed   map[string]map[string]bool // path -> access keys handed out there
	token    string                     // when set, answers carry this session token
	failNext int                        // answer HTTP 500 to this many fetches
	errs     []error

	stop, done chan struct{}
}

func newIssuer(t *testing.T, iam *testrig.IAMServer, every, life time.Duration) *issuer {
	is := &issuer{iam: iam, every: every, life: life, secretMark: "SeCrEt" + randHex(3),
		handed: map[string]map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go is.reap()
	t.Cleanup(is.close)
	return is
}

// close stops the reaper; it may be called more than once.
func (is *issuer) close() {
	select {
	case <-is.stop:
	default:
		close(is.stop)
	}
	<-is.done
}

// issue returns the current account, or creates a new one when the current
// one is `every` old.
func (is *issuer) issue(ctx context.Context, path string) (*account, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	now := time.Now()
	if is.cur == nil || now.Sub(is.cur.start) >= is.every {
		start := now.Truncate(time.Second)
		a := &account{start: start, expire: start.Add(is.life), cred: auth.Credentials{
			SecretID: fmt.Sprintf("rot%03d%s", len(is.all), randHex(4)), SecretKey: is.secretMark + randHex(14)}}
		if err := is.iam.CreateUser(ctx, a.cred.SecretID, a.cred.SecretKey, testrig.RoleAdmin); err != nil {
			is.errs = append(is.errs, fmt.Errorf("create account: %w", err))
			return nil, err
		}
		is.all = append(is.all, a)
		is.cur = a
	}
	if is.handed[path] == nil {
		is.handed[path] = map[string]bool{}
	}
	is.handed[path][is.cur.cred.SecretID] = true
	return is.cur, nil
}

// revokeCurrent deletes the current account before its expiry, as an
// administrator revoking keys would, and returns it; the next fetch gets a
// new one.
func (is *issuer) revokeCurrent(ctx context.Context) (*account, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.revokeLocked(ctx)
}

func (is *issuer) revokeLocked(ctx context.Context) (*account, error) {
	a := is.cur
	if a == nil {
		return nil, errors.New("no account issued yet")
	}
	if err := is.iam.DeleteUser(ctx, a.cred.SecretID); err != nil {
		return nil, err
	}
	a.deleted, is.cur = time.Now(), nil
	return a, nil
}

// revokeFresh waits until the current account is 1 to 3 s old and was
// handed out at every one of paths, then revokes it: every holder is then
// refused by the server at least once before its own refresh (≥ 7 s after
// the account's start) could replace the keys.
func (is *issuer) revokeFresh(ctx context.Context, paths ...string) (*account, error) {
	for ctx.Err() == nil {
		is.mu.Lock()
		if a := is.cur; a != nil {
			ready := true
			for _, p := range paths {
				ready = ready && is.handed[p][a.cred.SecretID]
			}
			if age := time.Since(a.start); ready && age >= time.Second && age <= 3*time.Second {
				defer is.mu.Unlock()
				return is.revokeLocked(ctx)
			}
		}
		is.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	return nil, ctx.Err()
}

// reap deletes every account whose expiry has passed.
func (is *issuer) reap() {
	defer close(is.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-is.stop:
			return
		case <-tick.C:
		}
		is.mu.Lock()
		var due []*account
		for _, a := range is.all {
			if a.deleted.IsZero() && !time.Now().Before(a.expire) {
				due = append(due, a)
			}
		}
		is.mu.Unlock()
		for _, a := range due {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := is.iam.DeleteUser(ctx, a.cred.SecretID)
			cancel()
			is.mu.Lock()
			if err != nil {
				is.errs = append(is.errs, fmt.Errorf("delete account: %w", err))
			} else {
				a.deleted = time.Now()
			}
			is.mu.Unlock()
		}
	}
}

// stats returns how many accounts were issued, the deleted ones, how many
// distinct ones were handed out at path, and the issuer's own errors.
func (is *issuer) stats(path string) (issued int, deleted []*account, handed int, errs []error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	for _, a := range is.all {
		if !a.deleted.IsZero() {
			deleted = append(deleted, a)
		}
	}
	return len(is.all), deleted, len(is.handed[path]), append([]error(nil), is.errs...)
}

// secrets returns every secret handed out (keys and the token), for the
// leak checks.
func (is *issuer) secrets() []string {
	is.mu.Lock()
	defer is.mu.Unlock()
	var s []string
	for _, a := range is.all {
		s = append(s, a.cred.SecretKey)
	}
	if is.token != "" {
		s = append(s, is.token)
	}
	return s
}

// handler serves the STS endpoint: Tencent STS's answer shape under /sts/,
// the COS SDK callback shape (with StartTime) under /process/. When bearer
// is set, requests must carry "Authorization: Bearer <bearer>".
func (is *issuer) handler(bearer string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bearer != "" && r.Header.Get("Authorization") != "Bearer "+bearer {
			http.Error(w, `{"Response":{"Error":{"Code":"AuthFailure","Message":"bad bearer token"}}}`, http.StatusUnauthorized)
			return
		}
		is.mu.Lock()
		fail := is.failNext > 0
		if fail {
			is.failNext--
		}
		token := is.token
		is.mu.Unlock()
		if fail {
			http.Error(w, `{"Response":{"Error":{"Code":"InternalError","Message":"try again"}}}`, http.StatusInternalServerError)
			return
		}
		a, err := is.issue(r.Context(), r.URL.Path)
		if err != nil {
			http.Error(w, "cannot create an account", http.StatusInternalServerError)
			return
		}
		var body any
		if strings.HasPrefix(r.URL.Path, "/process/") {
			body = map[string]any{"TmpSecretId": a.cred.SecretID, "TmpSecretKey": a.cred.SecretKey,
				"SecurityToken": token, "StartTime": a.start.Unix(), "ExpiredTime": a.expire.Unix()}
		} else {
			cr := map[string]any{"TmpSecretId": a.cred.SecretID, "TmpSecretKey": a.cred.SecretKey}
			if token != "" {
				cr["Token"] = token
			}
			body = map[string]any{"Response": map[string]any{"Credentials": cr, "ExpiredTime": a.expire.Unix(),
				"Expiration": a.expire.UTC().Format(time.RFC3339), "RequestId": randHex(8)}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	})
}

// startIssuer serves is on loopback; the URL has no trailing slash.
func startIssuer(t *testing.T, is *issuer, bearer string) string {
	srv := httptest.NewServer(is.handler(bearer)) // 127.0.0.1
	t.Cleanup(srv.Close)
	return srv.URL
}

// recorder is a reverse proxy in front of the gateway that records, per
// access key, the requests it passed and the ones the gateway refused, and
// every session token sent.
type recorder struct {
	URL string

	mu      sync.Mutex
	sent    map[string]int // access key -> requests
	refused map[string]int // access key -> 403 answers
	tokens  map[string]int // x-amz-security-token values seen
}

func startRecorder(t *testing.T, target string) *recorder {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{sent: map[string]int{}, refused: map[string]int{}, tokens: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	rp.FlushInterval = -1
	rp.ErrorLog = log.New(io.Discard, "", 0) // a client that gave up is no news
	direct := rp.Director
	rp.Director = func(r *http.Request) {
		direct(r) // keeps the Host header the client signed
		key := accessKeyOf(r.Header.Get("Authorization"))
		rec.mu.Lock()
		rec.sent[key]++
		if tok := r.Header.Get("X-Amz-Security-Token"); tok != "" {
			rec.tokens[tok]++
		}
		rec.mu.Unlock()
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode == http.StatusForbidden {
			key := accessKeyOf(resp.Request.Header.Get("Authorization"))
			rec.mu.Lock()
			rec.refused[key]++
			rec.mu.Unlock()
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	rec.URL = srv.URL
	return rec
}

// refusedKey returns how many requests signed with key were refused.
func (rec *recorder) refusedKey(key string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.refused[key]
}

// accessKeyOf takes the access key out of a SigV4 Authorization header.
func accessKeyOf(h string) string {
	_, rest, ok := strings.Cut(h, "Credential=")
	if !ok {
		return "(unsigned)"
	}
	key, _, _ := strings.Cut(rest, "/")
	return key
}

// counts returns the number of access keys used, requests sent and 403s.
func (rec *recorder) counts() (keys, sent, refused int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, n := range rec.sent {
		sent += n
	}
	for _, n := range rec.refused {
		refused += n
	}
	return len(rec.sent), sent, refused
}

// mountProc is a foreground cosmount process.
type mountProc struct {
	cmd     *exec.Cmd
	mnt     string
	logFile string
	stderr  *syncBuffer
	exited  chan struct{}
	err     error // of Wait, once exited is closed
}

// credEnv is the environment without any credentials in it, so that only
// the flags under test give keys.
func credEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "TENCENTCLOUD_SECRET_ID",
			"TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN", "COSACCESSKEYID", "COSSECRETACCESSKEY":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+os.TempDir())
}

// startMount runs cosmount --foreground with args plus the bucket and a new
// mount point, logging at debug level to a file, and waits until it is
// mounted or has exited. It is unmounted and stopped in t.Cleanup.
func startMount(t *testing.T, bin, bucket string, args ...string) *mountProc {
	t.Helper()
	dir := t.TempDir()
	m := &mountProc{mnt: filepath.Join(dir, "mnt"), logFile: filepath.Join(dir, "cosmount.log"),
		stderr: &syncBuffer{}, exited: make(chan struct{})}
	if err := os.Mkdir(m.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	all := append([]string{"--foreground", "--log-level", "debug", "--log-file", m.logFile,
		"--cache-dir", filepath.Join(dir, "cache")}, args...)
	m.cmd = exec.Command(bin, append(all, bucket, m.mnt)...)
	m.cmd.Env = credEnv()
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.err = m.cmd.Wait(); close(m.exited) }()
	t.Cleanup(func() { m.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for !mounted(m.mnt) {
		select {
		case <-m.exited:
			return m
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not mounted after 30 s: %s", m.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return m
}

// stop unmounts with SIGTERM (MNT_DETACH as a last resort) and waits for
// the process; it returns Wait's error.
func (m *mountProc) stop(t *testing.T) error {
	select {
	case <-m.exited:
		return m.err
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(20 * time.Second):
		t.Errorf("cosmount did not exit 20 s after SIGTERM")
		_ = syscall.Unmount(m.mnt, syscall.MNT_DETACH)
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	if mounted(m.mnt) {
		_ = syscall.Unmount(m.mnt, syscall.MNT_DETACH)
	}
	return m.err
}

// failed reports whether the process exited (the mount failed).
func (m *mountProc) failed() bool {
	select {
	case <-m.exited:
		return true
	default:
		return false
	}
}

// log returns the log file's content.
func (m *mountProc) log() string {
	b, _ := os.ReadFile(m.logFile)
	return string(b)
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
