// Command latencyproxy stands between the filesystems under benchmark and the
// S3 server. It counts the HTTP requests that pass, by type (GET, HEAD, LIST,
// PUT, UploadPart, ...), and in the region profile adds latency in each
// direction with an in-process toxiproxy.
//
//	latencyproxy -listen 127.0.0.1:P -upstream 127.0.0.1:S -ctl 127.0.0.1:C [-delay 10ms]
//
// Clients talk to -listen. The request counts since the last take are read
// (and reset) with GET http://CTL/take, as a JSON object.
//
// It lives in a module of its own so that toxiproxy's dependencies stay out
// of cosmount's go.mod.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address the filesystems connect to")
	upstream := flag.String("upstream", "", "the S3 server, host:port")
	ctl := flag.String("ctl", "127.0.0.1:0", "address of the control endpoint (GET /take)")
	delay := flag.Duration("delay", 0, "latency added in each direction (toxiproxy latency toxics)")
	flag.Parse()
	if *upstream == "" {
		log.Fatal("latencyproxy: -upstream is required")
	}

	target := *upstream
	if *delay > 0 {
		addr, stop, err := startToxiproxy(*upstream, *delay)
		if err != nil {
			log.Fatalf("latencyproxy: toxiproxy: %v", err)
		}
		defer stop()
		target = addr
	}

	c := newCounter()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("latencyproxy: %v", err)
	}
	go serveControl(*ctl, c)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go proxyConn(conn, target, c)
		}
	}()
	log.Printf("latencyproxy: %s -> %s (delay %v each way), control on %s", ln.Addr(), *upstream, *delay, *ctl)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	ln.Close()
}

// startToxiproxy runs a toxiproxy proxy to upstream with a latency toxic on
// each stream and returns the address it listens on.
func startToxiproxy(upstream string, delay time.Duration) (string, func(), error) {
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(server, "s3", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return "", nil, err
	}
	ms := delay.Milliseconds()
	for _, stream := range []string{"upstream", "downstream"} {
		spec := fmt.Sprintf(`{"type":"latency","stream":%q,"attributes":{"latency":%d}}`, stream, ms)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
			p.Stop()
			return "", nil, err
		}
	}
	return p.Listen, p.Stop, nil
}

// counter holds request counts by type.
type counter struct {
	mu sync.Mutex
	n  map[string]int64
}

func newCounter() *counter { return &counter{n: map[string]int64{}} }

func (c *counter) add(kind string) {
	c.mu.Lock()
	c.n[kind]++
	c.mu.Unlock()
}

// take returns the counts and starts again from zero.
func (c *counter) take() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.n
	c.n = map[string]int64{}
	return m
}

func serveControl(addr string, c *counter) {
	mux := http.NewServeMux()
	mux.HandleFunc("/take", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.take())
	})
	log.Fatal(http.ListenAndServe(addr, mux))
}

// proxyConn relays one client connection. Responses are copied as they come
// (spliced by the kernel); requests are read header by header so each one is
// counted, and their bodies copied by length or by chunk.
func proxyConn(client net.Conn, target string, c *counter) {
	defer client.Close()
	up, err := net.Dial("tcp", target)
	if err != nil {
		log.Printf("latencyproxy: dial %s: %v", target, err)
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(client, up)
		// The server closed: stop the request side too.
		client.Close()
		close(done)
	}()
	if err := relayRequests(client, up, c); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		log.Printf("latencyproxy: %v", err)
	}
	if tc, ok := up.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	<-done
}

// relayRequests forwards HTTP/1.1 requests from client to up, counting each.
func relayRequests(client, up net.Conn, c *counter) error {
	br := bufio.NewReaderSize(client, 64<<10)
	for {
		head, err := readHead(br)
		if err != nil {
			return err
		}
		if _, err := up.Write(head.raw); err != nil {
			return err
		}
		c.add(head.kind())
		switch {
		case head.chunked:
			if err := copyChunked(up, br); err != nil {
				return fmt.Errorf("chunked body: %w", err)
			}
		case head.length > 0:
			if err := copyBody(up, br, client, head.length); err != nil {
				return fmt.Errorf("body: %w", err)
			}
		}
	}
}

// requestHead is what the counting needs from one request.
type requestHead struct {
	raw            []byte
	method, target string
	length         int64
	chunked, copy  bool
}

