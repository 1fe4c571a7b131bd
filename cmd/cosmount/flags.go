package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"cosmount/internal/units"
)

// config is everything the command line says.
type config struct {
	bucket, prefix, mountpoint string

	region, endpoint, domain, protocol string
	pathStyle                          optBool
	useAccelerate                      bool
	timeout                            time.Duration
	chunkRetryTimes                    int
	uploadCheckMD5, uploadAddMetaMD5   bool

	readOnly, allowOther     bool
	allowNonEmpty            bool
	uid, gid                 uint
	fileMode, dirMode        octal
	statTTL, negTTL          time.Duration
	readCacheSize, blockSize size
	fastList                 bool
	cacheDir                 string
	cacheSize                size

	chunkSize, sliceSize, copyChunkSize, copySliceSize size
	chunkParallel, copyChunkParallel                   int
	fileParallel                                       int
	writeBackDelay                                     time.Duration

	foreground, debugFUSE bool
	logLevel, logFile     string
	cpuProfile            string

	creds *credFlags
}

// optBool is a bool flag that knows whether it was given.
type optBool struct{ set, v bool }

func (b *optBool) String() string { return strconv.FormatBool(b.v) }
func (b *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	b.set, b.v = true, v
	return nil
}
func (b *optBool) IsBoolFlag() bool { return true }

// octal is a permission mode given in octal ("0644").
type octal uint32

func (o *octal) String() string { return fmt.Sprintf("%04o", uint32(*o)) }
func (o *octal) Set(s string) error {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return errors.New("want an octal mode such as 0644")
	}
	*o = octal(v)
	return nil
}

// size is a byte count with an optional unit: 512K, 8M, 1G, 1GiB, 1024.
type size int64

