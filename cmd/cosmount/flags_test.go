package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// Sizes read back in the unit they are usually written in, so that --help
// shows "(default 256M)", and a shown value parses to the same size.
func TestSizeStringRoundTrips(t *testing.T) {
	for v, want := range map[size]string{256 << 20: "256M", 256 << 10: "256K", 10 << 30: "10G", 1000: "1000", 0: "0", 1536: "1536"} {
		if got := v.String(); got != want {
			t.Errorf("size(%d).String() = %q, want %q", int64(v), got, want)
		}
		var back size
		if err := back.Set(want); err != nil || back != v {
			t.Errorf("Set(%q) = %d, %v; want %d", want, int64(back), err, int64(v))
		}
	}
}

// TestFlagValuesRefused: values that cannot work are refused on the
// command line with a reason naming the flag, rather than failing every
// request later (--timeout 0) or wrapping silently (--uid 2^32).
func TestFlagValuesRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" means accepted
	}{
		{[]string{"--timeout", "0"}, "--timeout 0s: want a duration above 0"},
		{[]string{"--timeout", "-5s"}, "--timeout -5s"},
		{[]string{"--timeout", "1ms"}, ""},
		{[]string{"--uid", "4294967296"}, "--uid 4294967296: want 0 to 4294967295"},
		{[]string{"--gid", "18446744073709551615"}, "--gid 18446744073709551615: want 0 to 4294967295"},
		{[]string{"--uid", "4294967295", "--gid", "0"}, ""},
		{[]string{"--chunk-retry-times", "-1"}, "--chunk-retry-times -1: want 0"},
		{[]string{"--chunk-retry-times", "0"}, ""},
	} {
		c, err := parseArgs(append(tc.args, "b", "/m"), io.Discard)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v (config %+v), want an error saying %q", tc.args, err, c, tc.want)
		}
	}
}

// TestChunkRetryTimesZero: --chunk-retry-times 0 means no retries, as its
// help says: a request the server answers 503 is sent once.
func TestChunkRetryTimesZero(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		retries string
		want    int64
	}{{"0", 1}, {"1", 2}} {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		c := exec.Command(bin, "--foreground", "--endpoint", srv.URL, "--chunk-retry-times", tc.retries, "--timeout", "5s",
			"bkt", t.TempDir())
		c.Env = append(os.Environ(), "TMPDIR="+t.TempDir(), "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret",
			"TENCENTCLOUD_SECRET_ID=", "TENCENTCLOUD_SECRET_KEY=", "COSACCESSKEYID=", "COSSECRETACCESSKEY=")
		out, err := c.CombinedOutput()
		srv.Close()
		if err == nil {
			t.Fatalf("--chunk-retry-times %s: mounted against a server that answers 503", tc.retries)
		}
		if got := n.Load(); got != tc.want {
			t.Errorf("--chunk-retry-times %s: %d requests, want %d\n%s", tc.retries, got, tc.want, out)
		}
	}
}
