// Command cosmount mounts a COS or S3-compatible bucket as a directory.
//
// Exit codes: 0 mounted (background) or unmounted cleanly (foreground);
// 1 the mount failed or ended with an error; 2 bad command line; 128+N
// stopped by signal N (SIGINT, SIGTERM, SIGHUP) before the mount was
// ready.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"cosmount/auth"
	cfs "cosmount/fs"
	"cosmount/transport"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	// A write to a closed pipe fails with EPIPE instead of killing the
	// process ("cosmount --foreground ... 2>&1 | tee log" after tee ends,
	// which would leave a dead mount). Caught rather than ignored, so the
	// commands it runs (--credential-process, fusermount) get the default.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	c, err := parseArgs(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "cosmount: %v\n", err)
		return 2
	}
	if !c.foreground && os.Getenv(childEnv) == "" {
		return daemonize(args, stderr)
	}
	ready := readyNotifier()
	if err := mount(c, stderr, ready); err != nil {
		code := 1
		var ie interruptedError
		if errors.As(err, &ie) {
			code = signalExit(ie.sig)
		}
		msg := oneLine(err.Error())
		if ready(msg) || !c.foreground {
			// The waiting parent prints it; or the mount was up, and the
			// background process logged it (its stderr has left the
			// parent).
			return code
		}
		fmt.Fprintf(stderr, "cosmount: %s\n", msg)
		return code
	}
	return 0
}

// interruptedError is how a mount stopped by a signal before it was tried
// ends.
type interruptedError struct{ sig os.Signal }

func (e interruptedError) Error() string {
	return "stopped by " + signalName(e.sig) + " before mounting: nothing is mounted"
}

// signalName is a signal's name as kill spells it (SIGTERM).
func signalName(s os.Signal) string {
	if n, ok := s.(syscall.Signal); ok {
		if name := unix.SignalName(n); name != "" {
			return name
		}
	}
	return s.String()
}

// signalExit is the exit code of a command stopped by s: 128 + its number.
func signalExit(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

// retries turns --chunk-retry-times into the transport's count, where 0
// means its default and a negative count none.
func retries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// oneLine keeps an error to one line a person can read.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

func newLogger(c *config, stderr io.Writer) (*slog.Logger, io.Writer, error) {
	var w io.Writer = stderr
	switch {
	case c.logFile != "":
		f, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		w = f
	case !c.foreground:
		w = io.Discard
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.logLevel))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), w, nil
}

