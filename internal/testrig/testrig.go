// Package testrig gives tests a real S3 server on loopback: the versitygw
// that scripts/test.sh started (COSMOUNT_TEST_ENDPOINT, _ACCESS_KEY,
// _SECRET_KEY), or, when those are unset, one it starts itself from the
// project's .bin/versitygw for the life of the test binary.
package testrig

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cosmount/auth"
)

// Server is a running S3 server.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string
}

var (
	mu      sync.Mutex
	current *Server
	cmd     *exec.Cmd
	dataDir string
)

// Main wraps testing.M: it makes sure a server is there for the tests and
// stops one it started itself afterwards, then runs cleanups. Use from
// TestMain.
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	stop()
	for _, c := range cleanups {
		c()
	}
	os.Exit(code)
}

// Get returns the server, starting one if needed; it fails the test when no
// server can be had.
func Get(t testing.TB) *Server {
	t.Helper()
	s, err := get()
	if err != nil {
		t.Fatalf("testrig: %v", err)
	}
	return s
}

func get() (*Server, error) {
	mu.Lock()
	defer mu.Unlock()
	if current != nil {
		return current, nil
	}
	if ep := os.Getenv("COSMOUNT_TEST_ENDPOINT"); ep != "" {
		current = &Server{Endpoint: ep, AccessKey: os.Getenv("COSMOUNT_TEST_ACCESS_KEY"),
			SecretKey: os.Getenv("COSMOUNT_TEST_SECRET_KEY"), Region: "us-east-1"}
		return current, nil
	}
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cosmount-testrig-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	access, secret := "testrig"+randHex(4), randHex(16)
	c := exec.Command(bin, "--port", fmt.Sprintf("127.0.0.1:%d", port), "--keep-alive", "posix", data)
	logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		return nil, err
	}
	c.Stdout, c.Stderr = logf, logf
	// Keys go through the environment, never the command line.
	c.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+access, "ROOT_SECRET_KEY="+secret)
	// A test binary that dies (a panic, a timeout) takes the server along.
	c.SysProcAttr = childAttr()
	err = c.Start()
	logf.Close()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := WaitListening(addr, 30*time.Second); err != nil {
		_ = c.Process.Kill()
		return nil, fmt.Errorf("versitygw did not start: %w", err)
	}
	cmd, dataDir = c, dir
	current = &Server{Endpoint: "http://" + addr, AccessKey: access, SecretKey: secret, Region: "us-east-1"}
	return current, nil
}

func stop() {
	mu.Lock()
	defer mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.RemoveAll(dataDir)
		cmd = nil
	}
	current = nil
}

// ModuleRoot is the folder holding the main module's go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module cosmount\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("module root not found")
		}
		dir = parent
	}
}

func findBinary() (string, error) {
	if b := os.Getenv("VERSITYGW"); b != "" {
		return b, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	b := filepath.Join(root, ".bin", "versitygw")
	if _, err := os.Stat(b); err != nil {
		return "", fmt.Errorf("no S3 server: set COSMOUNT_TEST_ENDPOINT or run scripts/test.sh once to install %s", b)
	}
	return b, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitListening waits until something accepts connections at addr.
func WaitListening(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewBucket creates a fresh, uniquely named bucket and returns its name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := "t" + strings.ToLower(randHex(6))
	if err := s.CreateBucket(context.Background(), name); err != nil {
		t.Fatalf("testrig: create bucket: %v", err)
	}
	return name
}

// CreateBucket creates bucket name on the server.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.Endpoint+"/"+name, nil)
	if err != nil {
		return err
	}
	cred := auth.Credentials{SecretID: s.AccessKey, SecretKey: s.SecretKey}
	if err := auth.SignV4(req, cred, s.Region, auth.EmptyPayloadHash, time.Now()); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("create bucket %s: HTTP %d", name, resp.StatusCode)
	}
	return nil
}