func readHead(br *bufio.Reader) (*requestHead, error) {
	h := &requestHead{}
	var raw bytes.Buffer
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errors.New("header line too long")
			}
			if raw.Len() == 0 && len(line) == 0 {
				return nil, io.EOF
			}
			return nil, err
		}
		raw.Write(line)
		s := strings.TrimRight(string(line), "\r\n")
		if first {
			if s == "" { // tolerated blank line between requests
				raw.Reset()
				continue
			}
			f := strings.Fields(s)
			if len(f) != 3 {
				return nil, fmt.Errorf("bad request line %q", s)
			}
			h.method, h.target = f[0], f[1]
			first = false
			continue
		}
		if s == "" {
			h.raw = raw.Bytes()
			return h, nil
		}
		name, value, _ := strings.Cut(s, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-length":
			h.length, _ = strconv.ParseInt(value, 10, 64)
		case "transfer-encoding":
			h.chunked = strings.Contains(strings.ToLower(value), "chunked")
		case "x-amz-copy-source", "x-cos-copy-source":
			h.copy = true
		}
	}
}

// kind names the request the way cosmount's transport counts them.
func (h *requestHead) kind() string {
	path, rawq, _ := strings.Cut(h.target, "?")
	q := map[string]bool{}
	for _, kv := range strings.Split(rawq, "&") {
		if k, _, _ := strings.Cut(kv, "="); k != "" {
			q[k] = true
		}
	}
	// Path style: /bucket or /bucket/ is the bucket, /bucket/key an object.
	p := strings.TrimPrefix(path, "/")
	_, key, _ := strings.Cut(p, "/")
	bucket := key == ""
	switch h.method {
	case "GET":
		switch {
		case bucket && q["uploads"]:
			return "ListMultipartUploads"
		case bucket && len(q) > 0 && !q["list-type"] && !q["prefix"] && !q["delimiter"] && !q["marker"] && !q["max-keys"] && !q["continuation-token"]:
			return "GET-bucket-subresource"
		case bucket:
			return "LIST"
		case q["uploadId"]:
			return "ListParts"
		}
		return "GET"
	case "HEAD":
		if bucket {
			return "HEAD-bucket"
		}
		return "HEAD"
	case "PUT":
		switch {
		case bucket:
			return "CreateBucket"
		case q["uploadId"] && h.copy:
			return "UploadPartCopy"
		case q["uploadId"]:
			return "UploadPart"
		case h.copy:
			return "COPY"
		}
		return "PUT"
	case "POST":
		switch {
		case q["uploads"]:
			return "InitiateMultipart"
		case q["uploadId"]:
			return "CompleteMultipart"
		case q["delete"]:
			return "DeleteMany"
		}
		return "POST"
	case "DELETE":
		switch {
		case q["uploadId"]:
			return "AbortMultipart"
		case bucket:
			return "DeleteBucket"
		}
		return "DELETE"
	}
	return h.method
}

// copyBody copies n body bytes: what the reader already buffered, then
// straight from the connection (which lets the kernel splice).
func copyBody(up net.Conn, br *bufio.Reader, client net.Conn, n int64) error {
	if b := br.Buffered(); b > 0 {
		k := int64(b)
		if k > n {
			k = n
		}
		if _, err := io.CopyN(up, br, k); err != nil {
			return err
		}
		n -= k
	}
	if n == 0 {
		return nil
	}
	_, err := io.CopyN(up, client, n)
	return err
}

// copyChunked copies a chunked body, trailers included.
func copyChunked(up net.Conn, br *bufio.Reader) error {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if _, err := io.WriteString(up, line); err != nil {
			return err
		}
		sz := strings.TrimSpace(line)
		if i := strings.IndexByte(sz, ';'); i >= 0 {
			sz = sz[:i]
		}
		n, err := strconv.ParseInt(sz, 16, 64)
		if err != nil {
			return fmt.Errorf("chunk size %q", sz)
		}
		if n == 0 {
			// Trailers until a blank line.
			for {
				t, err := br.ReadString('\n')
				if err != nil {
					return err
				}
				if _, err := io.WriteString(up, t); err != nil {
					return err
				}
				if strings.TrimRight(t, "\r\n") == "" {
					return nil
				}
			}
		}
		if _, err := io.CopyN(up, br, n+2); err != nil { // data and its CRLF
			return err
		}
	}
}