// mount mounts the bucket and serves it until it is unmounted. ready is
// called with "" once the mount is usable, or with the reason it failed.
func mount(c *config, stderr io.Writer, ready func(string) bool) error {
	// Signals are caught from the start. One that comes before the mount
	// is tried stops the start-up (the credentials and the bucket's first
	// listing are abandoned) and nothing is mounted: the background
	// process gets the signals its waiting parent is sent. One that comes
	// while the mount starts unmounts it once it is up.
	sig := make(chan os.Signal, 2)
	// SIGHUP too: the terminal of a --foreground mount closing.
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startCtx, stopStart := context.WithCancel(ctx)
	defer stopStart()
	var early os.Signal
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case early = <-sig:
			stopStart()
		case <-startCtx.Done():
		}
	}()
	// interrupted ends the watch and reports a signal that came during it;
	// from then on the signals stay in sig.
	interrupted := func() error {
		stopStart()
		<-watched
		if early != nil {
			return interruptedError{early}
		}
		return nil
	}
	// startFailed is the error a step of the start-up ends with: the
	// signal that stopped it, if one did.
	startFailed := func(err error) error {
		if ierr := interrupted(); ierr != nil {
			return ierr
		}
		return err
	}

	logger, logw, err := newLogger(c, stderr)
	if err != nil {
		return startFailed(err)
	}
	if err := checkMountPoint(c.mountpoint, c.allowNonEmpty); err != nil {
		return startFailed(err)
	}
	if err := checkFuseDevice(fuseDevice, os.Geteuid()); err != nil {
		return startFailed(err)
	}

	c.creds.setLogger(logger)
	creds, desc, err := auth.NewProvider(startCtx, c.creds.sourceConfig(c.bucket))
	if err != nil {
		return startFailed(err) // says "credentials: ..." already
	}
	logger.Info("credentials", "source", desc)

	tc := transport.Config{
		Flavor:          transport.FlavorCOS,
		Bucket:          c.bucket,
		Region:          c.region,
		Domain:          c.domain,
		Protocol:        c.protocol,
		UseAccelerate:   c.useAccelerate,
		Timeout:         c.timeout,
		Credentials:     creds,
		MaxRetries:      retries(c.chunkRetryTimes),
		CheckContentMD5: c.uploadCheckMD5,
		AddMetaMD5:      c.uploadAddMetaMD5,
	}
	if c.endpoint != "" {
		tc.Flavor, tc.Endpoint, tc.PathStyle = transport.FlavorS3, c.endpoint, c.pathStyle.v
	}
	client, err := transport.New(tc)
	if err != nil {
		return startFailed(err)
	}

	// Prove the bucket answers before anything is mounted.
	pctx, pcancel := context.WithTimeout(startCtx, c.timeout)
	// Its first page of the root also answers the first lookups.
	rootPage, err := client.List(pctx, &transport.ListInput{Prefix: c.prefix, Delimiter: "/"})
	pcancel()
	if err != nil {
		return startFailed(fmt.Errorf("bucket %s: %w", c.bucket, err))
	}

	// Keep the heap near what the caches are allowed to hold.
	debug.SetMemoryLimit(int64(c.readCacheSize) + 96<<20)

	minPart := int64(transport.DefaultMinPartSize)
	if tc.Flavor == transport.FlavorS3 {
		minPart = 5 << 20 // S3's smallest part but the last
	}
	up := transport.NewUploader(client, transport.UploaderOptions{SliceSize: int64(c.sliceSize), ChunkSize: int64(c.chunkSize),
		ChunkParallelLimit: c.chunkParallel, ChunkRetryTimes: retries(c.chunkRetryTimes), MinPartSize: minPart})
	cp := transport.NewCopier(client, transport.CopierOptions{CopySliceSize: int64(c.copySliceSize), CopyChunkSize: int64(c.copyChunkSize),
		CopyChunkParallelLimit: c.copyChunkParallel, ChunkRetryTimes: retries(c.chunkRetryTimes), MinPartSize: minPart})
	cacheDir := c.cacheDir
	if cacheDir == "" {
		name := c.bucket
		if c.prefix != "" {
			// Mounts of other prefixes of the bucket get folders of their own.
			sum := sha256.Sum256([]byte(c.prefix))
			name += "-" + hex.EncodeToString(sum[:6])
		}
		cacheDir = filepath.Join(os.TempDir(), fmt.Sprintf("cosmount-%d", os.Getuid()), name)
	}
	fsys, err := cfs.New(ctx, client, up, cp, cfs.Options{
		Prefix:            c.prefix,
		Origin:            origin(c),
		ReadOnly:          c.readOnly,
		UID:               uint32(c.uid),
		GID:               uint32(c.gid),
		FileMode:          uint32(c.fileMode),
		DirMode:           uint32(c.dirMode),
		StatTTL:           c.statTTL,
		NegativeTTL:       c.negTTL,
		FastList:          c.fastList,
		ReadCacheSize:     int64(c.readCacheSize),
		BlockSize:         int64(c.blockSize),
		CacheDir:          cacheDir,
		CacheSize:         int64(c.cacheSize),
		SliceSize:         up.Options().SliceSize,
		WriteBackDelay:    c.writeBackDelay,
		FileParallelLimit: c.fileParallel,
		ChunkSize:         up.Options().ChunkSize,
		Logger:            logger,
	})
	if err != nil {
		return startFailed(err)
	}
	opts := fsys.MountOptions()
	opts.FsName = "cosmount:" + c.bucket
	opts.Name = "cosmount"
	opts.AllowOther = c.allowOther
	if c.allowOther {
		opts.Options = append(opts.Options, "default_permissions")
	}
	if c.readOnly {
		opts.Options = append(opts.Options, "ro")
	}
	opts.DirectMount = os.Geteuid() == 0
	if c.debugFUSE {
		opts.Debug = true
		opts.MountOptions.Logger = log.New(logw, "fuse: ", log.Lmicroseconds)
	}
	if err := interrupted(); err != nil {
		fsys.Close()
		return err
	}
	server, err := gofs.Mount(c.mountpoint, fsys.Root(), opts)
	if err != nil {
		return fmt.Errorf("mount %s: %w", c.mountpoint, err)
	}
	if err := server.WaitMount(); err != nil {
		_ = server.Unmount()
		return fmt.Errorf("mount %s: %w", c.mountpoint, err)
	}
	fsys.Mounted(c.mountpoint)
	fsys.WarmRoot(rootPage)
	raiseReadahead(c.mountpoint, logger)
	lockCode(logger)
	if c.cpuProfile != "" {
		if stop, err := startCPUProfile(c.cpuProfile); err != nil {
			logger.Warn("no CPU profile", "err", err)
		} else {
			defer stop()
		}
	}
	logger.Info("mounted", "bucket", c.bucket, "prefix", c.prefix, "mountpoint", c.mountpoint)
	if !c.foreground {
		// The background process's stderr is the waiting parent's pipe
		// until now; the parent is about to exit.
		detachStderr(logw, logger)
	}
	ready("")

	drainCtx, stopDrain := context.WithCancel(ctx)
	defer stopDrain()
	// served closes when the mount is gone: from then on a signal is no
	// call to unmount. The mount point may already be another mount's (a
	// umount, then a new mount there while this one drains), and
	// unmounting by path would take that one down.
	served := make(chan struct{})
	go func() {
		for {
			var s os.Signal
			select {
			case s = <-sig:
			case <-served:
				return
			}
			select {
			case <-served:
				stopDrain() // the signal came as the mount went
				return
			default:
			}
			logger.Info("unmounting", "signal", s.String())
			for i := 0; i < 50; i++ {
				select {
				case <-served:
					return
				default:
				}
				if !fsys.StillMounted() {
					// Ours was unmounted lazily (umount -l) while files
					// stay open, or another mount covers it: unmounting
					// the path would take down whatever is there.
					logger.Warn("not unmounting: the mount point does not reach this mount any more (umount -l, or another mount over it); it ends when its files are closed, or with SIGKILL", "signal", s.String())
					break
				}
				if err := server.Unmount(); err == nil {
					return
				} else if i == 0 {
					logger.Warn("unmount failed; retrying while the mount is busy", "err", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	server.Wait()
	close(served)
	logger.Info("unmounted", "mountpoint", c.mountpoint)
	go func() {
		// A second signal gives up on pending uploads (they stay journaled).
		select {
		case <-sig:
			stopDrain()
		case <-drainCtx.Done():
		}
	}()
	defer fsys.Close()
	if err := fsys.Drain(drainCtx); err != nil {
		// run prints it on stderr in the foreground, where the log
		// usually is too; the background process's stderr is no longer
		// the parent's.
		if logw != stderr {
			logger.Error("the mount ended with an error", "err", err)
		}
		return err
	}
	return nil
}

// startCPUProfile profiles the process until the returned function runs.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// origin names what the mount serves, for its cache dir: the server (its
// host, for --endpoint; COS names its buckets uniquely), the bucket and
// the prefix. It holds no secret: an endpoint's user info and query are
// left out.
func origin(c *config) string {
	server := "cos"
	if c.endpoint != "" {
		server = c.endpoint
		if u, err := url.Parse(c.endpoint); err == nil {
			server = u.Scheme + "://" + u.Host + u.Path
		}
	}
	return server + " " + c.bucket + ":" + c.prefix
}
