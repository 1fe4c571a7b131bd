// Command fuseceiling is the FUSE ceiling of the benchmark: a go-fuse file
// system that serves files from memory with cosmount's mount options, so
// that reading it costs nothing but FUSE and copying bytes already in
// memory. Files created in it accept writes and discard them (only the size
// is kept), which measures the FUSE write path alone.
//
//	fuseceiling [-file PATH=SIZE]... MOUNTPOINT
//
// It stays in the foreground and unmounts on SIGINT/SIGTERM.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	cfs "cosmount/fs"
	"cosmount/internal/units"
)

type fileFlags []string

func (f *fileFlags) String() string     { return strings.Join(*f, ",") }
func (f *fileFlags) Set(s string) error { *f = append(*f, s); return nil }

func main() {
	var files fileFlags
	flag.Var(&files, "file", "PATH=SIZE of a file to serve (sizes like 1G, 256M); repeatable")
	flag.Parse()
	if flag.NArg() != 1 {
		log.Fatal("usage: fuseceiling [-file PATH=SIZE]... MOUNTPOINT")
	}
	mnt := flag.Arg(0)

	specs := map[string]int64{}
	var biggest int64
	for _, f := range files {
		p, s, ok := strings.Cut(f, "=")
		n, err := units.ParseSize(s)
		if !ok || err != nil || p == "" {
			log.Fatalf("fuseceiling: bad -file %q", f)
		}
		specs[strings.Trim(p, "/")] = n
		biggest = max(biggest, n)
	}
	// One random buffer backs every file: a file is a prefix of it.
	data := make([]byte, biggest)
	if _, err := rand.Read(data); err != nil {
		log.Fatal(err)
	}

	root := &dir{}
	ttl := time.Minute
	opts := &gofs.Options{
		EntryTimeout: &ttl,
		AttrTimeout:  &ttl,
		OnAdd: func(ctx context.Context) {
			for p, n := range specs {
				parent := &root.Inode
				elems := strings.Split(p, "/")
				for _, d := range elems[:len(elems)-1] {
					child := parent.GetChild(d)
					if child == nil {
						child = parent.NewPersistentInode(ctx, &dir{}, gofs.StableAttr{Mode: syscall.S_IFDIR})
						parent.AddChild(d, child, false)
					}
					parent = child
				}
				f := &file{data: data[:n], size: n}
				parent.AddChild(path.Base(p), parent.NewPersistentInode(ctx, f, gofs.StableAttr{}), false)
			}
		},
		// The mount options cosmount uses (fs.(*FS).MountOptions).
		MountOptions: fuse.MountOptions{
			MaxWrite:      1 << 20,
			MaxReadAhead:  1 << 20,
			MaxBackground: 64,
			DisableSplice: true,
			// Asynchronous direct I/O, as cosmount.
			ExtraCapabilities: fuse.CAP_ASYNC_DIO,
			DirectMount:       os.Geteuid() == 0,
			FsName:            "fuseceiling",
			Name:              "fuseceiling",
		},
	}
	server, err := gofs.Mount(mnt, root, opts)
	if err != nil {
		log.Fatalf("fuseceiling: mount: %v", err)
	}
	if err := server.WaitMount(); err != nil {
		log.Fatalf("fuseceiling: mount: %v", err)
	}
	raiseReadahead(mnt)
	log.Printf("fuseceiling: %d files mounted at %s", len(specs), mnt)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		_ = server.Unmount()
	}()
	server.Wait()
}

// raiseReadahead does what cmd/cosmount does: a 16 MiB kernel readahead on
// the mount's bdi (root only).
func raiseReadahead(mnt string) {
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte("16384"), 0o644); err != nil {
		log.Printf("fuseceiling: readahead left at its default: %v", err)
	}
}

// dir is an in-memory directory in which files and directories can be made.
type dir struct{ gofs.Inode }

var (
	_ = (gofs.NodeCreater)((*dir)(nil))
	_ = (gofs.NodeMkdirer)((*dir)(nil))
	_ = (gofs.NodeUnlinker)((*dir)(nil))
	_ = (gofs.NodeRmdirer)((*dir)(nil))
	_ = (gofs.NodeRenamer)((*dir)(nil))
)

func (d *dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	f := &file{}
	ch := d.NewPersistentInode(ctx, f, gofs.StableAttr{})
	d.AddChild(name, ch, true)
	f.fill(&out.Attr)
	return ch, nil, cfs.WriteOnlyFlags(flags), 0 // as cosmount
}

func (d *dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ch := d.NewPersistentInode(ctx, &dir{}, gofs.StableAttr{Mode: syscall.S_IFDIR})
	d.AddChild(name, ch, true)
	out.Mode = syscall.S_IFDIR | 0o755
	return ch, 0
}

func (d *dir) Unlink(ctx context.Context, name string) syscall.Errno { return 0 }
func (d *dir) Rmdir(ctx context.Context, name string) syscall.Errno  { return 0 }
func (d *dir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return 0
}

// file serves data (read-only files) or swallows writes (created files).
type file struct {
	gofs.Inode
	data []byte

	mu   sync.Mutex
	size int64
}

var (
	_ = (gofs.NodeOpener)((*file)(nil))
	_ = (gofs.NodeReader)((*file)(nil))
	_ = (gofs.NodeWriter)((*file)(nil))
	_ = (gofs.NodeGetattrer)((*file)(nil))
	_ = (gofs.NodeSetattrer)((*file)(nil))
	_ = (gofs.NodeFsyncer)((*file)(nil))
	_ = (gofs.NodeFlusher)((*file)(nil))
)

func (f *file) fill(a *fuse.Attr) {
	f.mu.Lock()
	a.Size = uint64(f.size)
	f.mu.Unlock()
	a.Mode = syscall.S_IFREG | 0o644
	a.Blocks = (a.Size + 511) / 512
}

func (f *file) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 && f.data == nil {
		f.mu.Lock()
		f.size = 0
		f.mu.Unlock()
	}
	return nil, fuse.FOPEN_KEEP_CACHE | cfs.WriteOnlyFlags(flags), 0
}

func (f *file) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(f.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(f.data)))
	return fuse.ReadResultData(f.data[off:end]), 0
}

func (f *file) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if f.data != nil {
		return 0, syscall.EPERM
	}
	f.mu.Lock()
	f.size = max(f.size, off+int64(len(data)))
	f.mu.Unlock()
	return uint32(len(data)), 0
}

func (f *file) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.fill(&out.Attr)
	return 0
}

func (f *file) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok && f.data == nil {
		f.mu.Lock()
		f.size = int64(sz)
		f.mu.Unlock()
	}
	f.fill(&out.Attr)
	return 0
}

func (f *file) Fsync(ctx context.Context, fh gofs.FileHandle, flags uint32) syscall.Errno { return 0 }
func (f *file) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno               { return 0 }