// String shows the size in the largest unit that divides it (256M, 4K).
func (z *size) String() string {
	v := int64(*z)
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"G", 30}, {"M", 20}, {"K", 10}} {
		if v != 0 && v%(1<<u.shift) == 0 {
			return strconv.FormatInt(v>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}
func (z *size) Set(s string) error {
	v, err := units.ParseSize(s)
	if err != nil {
		return err
	}
	*z = size(v)
	return nil
}

const usageText = `usage: cosmount [flags] BUCKET[:PREFIX] MOUNTPOINT

Mounts a Tencent Cloud COS bucket (name-appid), or with --endpoint any
S3-compatible bucket, at MOUNTPOINT. Runs in the background once the mount
is usable unless --foreground is given. Unmount with umount or fusermount3 -u.

Credentials: the first source given wins, in this order: --credential-process,
--sts-url, --cam-role, --sts-file, --secret-id-file/--secret-key-file,
--passwd-file; then the environment (TENCENTCLOUD_SECRET_ID /
TENCENTCLOUD_SECRET_KEY / TENCENTCLOUD_SESSION_TOKEN, COSACCESSKEYID /
COSSECRETACCESSKEY, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_SESSION_TOKEN); then ~/.passwd-cosmount and /etc/passwd-cosmount.
Flags name files, commands or URLs, never a secret.

flags:
`

// parseArgs reads the command line; flags may come before or after the
// positional arguments.
func parseArgs(args []string, stderr io.Writer) (*config, error) {
	c := &config{fileMode: 0o644, dirMode: 0o755, readCacheSize: 256 << 20, blockSize: 256 << 10}
	fl := flag.NewFlagSet("cosmount", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fl.PrintDefaults()
	}
	fl.StringVar(&c.region, "region", "", "COS region (ap-guangzhou) or S3 region (us-east-1 with --endpoint)")
	fl.StringVar(&c.endpoint, "endpoint", "", "URL of an S3-compatible store, without user info (keys come from the credential sources); selects the s3 flavour")
	fl.StringVar(&c.domain, "domain", "", "COS endpoint template, default {Bucket}.cos.{Region}.myqcloud.com")
	fl.StringVar(&c.protocol, "protocol", "https", "http or https (COS)")
	fl.Var(&c.pathStyle, "path-style", "bucket in the URL path (default on for an IP or localhost endpoint)")
	fl.BoolVar(&c.useAccelerate, "use-accelerate", false, "use COS's global acceleration endpoint")
	fl.DurationVar(&c.timeout, "timeout", 60*time.Second, "timeout of one request attempt (more than 0)")
	fl.IntVar(&c.chunkRetryTimes, "chunk-retry-times", 3, "retries of a failed request (0: none)")
	fl.BoolVar(&c.uploadCheckMD5, "upload-check-content-md5", false, "send Content-MD5 with uploads")
	fl.BoolVar(&c.uploadAddMetaMD5, "upload-add-meta-md5", false, "store the MD5 of single-PUT uploads as metadata md5")
	fl.BoolVar(&c.readOnly, "read-only", false, "mount read-only")
	fl.BoolVar(&c.allowOther, "allow-other", false, "let other users in (turns on default_permissions)")
	fl.BoolVar(&c.allowNonEmpty, "allow-non-empty", false, "mount over a directory that has files (hidden while mounted) or is a mount point already")
	fl.UintVar(&c.uid, "uid", uint(os.Getuid()), "owner of files without a uid in their metadata")
	fl.UintVar(&c.gid, "gid", uint(os.Getgid()), "group of files without a gid in their metadata")
	fl.Var(&c.fileMode, "file-mode", "permissions of files without a mode in their metadata (octal)")
	fl.Var(&c.dirMode, "dir-mode", "permissions of directories (octal)")
	fl.DurationVar(&c.statTTL, "stat-cache-ttl", time.Minute, "how long attributes and entries are cached")
	fl.DurationVar(&c.negTTL, "negative-cache-ttl", 5*time.Second, "how long a missing name is remembered")
	fl.Var(&c.readCacheSize, "read-cache-size", "memory for cached read blocks")
	fl.Var(&c.blockSize, "read-block-size", "unit of the read cache: the least a random read fetches; sequential reads fetch 4M per request")
	fl.BoolVar(&c.fastList, "fast-list", false, "attributes from listings alone: no HEAD while listing (mtime = upload time, default modes)")
	fl.StringVar(&c.cacheDir, "cache-dir", "", "folder for write-back files (default a folder under the system's temp dir)")
	fl.Var(&c.cacheSize, "cache-size", "disk space for write-back files (default 10G)")
	fl.Var(&c.chunkSize, "chunk-size", "part size of multipart uploads, grown to fit 10,000 parts (default 8M)")
	fl.Var(&c.sliceSize, "slice-size", "files up to this size go up as one PUT (default 16M)")
	fl.IntVar(&c.chunkParallel, "chunk-parallel-limit", 4, "parts of one file uploaded at once")
	fl.Var(&c.copyChunkSize, "copy-chunk-size", "part size of server-side copies (default 64M)")
	fl.Var(&c.copySliceSize, "copy-slice-size", "objects up to this size are copied with one request (default 64M)")
	fl.IntVar(&c.copyChunkParallel, "copy-chunk-parallel-limit", 8, "parts of one copy in flight")
	fl.IntVar(&c.fileParallel, "file-parallel-limit", 4, "files uploaded at once from the write-back journal")
	fl.DurationVar(&c.writeBackDelay, "write-back-delay", 0, "0: close waits for the upload; else close returns once the data is safe in the cache dir and the upload starts this long after (crash-safe journal)")
	fl.BoolVar(&c.foreground, "foreground", false, "stay attached; log to stderr")
	fl.BoolVar(&c.debugFUSE, "debug-fuse", false, "log every FUSE request")
	fl.StringVar(&c.cpuProfile, "cpu-profile", "", "write a Go CPU profile of the whole mount to this file (for debugging)")
	fl.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&c.logFile, "log-file", "", "log here (default stderr in the foreground, nothing in the background)")

	c.creds = addCredentialFlags(fl)

	var pos []string
	rest := args
	for {
		if err := fl.Parse(rest); err != nil {
			return nil, err
		}
		rest = fl.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			pos = append(pos, rest[1:]...)
			break
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	if len(pos) != 2 {
		fl.Usage()
		return nil, fmt.Errorf("want BUCKET[:PREFIX] MOUNTPOINT, got %d arguments", len(pos))
	}
	c.bucket, c.prefix, _ = strings.Cut(pos[0], ":")
	c.mountpoint = pos[1]
	if c.bucket == "" {
		return nil, errors.New("empty bucket name")
	}
	c.prefix = strings.TrimPrefix(c.prefix, "/")
	if c.prefix != "" && !strings.HasSuffix(c.prefix, "/") {
		c.prefix += "/"
	}
	if c.endpoint != "" {
		u, err := checkURLFlag("--endpoint", c.endpoint)
		if err != nil {
			return nil, err
		}
		if !c.pathStyle.set {
			h := u.Hostname()
			c.pathStyle.v = h == "localhost" || net.ParseIP(h) != nil
		}
		if c.region == "" {
			c.region = "us-east-1"
		}
	} else if c.region == "" {
		c.region = "ap-guangzhou"
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %v: want a duration above 0, such as 30s", c.timeout)
	}
	if c.chunkRetryTimes < 0 {
		return nil, fmt.Errorf("--chunk-retry-times %d: want 0 (no retries) or more", c.chunkRetryTimes)
	}
	if c.uid > math.MaxUint32 {
		return nil, fmt.Errorf("--uid %d: want 0 to %d", c.uid, uint64(math.MaxUint32))
	}
	if c.gid > math.MaxUint32 {
		return nil, fmt.Errorf("--gid %d: want 0 to %d", c.gid, uint64(math.MaxUint32))
	}
	if c.protocol != "http" && c.protocol != "https" {
		return nil, fmt.Errorf("--protocol %q: want http or https", c.protocol)
	}
	if c.blockSize < 64<<10 || c.blockSize > 64<<20 {
		return nil, fmt.Errorf("--read-block-size %d: want 64K to 64M", c.blockSize)
	}
	if c.readCacheSize < 2*c.blockSize {
		return nil, fmt.Errorf("--read-cache-size %d: want at least two blocks (%d)", c.readCacheSize, 2*c.blockSize)
	}
	if c.writeBackDelay < 0 {
		return nil, errors.New("--write-back-delay cannot be negative")
	}
	if c.chunkParallel < 1 || c.copyChunkParallel < 1 || c.fileParallel < 1 {
		return nil, errors.New("parallel limits must be at least 1")
	}
	if c.chunkSize != 0 && (c.chunkSize < 1<<20 || c.chunkSize > 5<<30) {
		return nil, fmt.Errorf("--chunk-size %d: want 1M to 5G", c.chunkSize)
	}
	switch c.logLevel {
	case "debug", "info", "warn", "error":
	default:
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	if c.statTTL < 0 || c.negTTL < 0 {
		return nil, errors.New("cache TTLs cannot be negative")
	}
	if err := c.creds.check(); err != nil {
		return nil, err
	}
	return c, nil
}
