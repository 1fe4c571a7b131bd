// Package fs is the go-fuse node tree: it maps bucket keys to files and
// directories, serves attributes from listings and parallel HEADs, and reads
// through the block cache.
//
// Lock order: Node.mu, then FS.logMu. statCache has its own lock, taken
// alone. No lock is held across a bucket call.
package fs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sync/errgroup"

	"cosmount/cache"
	"cosmount/transport"
)

// Bucket is what the filesystem needs of a bucket.
type Bucket interface {
	Head(ctx context.Context, in *transport.HeadInput) (*transport.ObjectInfo, error)
	Get(ctx context.Context, in *transport.GetInput) (*transport.GetOutput, error)
	List(ctx context.Context, in *transport.ListInput) (*transport.ListOutput, error)
	Put(ctx context.Context, in *transport.PutInput) (*transport.PutOutput, error)
	Delete(ctx context.Context, key string) error
	DeleteMany(ctx context.Context, keys []string) ([]transport.DeleteError, error)
	ListMultipartUploads(ctx context.Context, prefix string) ([]transport.Upload, error)
	AbortMultipart(ctx context.Context, key, uploadID string) error
}

// Uploads starts multipart uploads, or takes up one left open
// (transport.Uploader).
type Uploads interface {
	Begin(ctx context.Context, key, contentType string, meta map[string]string) (*transport.MultipartWriter, error)
	Resume(ctx context.Context, key, uploadID string) (*transport.MultipartWriter, error)
}

// Copies copies objects server-side, multipart when large
// (transport.Copier).
type Copies interface {
	Copy(ctx context.Context, in *transport.CopyObjectInput) (*transport.CopyOutput, error)
}

