package main

// End to end: a mount whose keys expire every few seconds, against a real
// server that enforces their expiry (versitygw in IAM mode, each account
// deleted once its expiry passes), must not fail one operation.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cosmount/auth"
	"cosmount/internal/testrig"
	"cosmount/transport"
)

// e2eConfig is one run of the rotation test.
type e2eConfig struct {
	process    bool          // keys from --credential-process, else --sts-url
	window     time.Duration // of continuous load
	upload     int64         // bytes of the multipart upload spanning rotations
	uploadRate float64       // its bytes per second
}

// TestCredsE2ESTSURL: --sts-url with a bearer header read from a file,
// Tencent STS's answer shape, at least 60 s of load.
func TestCredsE2ESTSURL(t *testing.T) {
	runCredsE2E(t, e2eConfig{window: 62 * time.Second, upload: 200 << 20, uploadRate: 8 << 20})
}

// TestCredsE2ECredentialProcess: --credential-process running a shell
// script, the COS SDK callback shape with StartTime, a shorter load.
func TestCredsE2ECredentialProcess(t *testing.T) {
	runCredsE2E(t, e2eConfig{process: true, window: 30 * time.Second, upload: 100 << 20, uploadRate: 6 << 20})
}

const (
	rotateEvery = 6 * time.Second  // a new account this often
	keyLife     = 12 * time.Second // each valid this long, then deleted
	bigRead     = 24 << 20         // the object read through the mount, throttled
)

// credSource makes the flags for the mount and the SourceConfig for the
// test's own client: both get keys from the issuer, under their own path
// (/sts/ answers in Tencent STS's shape, /process/ in the SDK callback's).
func credSource(t *testing.T, process bool, base, bearerFile string) (flags []string, client auth.SourceConfig) {
	if !process {
		return []string{"--sts-url", base + "/sts/mount", "--sts-header", "Authorization=@" + bearerFile},
			auth.SourceConfig{STSURL: base + "/sts/client", STSHeaderFiles: map[string]string{"Authorization": bearerFile}}
	}
	script := filepath.Join(t.TempDir(), "cos-credentials.sh")
	const body = "#!/bin/sh\n# Prints temporary keys as JSON, as a COS getAuthorization callback would.\n" +
		"exec curl -sSf --noproxy '*' --max-time 10 -H \"Authorization: $(cat \"$1\")\" \"$2\"\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl for the credential script")
	}
	// The test's own client fetches the same shape over HTTP rather than
	// through the script: this process holds files on the mount open while
	// it forks, and a child's close-on-exec of such a file waits for the
	// mount's FLUSH, keeping the script's stdout pipe open for seconds.
	return []string{"--credential-process", script + " " + bearerFile + " " + base + "/process/mount"},
		auth.SourceConfig{STSURL: base + "/process/client", STSHeaderFiles: map[string]string{"Authorization": bearerFile}}
}

func newS3Client(t *testing.T, endpoint, bucket string, p auth.Provider) *transport.Client {
	c, err := transport.New(transport.Config{Flavor: transport.FlavorS3, Endpoint: endpoint, Bucket: bucket,
		Region: "us-east-1", PathStyle: true, Credentials: p, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func runCredsE2E(t *testing.T, cfg e2eConfig) {
	bin := build(t)
	began := time.Now()
	ctx := context.Background()
	iam := testrig.StartIAM(t)
	bucket := iam.Root().NewBucket(t)
	is := newIssuer(t, iam, rotateEvery, keyLife)
	bearerFile := filepath.Join(t.TempDir(), "bearer")
	bearer := "tok" + randHex(12)
	if err := os.WriteFile(bearerFile, []byte("Bearer "+bearer+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := startIssuer(t, is, bearer)
	rec := startRecorder(t, iam.Endpoint)

	// Seed with the root keys: small files to copy out, an object to read.
	root := newS3Client(t, iam.Endpoint, bucket, auth.NewStatic(auth.Credentials{SecretID: iam.AccessKey, SecretKey: iam.SecretKey}))
	var smallNames []string
	for i := range 150 {
		smallNames = append(smallNames, fmt.Sprintf("f%03d", i))
	}
	if err := putSmall(ctx, root, "small/", smallNames); err != nil {
		t.Fatal(err)
	}
	if err := putSmall(ctx, root, "stream/", []string{"seed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := transport.NewUploader(root, transport.UploaderOptions{}).Upload(ctx, &transport.UploadInput{
		Key: "big/read.bin", Body: &patternReader{size: bigRead}, Size: bigRead}); err != nil {
		t.Fatal(err)
	}

	flags, clientSrc := credSource(t, cfg.process, base, bearerFile)
	clientLog := &memLog{}
	clientSrc.Refresh.Logf = clientLog.logf
	clientSrc.Env = func(string) string { return "" }
	p, desc, err := auth.NewProvider(ctx, clientSrc)
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	cp := &countingProvider{Refresher: p.(*auth.Refresher)}
	client := newS3Client(t, iam.Endpoint, bucket, cp)

	m := startMount(t, bin, bucket, append(flags, "--endpoint", rec.URL, "--stat-cache-ttl", "1s",
		"--negative-cache-ttl", "1s", "--read-cache-size", "8M", "--timeout", "20s")...)
	if m.failed() {
		t.Fatalf("mount failed: %v: %s", m.err, m.stderr.String())
	}
	t.Logf("mounted with %s after %s; client keys from %s", flags[0], time.Since(began).Round(time.Millisecond), desc)

	tl := newTally()
	work := t.TempDir()
	lctx, stopLoad := context.WithTimeout(ctx, cfg.window)
	defer stopLoad()
	loadStart := time.Now()
	var wg sync.WaitGroup

	// The test's client PUTs a new small object now and then; the mount
	// lists the folder and reads every object it has not read yet.
	every(lctx, &wg, tl, "client PUT", 150*time.Millisecond, func(i int) error {
		return putSmall(ctx, client, "stream/", []string{fmt.Sprintf("s%05d", i)})
	})
	seen := map[string]bool{}
	every(lctx, &wg, tl, "mount ls", 200*time.Millisecond, func(int) error {
		ents, err := os.ReadDir(filepath.Join(m.mnt, "stream"))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if seen[e.Name()] {
				continue
			}
			b, err := os.ReadFile(filepath.Join(m.mnt, "stream", e.Name()))
			if err != nil {
				return err
			}
			if !bytes.Equal(b, smallContent(e.Name())) {
				return fmt.Errorf("stream/%s: wrong content (%d bytes)", e.Name(), len(b))
			}
			seen[e.Name()] = true
			tl.ok("mount read new", 1)
		}
		return nil
	})
	// cp -r of many small files out of the mount.
	every(lctx, &wg, tl, "cp -r from mount", 0, func(i int) error {
		dst := filepath.Join(work, fmt.Sprintf("out%d", i))
		defer os.RemoveAll(dst)
		if out, err := exec.Command("cp", "-r", filepath.Join(m.mnt, "small"), dst).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
		return checkTree(dst, smallNames)
	})
	// A slow reader of a big object: each pass lasts longer than a key.
	every(lctx, &wg, tl, "mount slow read", 0, func(int) error {
		path := filepath.Join(m.mnt, "big", "read.bin")
		dropPageCache(path)
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := checkPattern(lctx, f, 0, 2<<20)
		if lctx.Err() != nil {
			return nil // cut short by the end of the window
		}
		if err == nil && n != bigRead {
			err = fmt.Errorf("read %d bytes, want %d", n, bigRead)
		}
		return err
	})
	// A throttled multipart upload, one part at a time, across rotations.
	var up struct {
		out  *transport.UploadOutput
		took time.Duration
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		u := transport.NewUploader(client, transport.UploaderOptions{ChunkSize: 5 << 20, ChunkParallelLimit: 1})
		out, err := u.Upload(ctx, &transport.UploadInput{Key: "big/up.bin",
			Body: &patternReader{size: cfg.upload, rate: cfg.uploadRate}, Size: cfg.upload})
		up.out, up.took = out, time.Since(start)
		if err != nil {
			tl.fail("multipart upload", err)
		} else {
			tl.ok("multipart upload", 1)
		}
	}()
	// Once, keys are revoked while still valid, so that requests in flight
	// are refused, and must be retried with fresh keys, not fail.
	mountPath, clientPath := "/sts/mount", "/sts/client"
	if cfg.process {
		mountPath, clientPath = "/process/mount", "/process/client"
	}
	var revoked *account
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-lctx.Done():
			return
		case <-time.After(cfg.window / 4):
		}
		a, err := is.revokeFresh(lctx, mountPath, clientPath)
		if err != nil {
			tl.fail("revoke keys", err)
			return
		}
		revoked = a
		tl.ok("revoke keys", 1)
	}()
	if writable(t, m.mnt) {
		writeLoad(lctx, t, &wg, tl, m.mnt, client, work)
	}
	wg.Wait()
	loadTook := time.Since(loadStart)

	// The uploaded object reads back through the mount.
	if up.out != nil {
		t.Logf("multipart upload: %d MiB in %d parts, %s", cfg.upload>>20, up.out.Parts, up.took.Round(time.Millisecond))
		if err := checkRanges(filepath.Join(m.mnt, "big", "up.bin"), cfg.upload); err != nil {
			tl.fail("read back the upload", err)
		}
	}
	if err := m.stop(t); err != nil {
		t.Errorf("cosmount exit: %v: %s", err, lastLines(m.stderr.String(), 5))
	}
	if se := m.stderr.String(); strings.Contains(se, "DATA RACE") {
		t.Errorf("the race detector fired in the mount:\n%s", se[max(strings.Index(se, "WARNING: DATA RACE"), 0):])
	}
	is.close()

	issued, deleted, handed, issErrs := is.stats(mountPath)
	keys, sent, refused := rec.counts()
	log := m.log() + m.stderr.String() // go-fuse and the race detector write to stderr
	t.Logf("load %s: %s", loadTook.Round(time.Millisecond), tl)
	t.Logf("accounts: %d issued, %d deleted at expiry; the mount was handed %d and signed %d requests with %d keys, %d refused and retried; the client was refused %d times",
		issued, len(deleted), handed, sent, keys, refused, cp.refusals())
	t.Logf("mount log: %d credential loads, %d refusals logged", strings.Count(log, "loaded, expire in"), strings.Count(log, "refused by the server"))

	for _, f := range tl.failures() {
		t.Error(f)
	}
	for _, err := range issErrs {
		t.Errorf("issuer: %v", err)
	}
	if loadTook < cfg.window {
		t.Errorf("the load lasted %s, want %s", loadTook, cfg.window)
	}
	wantRot := int(cfg.window/rotateEvery) / 2
	if issued < 4 || handed < 4 || keys < 4 || handed < wantRot {
		t.Errorf("too few rotations: %d accounts issued, %d handed to the mount, %d keys signed with; want ≥ 4 and ≥ %d", issued, handed, keys, wantRot)
	}
	if revoked != nil && (rec.refusedKey(revoked.cred.SecretID) == 0 || cp.refusals() == 0) {
		t.Errorf("keys revoked at %s: the mount was refused %d times with them, the client %d times; want both ≥ 1",
			revoked.deleted.Format("15:04:05.000"), rec.refusedKey(revoked.cred.SecretID), cp.refusals())
	}
	if len(deleted) < 3 {
		t.Errorf("only %d accounts expired and were deleted", len(deleted))
	}
	// Expired keys are really refused by the server.
	for _, a := range deleted {
		st, code, err := iam.Probe(ctx, bucket, a.cred)
		if !errors.Is(err, testrig.ErrRefused) {
			t.Errorf("keys %s, expired at %s and deleted, got HTTP %d %s (%v), want 403",
				a.cred.SecretID, a.expire.Format("15:04:05"), st, code, err)
		}
	}
	if len(deleted) > 0 {
		_, code, _ := iam.Probe(ctx, bucket, deleted[0].cred)
		t.Logf("expired keys refused by the server: %d of %d (%s)", len(deleted), len(deleted), code)
	}
	if s := levelLines(log, "ERROR"); s != "" {
		t.Errorf("the mount logged errors:\n%s", s)
	}
	if t.Failed() {
		t.Logf("client refresher log:\n%s", strings.Join(clientLog.all(), "\n"))
		t.Logf("mount log, credential and warning lines:\n%s", grepLines(log, "credentials", "level=WARN", "level=ERROR"))
	}
}

// writeLoad runs the writes through the mount: cp -r of a tree of small
// files into it, and one throttled big file that goes up in parts across
// rotations. Both are checked through the test's own client.
func writeLoad(ctx context.Context, t *testing.T, wg *sync.WaitGroup, tl *tally, mnt string, client *transport.Client, work string) {
	src := filepath.Join(work, "tree")
	var names []string
	for i := range 40 {
		n := fmt.Sprintf("w%02d", i)
		names = append(names, n)
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, n), smallContent(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(mnt, "in"), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		tl.fail("mkdir in mount", err)
		return
	}
	every(ctx, wg, tl, "cp -r into mount", 500*time.Millisecond, func(i int) error {
		dst := fmt.Sprintf("in/cp%03d", i)
		if out, err := exec.Command("cp", "-r", src, filepath.Join(mnt, dst)).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
		for _, n := range names {
			if err := checkObject(context.Background(), client, dst+"/"+n, smallContent(n)); err != nil {
				return err
			}
		}
		return nil
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		const size = 64 << 20
		start := time.Now()
		err := func() error {
			f, err := os.Create(filepath.Join(mnt, "big", "written.bin"))
			if err != nil {
				return err
			}
			if _, err := io.CopyBuffer(f, &patternReader{size: size, rate: 4 << 20}, make([]byte, 1<<20)); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			g, err := client.Get(context.Background(), &transport.GetInput{Key: "big/written.bin", Length: -1})
			if err != nil {
				return err
			}
			defer g.Body.Close()
			n, err := checkPattern(context.Background(), g.Body, 0, 0)
			if err == nil && n != size {
				err = fmt.Errorf("the object has %d bytes, want %d", n, size)
			}
			return err
		}()
		if err != nil {
			tl.fail("big write through the mount", err)
		} else {
			tl.ok("big write through the mount", 1)
			t.Logf("wrote %d MiB through the mount in %s", size>>20, time.Since(start).Round(time.Millisecond))
		}
	}()
}

// checkObject GETs key with the client and compares it with want.
func checkObject(ctx context.Context, c *transport.Client, key string, want []byte) error {
	g, err := c.Get(ctx, &transport.GetInput{Key: key, Length: -1})
	if err != nil {
		return err
	}
	defer g.Body.Close()
	b, err := io.ReadAll(g.Body)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, want) {
		return fmt.Errorf("%s: wrong content (%d bytes)", key, len(b))
	}
	return nil
}

// checkRanges reads a few ranges of the pattern file at path.
func checkRanges(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != size {
		return fmt.Errorf("%s has %d bytes, want %d", path, st.Size(), size)
	}
	buf, want := make([]byte, 256<<10), make([]byte, 256<<10)
	for _, off := range []int64{0, size / 3, rand.Int64N(size - int64(len(buf))), size - int64(len(buf))} {
		if _, err := f.ReadAt(buf, off); err != nil {
			return err
		}
		fillPattern(want, off)
		if !bytes.Equal(buf, want) {
			return fmt.Errorf("%s: wrong content at %d", path, off)
		}
	}
	return nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(len(l)-n, 0):], "\n")
}

// levelLines returns the log lines of one slog level.
func levelLines(log, level string) string {
	return grepLines(log, "level="+level)
}

// grepLines returns the lines of s holding any of words.
func grepLines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
