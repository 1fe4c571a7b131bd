package testrig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cosmount/auth"
)

// IAMServer is a versitygw of its own in IAM mode, for one test: its root
// account can create and delete accounts through the admin API, and a
// deleted account's keys are refused at once (the gateway drops them from
// its IAM cache on delete). Accounts and buckets live in the test's
// temporary folder; everything stops in t.Cleanup.
type IAMServer struct {
	Server               // Endpoint, root AccessKey/SecretKey, Region
	AdminEndpoint string // http://127.0.0.1:ADMINPORT
	LogFile       string // the gateway's stdout and stderr

	client *http.Client
}

// Account roles of versitygw. An admin account may use every bucket; a user
// only its own buckets and what a bucket policy grants it.
const (
	RoleUser     = "user"
	RoleUserPlus = "userplus"
	RoleAdmin    = "admin"
)

// StartIAM starts a separate versitygw in IAM mode (--iam-dir, --admin-port)
// on loopback and stops it when the test ends. The root keys go through
// the environment, never the command line.
func StartIAM(t testing.TB) *IAMServer {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		t.Fatalf("testrig: %v", err)
	}
	dir := t.TempDir()
	data, iamDir := filepath.Join(dir, "data"), filepath.Join(dir, "iam")
	for _, d := range []string{data, iamDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	aport, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr, aaddr := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", aport)
	s := &IAMServer{
		Server: Server{Endpoint: "http://" + addr, AccessKey: "iamroot" + randHex(4),
			SecretKey: randHex(16), Region: "us-east-1"},
		AdminEndpoint: "http://" + aaddr,
		LogFile:       filepath.Join(dir, "versitygw.log"),
		client:        &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second},
	}
	logf, err := os.Create(s.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(bin, "--port", addr, "--admin-port", aaddr, "--iam-dir", iamDir,
		"--keep-alive", "posix", data)
	c.Stdout, c.Stderr = logf, logf
	c.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	err = c.Start()
	logf.Close()
	if err != nil {
		t.Fatalf("testrig: start versitygw: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = c.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		<-exited
		s.client.CloseIdleConnections()
	})
	for _, a := range []string{addr, aaddr} {
		if err := WaitListening(a, 30*time.Second); err != nil {
			log, _ := os.ReadFile(s.LogFile)
			t.Fatalf("testrig: versitygw (IAM) did not start: %v\n%s", err, log)
		}
	}
	return s
}

// Root is the server as its root account sees it, for NewBucket and the
// like.
func (s *IAMServer) Root() *Server { return &s.Server }

// iamAccount is what the admin API's create-user takes (versitygw's
// auth.Account in XML).
type iamAccount struct {
	XMLName xml.Name `xml:"Account"`
	Access  string   `xml:"Access"`
	Secret  string   `xml:"Secret"`
	Role    string   `xml:"Role"`
}

// CreateUser creates an account with role RoleUser, RoleUserPlus or
// RoleAdmin. The keys go in the signed body of an admin API request, never
// on a command line.
func (s *IAMServer) CreateUser(ctx context.Context, access, secret, role string) error {
	body, err := xml.Marshal(iamAccount{Access: access, Secret: secret, Role: role})
	if err != nil {
		return err
	}
	return s.admin(ctx, "/create-user", nil, body)
}

// DeleteUser deletes an account; its keys are refused from then on.
func (s *IAMServer) DeleteUser(ctx context.Context, access string) error {
	return s.admin(ctx, "/delete-user", url.Values{"access": {access}}, nil)
}

// ChangeBucketOwner makes the account owner own bucket.
func (s *IAMServer) ChangeBucketOwner(ctx context.Context, bucket, owner string) error {
	return s.admin(ctx, "/change-bucket-owner/", url.Values{"bucket": {bucket}, "owner": {owner}}, nil)
}

// admin sends one PATCH to the admin API signed with the root keys, as
// `versitygw admin` does.
func (s *IAMServer) admin(ctx context.Context, path string, q url.Values, body []byte) error {
	u := s.AdminEndpoint + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	cred := auth.Credentials{SecretID: s.AccessKey, SecretKey: s.SecretKey}
	if err := auth.SignV4(req, cred, s.Region, hex.EncodeToString(sum[:]), time.Now()); err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("admin %s: %w", path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("admin %s: HTTP %d: %s", strings.Trim(path, "/"), resp.StatusCode, errorCode(msg))
	}
	return nil
}

// errorCode is the Code and Message of an S3 error body, which never
// repeat the request's keys.
func errorCode(body []byte) string {
	var e struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(body, &e) != nil || e.Code == "" {
		return "(no error code)"
	}
	return e.Code + ": " + e.Message
}

// ErrRefused is what Probe returns when the server refused the keys.
var ErrRefused = errors.New("refused")

// Probe makes one signed ListObjects request on bucket with cred and
// returns the HTTP status and S3 error code; err wraps ErrRefused for a 403.
func (s *IAMServer) Probe(ctx context.Context, bucket string, cred auth.Credentials) (status int, code string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/"+bucket+"?max-keys=1", nil)
	if err != nil {
		return 0, "", err
	}
	if err := auth.SignV4(req, cred, s.Region, auth.EmptyPayloadHash, time.Now()); err != nil {
		return 0, "", err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, "", nil
	}
	code = errorCode(body)
	if resp.StatusCode == http.StatusForbidden {
		return resp.StatusCode, code, fmt.Errorf("HTTP 403 %s: %w", code, ErrRefused)
	}
	return resp.StatusCode, code, fmt.Errorf("HTTP %d %s", resp.StatusCode, code)
}