// Options configures the filesystem.
type Options struct {
	Prefix string // key prefix the mount shows, "" or ending in "/"
	// Origin names the bucket (and server) the mount serves, prefix
	// included. The cache dir records it: a mount of another origin is
	// refused the cache dir while it holds uploads journaled for this one.
	// "" leaves the cache dir's origin alone.
	Origin   string
	ReadOnly bool
	UID, GID uint32
	FileMode uint32 // permission bits for objects without a mode (0644)
	DirMode  uint32 // permission bits for directories (0755)

	StatTTL     time.Duration // attributes and entries (1 min)
	NegativeTTL time.Duration // names that do not exist (5 s)
	// FastList takes attributes from listings alone and sends no HEAD
	// while listing.
	FastList bool
	// ListHeadParallel bounds the HEADs in flight while a directory is
	// listed (128).
	ListHeadParallel int

	ReadCacheSize int64 // bytes of blocks kept in memory (256 MiB)
	// BlockSize is the read cache's unit (256 KiB): what a random read
	// fetches at least.
	BlockSize int64
	// MaxReadahead is the most blocks fetched ahead of a sequential reader
	// (64 MiB worth), ReadaheadRun how many go in one request at first (4
	// MiB worth); requests grow with the window to half of it.
	MaxReadahead, ReadaheadRun int
	// FetchParallel bounds concurrent block fetches for the whole mount.
	FetchParallel int

	// CacheDir holds write-back files; CacheSize bounds them (10 GiB).
	CacheDir  string
	CacheSize int64
	// SliceSize: files up to this size go up as one PUT. ChunkSize: the
	// part size of larger ones (grown to fit 10,000 parts).
	SliceSize, ChunkSize int64
	// RenameParallel bounds the copies of a directory rename (32).
	RenameParallel int
	// WriteBackDelay > 0: close returns once the data is durable in the
	// cache, and the upload starts this long after the last close.
	WriteBackDelay time.Duration
	// MetaDelay is how long attributes set on an unchanged file wait
	// before their self-copy (1 s; negative: written at once). See
	// metaflush.go.
	MetaDelay time.Duration
	// FileParallelLimit bounds the files uploaded at once from the
	// write-back journal (4).
	FileParallelLimit int

	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.FileMode == 0 {
		o.FileMode = 0o644
	}
	if o.DirMode == 0 {
		o.DirMode = 0o755
	}
	o.FileMode &= 0o7777
	o.DirMode &= 0o7777
	if o.StatTTL == 0 {
		o.StatTTL = time.Minute
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = 5 * time.Second
	}
	if o.MetaDelay == 0 {
		o.MetaDelay = time.Second
	}
	if o.ListHeadParallel <= 0 {
		o.ListHeadParallel = 128
	}
	if o.ReadCacheSize <= 0 {
		o.ReadCacheSize = 256 << 20
	}
	if o.BlockSize <= 0 {
		o.BlockSize = 256 << 10
	}
	if o.ReadaheadRun <= 0 {
		o.ReadaheadRun = int(max(1, (4<<20)/o.BlockSize))
	}
	if o.MaxReadahead <= 0 {
		o.MaxReadahead = int(max(int64(o.ReadaheadRun), min(64<<20, o.ReadCacheSize/4)/o.BlockSize))
	}
	if o.FetchParallel <= 0 {
		o.FetchParallel = 16
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(os.TempDir(), "cosmount-cache")
	}
	if o.SliceSize <= 0 {
		o.SliceSize = transport.DefaultSliceSize
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = transport.DefaultChunkSize
	}
	if o.FileParallelLimit <= 0 {
		o.FileParallelLimit = 4
	}
	if o.RenameParallel <= 0 {
		o.RenameParallel = 32
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
}

// FS is one mounted bucket.
type FS struct {
	opt       Options
	bucket    Bucket
	up        Uploads
	copier    Copies
	store     *cache.Store
	unlockDir func()         // keeps the cache dir's lock file open; gives the lock back
	wb        *writeBack     // nil unless WriteBackDelay > 0
	bg        sync.WaitGroup // uploads started by a release, which Drain waits for
	metas     metaFlusher    // attribute changes waiting for their self-copy
	// failed: files whose last upload failed, which the unmount tries
	// again and journals for the next mount (see keepFailed).
	failedMu sync.Mutex
	failed   map[*File]bool
	// detached: forgotten files with work pending, by key (detached.go).
	detachedMu sync.Mutex
	detached   map[string]*File
	blocks     *cache.BlockCache
	stats      *statCache
	heads      *headQueue
	lazy       lazyHeads // listed entries whose HEADs wait for a first stat
	listings   listingCache
	nsGen      atomic.Uint64 // bumped by every change of names (see prefetch.go)
	// streams counts the sequential readers with a readahead window: they
	// share half of the read cache (see handle.readahead).
	streams   atomic.Int64
	ctx       context.Context
	mountTime time.Time
	log       *slog.Logger
	root      *Dir

	logMu      sync.Mutex
	loggedKeys map[string]bool

	hiddenMu sync.Mutex
	hidden   map[string]*File          // unlinked keys whose object waits for the last close of this file
	deleting map[string]*pendingDelete // old names of renamed files (deferred.go)
	// deleteWaits counts the requests waiting for a pending delete.
	deleteWaits atomic.Int64

	mountIDs atomic.Pointer[[]int] // this mount's ids in mountinfo (see Mounted)
	noFdinfo atomic.Bool           // /proc/TID/fdinfo unreadable as expected
	// mountpoint: where Mounted found it (written before StillMounted is
	// called, from the goroutine that starts the one calling it).
	mountpoint string
}

// New builds the filesystem. ctx lives as long as the mount.
func New(ctx context.Context, b Bucket, up Uploads, cp Copies, opt Options) (*FS, error) {
	opt.setDefaults()
	// The cache dir's lock is held while the FS lives; the kernel gives it
	// back when the process ends, however it ends.
	unlock := func() {}
	if !opt.ReadOnly {
		var err error
		if unlock, err = cache.LockDir(opt.CacheDir); err != nil {
			return nil, err
		}
	}
	if !opt.ReadOnly {
		if err := claimCacheDir(opt.CacheDir, opt.Origin); err != nil {
			unlock()
			return nil, err
		}
	}
	store, err := cache.NewStore(opt.CacheDir, opt.CacheSize)
	if err != nil {
		unlock()
		return nil, err
	}
	f := &FS{
		ctx:        ctx,
		opt:        opt,
		bucket:     b,
		store:      store,
		unlockDir:  unlock,
		hidden:     map[string]*File{},
		deleting:   map[string]*pendingDelete{},
		failed:     map[*File]bool{},
		stats:      newStatCache(200000),
		mountTime:  time.Now(),
		log:        opt.Logger,
		loggedKeys: map[string]bool{},
	}
	// Objects are made through the fences of deferred.go.
	f.bucket = fencedBucket{b, f}
	f.up = fencedUploads{up, f}
	f.copier = fencedCopies{cp, f}
	bc, err := cache.NewBlockCache(f.fetchRange, cache.BlockCacheOptions{
		BlockSize:  opt.BlockSize,
		MaxBytes:   opt.ReadCacheSize,
		MaxFetches: opt.FetchParallel,
		Context:    ctx,
	})
	if err != nil {
		unlock()
		return nil, err
	}
	f.blocks = bc
	f.heads = newHeadQueue(ctx, opt.ListHeadParallel, f.headInto)
	if !opt.ReadOnly {
		// Uploads a previous mount journaled go up before this one is
		// ready; the multipart uploads they resume are kept, the others
		// it left open are aborted.
		entries := f.readJournal()
		f.abortNotedUploads(ctx, keptUploads(entries))
		f.recoverJournal(ctx, entries)
	}
	if opt.WriteBackDelay > 0 {
		if err := f.startWriteBack(ctx); err != nil {
			unlock()
			return nil, err
		}
	}
	f.root = &Dir{fsys: f}
	return f, nil
}

// Close gives back the cache dir's lock, once the mount has ended and
// Drain has returned: another mount may then take the folder over.
func (f *FS) Close() { f.unlockDir() }

// Root is the root directory node, to hand to go-fuse's Mount.
func (f *FS) Root() gofs.InodeEmbedder { return f.root }

// MountOptions are the go-fuse options cosmount mounts with.
func (f *FS) MountOptions() *gofs.Options {
	ttl, neg := f.opt.StatTTL, f.opt.NegativeTTL
	return &gofs.Options{
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NegativeTimeout: &neg,
		UID:             f.opt.UID,
		GID:             f.opt.GID,
		MountOptions: fuse.MountOptions{
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			// Enough background requests for the kernel's readahead of a
			// few files to be in flight at once.
			MaxBackground: 64,
			// Reads are answered from byte slices: splicing only costs a
			// failed attempt to grow a pipe to 1 MiB per read.
			DisableSplice: true,
			// O_DIRECT readers (databases, fio) keep several reads in
			// flight on one descriptor instead of one at a time.
			ExtraCapabilities: fuse.CAP_ASYNC_DIO,
			PanicHandler: func(v any) fuse.Status {
				f.log.Error("internal error answered with EIO", "panic", v)
				return fuse.EIO
			},
		},
	}
}

// fetchRange is the block cache's fetcher: a ranged GET of one version.
func (f *FS) fetchRange(ctx context.Context, key, etag string, off, length int64) (io.ReadCloser, error) {
	out, err := f.bucket.Get(ctx, &transport.GetInput{Key: key, Offset: off, Length: length, IfMatch: etag})
	if err != nil {
		if errors.Is(err, transport.ErrPreconditionFailed) || errors.Is(err, transport.ErrNotFound) {
			// The object changed or went away: forget what we knew.
			f.stats.forget(key)
		}
		return nil, err
	}
	return out.Body, nil
}

// keyOf maps a path below the mount to its key.
func (f *FS) keyOf(path string) string { return f.opt.Prefix + path }

// warnOnce logs msg for key the first time only.
func (f *FS) warnOnce(key, msg string) {
	f.logMu.Lock()
	seen := f.loggedKeys[msg+"\x00"+key]
	if !seen && len(f.loggedKeys) < 10000 {
		f.loggedKeys[msg+"\x00"+key] = true
	}
	f.logMu.Unlock()
	if !seen {
		f.log.Warn(msg, "key", key)
	}
}

// hide keeps key out of lookups and listings, until unhide, while n,
// unlinked but open, still reads its object.
func (f *FS) hide(key string, n *File) {
	f.hiddenMu.Lock()
	f.hidden[key] = n
	f.hiddenMu.Unlock()
}

// unhide shows key again: a new file took the name.
func (f *FS) unhide(key string) {
	f.hiddenMu.Lock()
	delete(f.hidden, key)
	f.hiddenMu.Unlock()
}

// unhideBy shows key again if n hides it.
func (f *FS) unhideBy(key string, n *File) {
	f.hiddenMu.Lock()
	if f.hidden[key] == n {
		delete(f.hidden, key)
	}
	f.hiddenMu.Unlock()
}

// hiddenByOpenFile reports whether key is hidden for an open file that
// was unlinked or renamed away.
func (f *FS) hiddenByOpenFile(key string) bool {
	f.hiddenMu.Lock()
	defer f.hiddenMu.Unlock()
	return f.hidden[key] != nil
}

// isHidden reports whether listings skip key: hidden for an open file, or
// its delete pending (deferred.go).
func (f *FS) isHidden(key string) bool {
	f.hiddenMu.Lock()
	defer f.hiddenMu.Unlock()
	return f.hidden[key] != nil || f.deleting[key] != nil
}

// stat resolves the name at key: from the cache, or with HEAD key and LIST
// key/ in parallel, a directory winning over an object of the same name.
func (f *FS) stat(ctx context.Context, key string) (objMeta, syscall.Errno) {
	if f.hiddenByOpenFile(key) {
		return objMeta{}, syscall.ENOENT
	}
	if !f.stats.known(key) {
		f.startLazy(key)
	}
	e, owner := f.stats.begin(key)
	if !owner {
		return e.wait(ctx)
	}
	// Others may wait on this answer: one caller giving up must not fail it.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	// A renamed file's old name is answered once its delete is done
	// (deferred.go): a directory made under it meanwhile is found, the
	// object going away is not.
	err := f.awaitDelete(rctx, key, false)
	var m objMeta
	var found bool
	if err == nil {
		m, found, err = f.resolve(rctx, key)
	}
	cancel()
	switch {
	case err != nil:
		f.stats.fail(key, e)
		return objMeta{}, f.errno("lookup", key, err)
	case !found:
		f.stats.finish(key, e, objMeta{}, false, f.opt.NegativeTTL)
		return objMeta{}, syscall.ENOENT
	default:
		f.stats.finish(key, e, m, true, f.opt.StatTTL)
		return m, 0
	}
}

func (f *FS) resolve(ctx context.Context, key string) (objMeta, bool, error) {
	var (
		obj     *transport.ObjectInfo
		isDir   bool
		dirTime time.Time
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		o, err := f.bucket.Head(gctx, &transport.HeadInput{Key: key})
		if err != nil {
			if errors.Is(err, transport.ErrNotFound) {
				return nil
			}
			return err
		}
		obj = o
		return nil
	})
	g.Go(func() error {
		out, err := f.bucket.List(gctx, &transport.ListInput{Prefix: key + "/", Delimiter: "/", MaxKeys: 1})
		if err != nil {
			return err
		}
		if len(out.Objects) > 0 || len(out.CommonPrefixes) > 0 {
			isDir = true
			for _, o := range out.Objects {
				if o.Key == key+"/" {
					dirTime = o.LastModified
				}
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return objMeta{}, false, err
	}
	if isDir {
		if obj != nil {
			f.warnOnce(key, "an object and a directory share this name; the directory is shown")
		}
		return f.dirMeta(dirTime), true, nil
	}
	if obj == nil {
		return objMeta{}, false, nil
	}
	if strings.HasSuffix(obj.Key, "/") {
		return f.dirMeta(obj.LastModified), true, nil
	}
	return f.metaFromObject(obj), true, nil
}

// headInto fills a listing's cache entry with a HEAD.
// startLazy sends the HEADs of the listing key waits in, if any (key's
// first), so that a stat of key waits for its HEAD alone.
func (f *FS) startLazy(key string) {
	f.startHeads(f.lazy.take(key))
}

func (f *FS) headInto(ctx context.Context, j headJob) {
	key, e, listed := j.key, j.e, j.listed
	_ = f.awaitDelete(ctx, key, false) // (as stat does; ctx ends with the mount)
	o, err := f.bucket.Head(ctx, &transport.HeadInput{Key: key})
	switch {
	case err == nil:
		f.stats.finish(key, e, f.metaFromObject(o), true, f.opt.StatTTL)
	case errors.Is(err, transport.ErrNotFound):
		// Deleted between the listing and the HEAD.
		f.stats.finish(key, e, objMeta{}, false, f.opt.NegativeTTL)
	default:
		// Keep the listing's attributes rather than failing the entry.
		f.log.Debug("HEAD while listing failed; using the listing's attributes", "key", key, "err", err)
		f.stats.finish(key, e, listed, true, f.opt.NegativeTTL)
	}
}

// errno maps a bucket error to the errno the kernel gets, once, here.
func (f *FS) errno(op, key string, err error) syscall.Errno {
	var en syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &en) && !networkErrno(en):
		return en
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, transport.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, transport.ErrAccessDenied), errors.Is(err, transport.ErrExpiredCredentials):
		en = syscall.EACCES
	case errors.Is(err, transport.ErrPreconditionFailed):
		en = syscall.ESTALE
	case errors.Is(err, transport.ErrTooLarge):
		en = syscall.EFBIG
	case errors.Is(err, syscall.ENOSPC):
		en = syscall.ENOSPC
	case errors.Is(err, context.DeadlineExceeded):
		en = syscall.ETIMEDOUT
	default:
		en = syscall.EIO
	}
	f.log.Warn(op+" failed", "key", key, "errno", en.Error(), "err", err)
	return en
}

// networkErrno reports errnos of a connection to the bucket, which the
// kernel gets as EIO rather than as if the file itself had them.
func networkErrno(en syscall.Errno) bool {
	switch en {
	case syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN, syscall.ETIMEDOUT:
		return true
	}
	return false
}

// uninterrupted is the context a FUSE operation runs its bucket calls with.
// The kernel interrupts a request whenever the calling thread gets a signal
// (Go programs get SIGURG many times a second); giving up then would turn
// a close into EINTR with the upload abandoned, or a stat into EINTR that
// most programs do not retry. So operations finish, bounded by the request
// timeouts and retries, and a killed process simply never sees the answer.
func uninterrupted(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }
