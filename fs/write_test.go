package fs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/posixtest"
	"golang.org/x/sys/unix"

	cfs "cosmount/fs"
	"cosmount/internal/testrig"
	"cosmount/transport"
)

// object reads key straight from the bucket.
func (r *rig) object(key string) ([]byte, *transport.ObjectInfo) {
	r.t.Helper()
	out, err := r.client.Get(context.Background(), &transport.GetInput{Key: key, Length: -1})
	if err != nil {
		r.t.Fatalf("get %q: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := r.client.Head(context.Background(), &transport.HeadInput{Key: key})
	if err != nil {
		r.t.Fatal(err)
	}
	return b, info
}

// noUploadsLeft checks that no multipart upload stays in the bucket. An
// upload nothing needs any more is aborted in the background, so it is given
// a few seconds to go.
func (r *rig) noUploadsLeft() {
	r.t.Helper()
	eventually(r.t, 10*time.Second, func() error {
		ups, err := r.client.ListMultipartUploads(context.Background(), "")
		if err != nil {
			return err
		}
		if len(ups) != 0 {
			return fmt.Errorf("%d multipart uploads left in the bucket: %+v", len(ups), ups)
		}
		return nil
	})
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestWriteNewFilesOfEverySize(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{})
	for i, n := range []int{0, 1, 4096, 1 << 20, 16 << 20, 16<<20 + 1, 41<<20 + 7} {
		data := randomBytes(n, int64(i))
		name := filepath.Join(r.mnt, "f"+strings.Repeat("x", i))
		if err := os.WriteFile(name, data, 0o640); err != nil {
			t.Fatalf("write %d bytes: %v", n, err)
		}
		got, info := r.object("f" + strings.Repeat("x", i))
		if !bytes.Equal(got, data) {
			t.Fatalf("%d bytes written, the object has %d (or other bytes)", n, len(got))
		}
		if info.Metadata["mode"] != "33184" {
			t.Errorf("object mode metadata %q, want 33184 (0100640)", info.Metadata["mode"])
		}
		back, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("read back %d bytes: %v", len(back), err)
		}
	}
	r.noUploadsLeft()
}

func TestOverwriteAppendTruncate(t *testing.T) {
	r := newBucket(t)
	orig := randomBytes(40<<20+5, 9)
	r.put("obj", orig, nil)
	r.mount(cfs.Options{})
	p := filepath.Join(r.mnt, "obj")
	want := append([]byte(nil), orig...)

	// A write in the middle of an existing object: the untouched parts are
	// copied by the server, only the touched part is read and sent again.
	before := r.client.Stats()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	patch := []byte("patched in the middle")
	if _, err := f.WriteAt(patch, 20<<20+3); err != nil {
		t.Fatal(err)
	}
	copy(want[20<<20+3:], patch)
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	after := r.client.Stats()
	if got, _ := r.object("obj"); sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("after a write in the middle: object differs (%d bytes)", len(got))
	}
	copies, parts, gets := after["UploadPartCopy"]-before["UploadPartCopy"], after["UploadPart"]-before["UploadPart"], after["GET"]-before["GET"]
	t.Logf("UploadPartCopy %d, UploadPart %d, GET %d", copies, parts, gets)
	if copies != 5 || parts != 1 || gets > 8 {
		t.Errorf("a 21-byte write into a 40 MiB object: %d part copies, %d parts sent, %d GETs; want 5 copies (6 parts of 8 MiB, the last 5 bytes), 1 part, at most the 8 blocks of that part", copies, parts, gets)
	}

	// Append.
	f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tail"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want = append(want, "tail"...)
	if got, _ := r.object("obj"); !bytes.Equal(got, want) {
		t.Fatalf("after append: object has %d bytes, want %d", len(got), len(want))
	}

	// Shrink, then grow.
	if err := os.Truncate(p, 1000); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.object("obj"); !bytes.Equal(got, want[:1000]) {
		t.Fatalf("after truncate to 1000: %d bytes", len(got))
	}
	if err := os.Truncate(p, 3000); err != nil {
		t.Fatal(err)
	}
	want = append(want[:1000:1000], make([]byte, 2000)...)
	if got, _ := r.object("obj"); !bytes.Equal(got, want) {
		t.Fatalf("after growing to 3000: %d bytes", len(got))
	}
	if st, err := os.Stat(p); err != nil || st.Size() != 3000 {
		t.Fatalf("stat after truncate: %v %v", st, err)
	}
	r.noUploadsLeft()
}

// A file cut short and then read through its local copy fetches the bytes
// it still has from the object it started from; the blocks go into the
// read cache whole, as blocks of that object, which other readers of the
// object share (a block cached at its cut length would hand them a hole).
func TestTruncatedCopyCachesWholeBlocksOfItsBase(t *testing.T) {
	r := newBucket(t)
	data := make([]byte, 1<<20)
	fillPattern(data, 0)
	r.put("a", data, nil)
	r.mount(cfs.Options{BlockSize: 256 << 10})
	info, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "a"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(r.mnt, "a"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	const cut = 100 << 10
	if err := f.Truncate(cut); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, cut)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[:cut]) {
		t.Fatal("the truncated file reads other bytes than the object's first ones")
	}
	if n := r.fsys.CachedBlockLen("a", info.ETag, 0); n != 256<<10 {
		t.Errorf("block 0 of the object is cached with %d bytes, want 256 KiB (-1: not cached)", n)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if obj, _ := r.object("a"); !bytes.Equal(obj, data[:cut]) {
		t.Errorf("object after close: %d bytes, want the first %d of the old one", len(obj), cut)
	}
}

func TestNamespaceOperations(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(m("d"), 0o750))
	if _, info := r.object("d/"); info.Size != 0 {
		t.Errorf("marker object has %d bytes", info.Size)
	}
	must(os.WriteFile(m("d/a"), []byte("A"), 0o644))
	if err := os.Remove(m("d")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir of a non-empty directory: %v, want ENOTEMPTY", err)
	}
	must(os.Rename(m("d/a"), m("d/b")))
	if b, err := os.ReadFile(m("d/b")); err != nil || string(b) != "A" {
		t.Errorf("after rename: %q %v", b, err)
	}
	if _, err := os.Stat(m("d/a")); !os.IsNotExist(err) {
		t.Errorf("old name after rename: %v", err)
	}
	must(os.WriteFile(m("d/c"), []byte("C"), 0o644))
	must(os.Rename(m("d/c"), m("d/b"))) // over an existing file
	if b, _ := os.ReadFile(m("d/b")); string(b) != "C" {
		t.Errorf("rename over an existing file: %q", b)
	}
	must(os.MkdirAll(m("d/sub/deeper"), 0o755))
	must(os.WriteFile(m("d/sub/deeper/x"), []byte("X"), 0o644))
	must(os.Rename(m("d"), m("e")))
	if b, err := os.ReadFile(m("e/sub/deeper/x")); err != nil || string(b) != "X" {
		t.Errorf("after directory rename: %q %v", b, err)
	}
	if got, _ := r.object("e/sub/deeper/x"); string(got) != "X" {
		t.Errorf("object after directory rename: %q", got)
	}
	if out, _ := r.client.List(context.Background(), &transport.ListInput{Prefix: "d/"}); len(out.Objects) != 0 {
		t.Errorf("keys left under the old directory: %d", len(out.Objects))
	}
	must(os.Symlink("sub/deeper/x", m("e/link")))
	if target, err := os.Readlink(m("e/link")); err != nil || target != "sub/deeper/x" {
		t.Errorf("readlink: %q %v", target, err)
	}
	if b, err := os.ReadFile(m("e/link")); err != nil || string(b) != "X" {
		t.Errorf("read through symlink: %q %v", b, err)
	}
	if body, info := r.object("e/link"); string(body) != "sub/deeper/x" || info.Metadata["mode"] != "41471" {
		t.Errorf("symlink object: body %q mode %q (want cosfs/s3fs form 41471)", body, info.Metadata["mode"])
	}
	if err := os.Link(m("e/b"), m("e/hard")); !errors.Is(err, syscall.EPERM) {
		t.Errorf("link: %v, want EPERM", err)
	}
	must(os.Chmod(m("e/b"), 0o600))
	mt := time.Unix(1500000000, 123456789)
	must(os.Chtimes(m("e/b"), mt, mt))
	if st, err := os.Stat(m("e/b")); err != nil || st.Mode().Perm() != 0o600 || !st.ModTime().Equal(mt) {
		t.Errorf("chmod/utimens not shown by the mount at once: %v %v", st, err)
	}
	eventually(t, 10*time.Second, func() error {
		if _, info := r.object("e/b"); info.Metadata["mode"] != "33152" || info.Metadata["mtime"] != "1500000000" {
			return fmt.Errorf("chmod/utimens not persisted: %v", info.Metadata)
		}
		return nil
	})
	must(os.Remove(m("e/b")))
	if _, err := os.Stat(m("e/b")); !os.IsNotExist(err) {
		t.Errorf("after unlink: %v", err)
	}
	must(os.Remove(m("e/sub/deeper/x")))
	must(os.Remove(m("e/sub/deeper")))
	r.noUploadsLeft()
}

func TestUnlinkedFileStaysReadableThroughItsHandle(t *testing.T) {
	r := newBucket(t)
	r.put("f", []byte("still here"), nil)
	r.mount(cfs.Options{})
	p := filepath.Join(r.mnt, "f")
	fd, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("name still there after unlink: %v", err)
	}
	b, err := io.ReadAll(fd)
	if err != nil || string(b) != "still here" {
		t.Errorf("read through the handle after unlink: %q %v", b, err)
	}
	fd.Close()
	eventually(t, 10*time.Second, func() error {
		_, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "f"})
		if !errors.Is(err, transport.ErrNotFound) {
			return errors.New("object not deleted after the last close")
		}
		return nil
	})
}

// failingBucket fails uploads while fail is set.
type failingBucket struct {
	*countingBucket
	fail    atomic.Bool
	refused atomic.Int64
}

func (b *failingBucket) Put(ctx context.Context, in *transport.PutInput) (*transport.PutOutput, error) {
	if b.fail.Load() {
		b.refused.Add(1)
		return nil, &transport.Error{Op: "PUT", Key: in.Key, StatusCode: 403, Code: "AccessDenied", Kind: transport.ErrAccessDenied}
	}
	return b.countingBucket.Put(ctx, in)
}

// newFailingBucket is a rig whose mount's PUTs fail while fb.fail is set.
func newFailingBucket(t *testing.T) (*rig, *failingBucket) {
	r := newBucket(t)
	fb := &failingBucket{countingBucket: &countingBucket{Bucket: r.client}}
	r.counter = fb.countingBucket
	r.bucketOverride = fb
	return r, fb
}

// writeRefusedPut writes data to name in the mount with PUTs refused, and
// checks that close reports it.
func (r *rig) writeRefusedPut(fb *failingBucket, name string, data []byte) {
	r.t.Helper()
	fb.fail.Store(true)
	if err := os.WriteFile(filepath.Join(r.mnt, name), data, 0o644); !errors.Is(err, syscall.EACCES) {
		r.t.Fatalf("write with a refused upload: %v, want EACCES", err)
	}
}

func TestFailedUploadReportedFromCloseAndKept(t *testing.T) {
	r, fb := newFailingBucket(t)
	r.mount(cfs.Options{})
	fb.fail.Store(true)
	p := filepath.Join(r.mnt, "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("precious"))
	err = f.Close()
	if !errors.Is(err, syscall.EACCES) {
		t.Fatalf("close with a refused upload: %v, want EACCES", err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "precious" {
		t.Fatalf("data after the failed upload: %q %v", b, err)
	}
	fb.fail.Store(false)
	f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close once uploads work again: %v", err)
	}
	if got, _ := r.object("f"); string(got) != "precious" {
		t.Fatalf("object after the retried upload: %q", got)
	}
}

// journalEntries is the entries in a cache dir's journal.
func journalEntries(t *testing.T, cacheDir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(cacheDir, "journal", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// A file whose upload still fails when the mount ends is tried once more
// by the unmount, then journaled: the next mount on the same cache dir
// uploads it before it is ready, and the cache keeps nothing of it after.
func TestFailedUploadJournaledAtUnmountAndUploadedByTheNextMount(t *testing.T) {
	r, fb := newFailingBucket(t)
	cacheDir := t.TempDir()
	r.mount(cfs.Options{CacheDir: cacheDir})
	r.writeRefusedPut(fb, "f", []byte("precious"))
	refused := fb.refused.Load()
	err := r.unmount()
	if err == nil || !strings.Contains(err.Error(), "next mount") {
		t.Fatalf("unmount with a file not uploaded: %v, want an error naming the next mount", err)
	}
	if fb.refused.Load() == refused {
		t.Error("the unmount did not try the upload again")
	}
	if n := len(journalEntries(t, cacheDir)); n != 1 {
		t.Fatalf("%d journal entries after the unmount, want 1", n)
	}
	if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "f"}); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("object before the next mount: %v, want none", err)
	}

	fb.fail.Store(false)
	r.mount(cfs.Options{CacheDir: cacheDir})
	if got, info := r.object("f"); string(got) != "precious" || info.Metadata["cosmount-wb"] == "" {
		t.Fatalf("object after the next mount: %q %v, want \"precious\" uploaded from the journal", got, info)
	}
	if n := len(journalEntries(t, cacheDir)); n != 0 {
		t.Errorf("%d journal entries left after the upload", n)
	}
	if wb, _ := filepath.Glob(filepath.Join(cacheDir, "wb-*")); len(wb) != 0 {
		t.Errorf("write-back files left in the cache: %v", wb)
	}
	if b, err := os.ReadFile(filepath.Join(r.mnt, "f")); err != nil || string(b) != "precious" {
		t.Errorf("file through the new mount: %q %v", b, err)
	}
}

// With --write-back-delay, an upload that keeps failing does not hold the
// unmount: after a few tries the drain leaves it to its journal entry and
// says so, and the next mount on the cache dir uploads it.
func TestWriteBackDrainLeavesAFailingUploadToTheJournal(t *testing.T) {
	r, fb := newFailingBucket(t)
	cacheDir := t.TempDir()
	r.mount(cfs.Options{CacheDir: cacheDir, WriteBackDelay: time.Hour})
	fb.fail.Store(true)
	if err := os.WriteFile(filepath.Join(r.mnt, "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.unmount() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("unmount with an upload that keeps failing reported nothing")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("unmount still waiting after 30 s for an upload that keeps failing")
	}
	fb.fail.Store(false)
	r.mount(cfs.Options{CacheDir: cacheDir, WriteBackDelay: time.Hour})
	if got, _ := r.object("f"); string(got) != "kept" {
		t.Errorf("f after the next mount: %q", got)
	}
}

// A cache dir holding uploads journaled for one bucket is refused to a
// mount of another (whose keys these are not); the bucket they belong to
// uploads them.
func TestCacheDirWithAnotherBucketsJournalIsRefused(t *testing.T) {
	r, fb := newFailingBucket(t)
	cacheDir := t.TempDir()
	r.mount(cfs.Options{CacheDir: cacheDir, Origin: "server bucket-a:"})
	r.writeRefusedPut(fb, "f", []byte("for a"))
	if err := r.unmount(); err == nil {
		t.Fatal("unmount with a file not uploaded reported nothing")
	}
	fb.fail.Store(false)
	up := transport.NewUploader(r.client, transport.UploaderOptions{MinPartSize: 5 << 20})
	cp := transport.NewCopier(r.client, transport.CopierOptions{MinPartSize: 5 << 20})
	_, err := cfs.New(context.Background(), r.client, up, cp, cfs.Options{CacheDir: cacheDir, Origin: "server bucket-b:"})
	if err == nil || !strings.Contains(err.Error(), "bucket-a") {
		t.Fatalf("mount of another bucket on the cache dir: %v, want it refused", err)
	}
	r.mount(cfs.Options{CacheDir: cacheDir, Origin: "server bucket-a:"})
	if got, _ := r.object("f"); string(got) != "for a" {
		t.Errorf("f after the mount of its bucket: %q", got)
	}
}

// Two journal entries for one cache file (the older one's removal lost in
// a crash): the next mount replays the newer one only.
func TestOlderJournalEntryOfTheSameCacheFileIsDropped(t *testing.T) {
	r, fb := newFailingBucket(t)
	cacheDir := t.TempDir()
	r.mount(cfs.Options{CacheDir: cacheDir})
	r.writeRefusedPut(fb, "f", []byte("newer data"))
	if err := r.unmount(); err == nil {
		t.Fatal("unmount with a file not uploaded reported nothing")
	}
	names := journalEntries(t, cacheDir)
	if len(names) != 1 {
		t.Fatalf("journal entries: %v, want one", names)
	}
	b, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]any
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	e["id"], e["size"], e["written"] = "0123456789abcdef01234567", 5, time.Now().Add(-time.Hour)
	if b, err = json.Marshal(e); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cacheDir, "journal", "0123456789abcdef01234567.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	fb.fail.Store(false)
	r.mount(cfs.Options{CacheDir: cacheDir})
	if got, _ := r.object("f"); string(got) != "newer data" {
		t.Errorf("f after the next mount: %q, want the newer entry's", got)
	}
	if names := journalEntries(t, cacheDir); len(names) != 0 {
		t.Errorf("journal entries left: %v", names)
	}
}

// A pending file renamed over an object (rsync's temporary file, with
// --write-back-delay) journals what the rename found under the new name:
// a replay after a crash then leaves alone an object written there by
// someone else since (see TestJournaledFileDoesNotOverwriteANewerObject).
func TestWriteBackRenameJournalsWhatTheTargetHeld(t *testing.T) {
	r := newBucket(t)
	r.put("a", []byte("old a"), nil)
	_, info := r.object("a")
	r.mount(cfs.Options{WriteBackDelay: time.Hour})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	for _, name := range []string{".a.tmp", ".b.tmp"} {
		if err := os.WriteFile(m(name), []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(m(".a.tmp"), m("a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m(".b.tmp"), m("b")); err != nil {
		t.Fatal(err)
	}
	expect := map[string]any{}
	for _, p := range journalEntries(t, r.cacheDir) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Key    string  `json:"key"`
			Expect *string `json:"expect"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		expect[e.Key] = nil
		if e.Expect != nil {
			expect[e.Key] = *e.Expect
		}
	}
	if want := map[string]any{"a": info.ETag, "b": ""}; !reflect.DeepEqual(expect, want) {
		t.Errorf("journal entries' expected objects by key: %v, want %v", expect, want)
	}
}

// A journaled file does not replace an object someone else wrote after it
// was journaled: the next mount leaves that object alone and keeps the
// entry and the data.
func TestJournaledFileDoesNotOverwriteANewerObject(t *testing.T) {
	r, fb := newFailingBucket(t)
	cacheDir := t.TempDir()
	r.mount(cfs.Options{CacheDir: cacheDir})
	r.writeRefusedPut(fb, "f", []byte("older"))
	if err := r.unmount(); err == nil {
		t.Fatal("unmount with a file not uploaded reported nothing")
	}
	r.put("f", []byte("newer"), nil) // another client, meanwhile
	fb.fail.Store(false)
	r.mount(cfs.Options{CacheDir: cacheDir})
	if got, _ := r.object("f"); string(got) != "newer" {
		t.Fatalf("object after the next mount: %q, want the newer one kept", got)
	}
	if n := len(journalEntries(t, cacheDir)); n != 1 {
		t.Errorf("%d journal entries after the refused replay, want 1", n)
	}
	if wb, _ := filepath.Glob(filepath.Join(cacheDir, "wb-*")); len(wb) != 1 {
		t.Errorf("write-back files after the refused replay: %v, want the journaled one", wb)
	}
}

// A file whose upload failed at close but works when the mount ends goes
// up then, and leaves no journal entry.
func TestFailedUploadRetriedAtUnmount(t *testing.T) {
	r, fb := newFailingBucket(t)
	r.mount(cfs.Options{})
	r.writeRefusedPut(fb, "f", []byte("late"))
	fb.fail.Store(false)
	if err := r.unmount(); err != nil {
		t.Fatalf("unmount once uploads work: %v", err)
	}
	if got, _ := r.object("f"); string(got) != "late" {
		t.Fatalf("object after the unmount: %q", got)
	}
	if n := len(journalEntries(t, r.cacheDir)); n != 0 {
		t.Errorf("%d journal entries left after the upload", n)
	}
}

// The kernel may forget the inode of a closed file whose upload is still
// pending (here: --write-back-delay). The file keeps its name: a listing
// shows it, a lookup finds it with its data, a rename of its directory
// takes it along (with the object its unchanged bytes come from), and its
// upload goes to its key, not to the placeholder go-fuse gives a node out
// of the tree.
func TestForgottenFileWithAPendingUploadKeepsItsName(t *testing.T) {
	r := newBucket(t)
	r.put("d/g", []byte("old-"), nil)
	r.mount(cfs.Options{WriteBackDelay: time.Hour})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	if err := os.WriteFile(m("d/f"), []byte("pending"), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := os.OpenFile(m("d/g"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	forget := func(dir string) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			for _, name := range []string{"f", "g"} {
				if errno := r.fsys.ForgetEntry(dir, name); errno != 0 && errno != syscall.ENOENT {
					return errno
				}
			}
			if n := r.fsys.Detached(); n != 2 {
				return fmt.Errorf("%d forgotten files noted, want 2", n)
			}
			return nil
		})
	}
	forget("d")
	if names, err := os.ReadDir(m("d")); err != nil || len(names) != 2 || names[0].Name() != "f" || names[1].Name() != "g" {
		t.Fatalf("listing of d with f and g forgotten: %v %v", names, err)
	}
	if b, err := os.ReadFile(m("d/f")); err != nil || string(b) != "pending" {
		t.Fatalf("d/f after it was forgotten: %q %v", b, err)
	}
	forget("d")
	if err := os.Rename(m("d"), m("e")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(m("e/g")); err != nil || string(b) != "old-new" {
		t.Fatalf("e/g after the rename: %q %v", b, err)
	}
	forget("e")
	if err := r.unmount(); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	if got, _ := r.object("e/f"); string(got) != "pending" {
		t.Errorf("e/f in the bucket: %q", got)
	}
	if got, _ := r.object("e/g"); string(got) != "old-new" {
		t.Errorf("e/g in the bucket: %q", got)
	}
	out, err := r.client.List(context.Background(), &transport.ListInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Objects {
		if !strings.HasPrefix(o.Key, "e/") {
			t.Errorf("object %q, want only e/f and e/g", o.Key)
		}
	}
}

// A directory that holds a file not uploaded yet is not empty, whether
// the kernel still has the file or forgot it: rmdir and a rename over it
// are refused.
func TestDirectoryWithAPendingFileIsNotEmpty(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{WriteBackDelay: time.Hour})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	for _, d := range []string{"a", "b"} {
		if err := os.Mkdir(m(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(m("b/f"), []byte("pending"), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		// (rename(2) itself: os.Rename refuses any directory target.)
		if err := syscall.Rename(m("a"), m("b")); !errors.Is(err, syscall.ENOTEMPTY) {
			t.Errorf("rename over b %s: %v, want ENOTEMPTY", when, err)
		}
		if err := os.Remove(m("b")); !errors.Is(err, syscall.ENOTEMPTY) {
			t.Errorf("rmdir b %s: %v, want ENOTEMPTY", when, err)
		}
	}
	check("with b/f pending")
	eventually(t, 10*time.Second, func() error {
		if errno := r.fsys.ForgetEntry("b", "f"); errno != 0 && errno != syscall.ENOENT {
			return errno
		}
		if n := r.fsys.Detached(); n != 1 {
			return fmt.Errorf("%d forgotten files noted, want 1", n)
		}
		return nil
	})
	check("with b/f forgotten")
}

func TestCpAndRsyncPreserveModeAndMtime(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Fatal("rsync is needed (scripts/test.sh installs it)")
	}
	r := newBucket(t)
	r.mount(cfs.Options{})
	src := t.TempDir()
	for i, name := range []string{"a.txt", "dir/b.bin", "dir/sub/c", "dir/sub/d"} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, randomBytes(1000*(i+1), int64(i)), 0o640)
		os.Chtimes(p, time.Unix(1400000000+int64(i), 987654321), time.Unix(1400000000+int64(i), 987654321))
	}
	os.Chmod(filepath.Join(src, "dir/sub/c"), 0o755)
	if out, err := exec.Command("cp", "-a", src, filepath.Join(r.mnt, "cp")).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	for _, name := range []string{"a.txt", "dir/b.bin", "dir/sub/c"} {
		s, _ := os.Stat(filepath.Join(src, name))
		d, err := os.Stat(filepath.Join(r.mnt, "cp", name))
		if err != nil {
			t.Fatal(err)
		}
		if s.Mode() != d.Mode() || !s.ModTime().Equal(d.ModTime()) {
			t.Errorf("cp -a %s: mode %v mtime %v, source %v %v", name, d.Mode(), d.ModTime(), s.Mode(), s.ModTime())
		}
	}
	dst := filepath.Join(r.mnt, "rs")
	rsync := func() string {
		out, err := exec.Command("rsync", "-a", "--stats", src+"/", dst+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("rsync -a: %v %s", err, out)
		}
		return string(out)
	}
	if out := rsync(); !strings.Contains(out, "Number of regular files transferred: 4") {
		t.Fatalf("first rsync: %s", out)
	}
	if out := rsync(); !strings.Contains(out, "Number of regular files transferred: 0") {
		t.Errorf("second rsync of an unchanged tree transferred files:\n%s", out)
	}
	r.noUploadsLeft()
}

// A chmod, utimens or truncate answers with the file's attributes, inode
// number included: the kernel takes that number as the inode's. Files
// sharing one would be archived by tar, and copied by cp -a, as hard links
// of each other.
func TestSetattrKeepsInodeNumbers(t *testing.T) {
	r := newBucket(t)
	r.put("a", []byte("aaaa"), nil)
	r.put("b", []byte("bbbb"), nil)
	r.put("d/x", []byte("x"), nil)
	r.mount(cfs.Options{})
	p := func(n string) string { return filepath.Join(r.mnt, n) }
	if err := os.Chmod(p("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p("b"), time.Unix(1400000000, 0), time.Unix(1400000000, 0)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p("b"), 2); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p("d"), 0o700); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]string{}
	for _, n := range []string{"a", "b", "d"} {
		var st syscall.Stat_t
		if err := syscall.Stat(p(n), &st); err != nil {
			t.Fatal(err)
		}
		if other, ok := seen[st.Ino]; ok || st.Ino == 0 {
			t.Errorf("%s has inode number %d (as %q)", n, st.Ino, other)
		}
		seen[st.Ino] = n
	}
	out, err := exec.Command("sh", "-c", "tar -C "+r.mnt+" -cf - a b | tar -tvf -").CombinedOutput()
	if err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	if strings.Contains(string(out), "link to") {
		t.Errorf("tar took files for hard links:\n%s", out)
	}
}

func TestPosix(t *testing.T) {
	skip := map[string]string{
		"Link":                "hard links are refused (EPERM)",
		"LinkUnlinkRename":    "hard links are refused (EPERM)",
		"NlinkZero":           "needs hard links",
		"FcntlFlockLocksFile": "POSIX locks are not supported",
		"FcntlFlockSetLk":     "POSIX locks are not supported",
		"XAttrLarge":          "object metadata holds about 2 KiB of attributes; larger values get ENOSPC",
		"Fallocate":           "fallocate is not supported",
		"FallocateKeepSize":   "fallocate is not supported",
	}
	r := newBucket(t)
	r.mount(cfs.Options{StatTTL: time.Second, NegativeTTL: time.Second})
	for name, fn := range posixtest.All {
		t.Run(name, func(t *testing.T) {
			if why, ok := skip[name]; ok && why != "" {
				t.Skip(why)
			}
			dir := filepath.Join(r.mnt, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			fn(t, dir)
		})
	}
}

func TestFileLargerThanTheCache(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{CacheSize: 48 << 20})
	const size = 200 << 20
	f, err := os.Create(filepath.Join(r.mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	writePattern(t, f, size)
	// rsync --inplace and cp of a sparse file end with a truncate to the
	// size written: a no-op, even with parts gone from the cache.
	if err := f.Truncate(size); err != nil {
		t.Errorf("truncate to its own size: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	r.objectPattern("big", size)
	r.noUploadsLeft()
}

// A file larger than the cache written with O_RDWR|O_DIRECT in 4 MiB
// writes (a database's, fio's) streams as one written write-only does.
func TestFileLargerThanTheCacheWrittenWithODirect(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{CacheSize: 16 << 20})
	const size, bs = 48 << 20, 4 << 20
	fd, err := unix.Open(filepath.Join(r.mnt, "big"), unix.O_RDWR|unix.O_CREAT|unix.O_DIRECT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := unix.Mmap(-1, 0, bs, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS) // aligned
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	for off := int64(0); off < size; off += bs {
		fillPattern(buf, off)
		if _, err := unix.Pwrite(fd, buf, off); err != nil {
			unix.Close(fd)
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	if err := unix.Close(fd); err != nil {
		t.Fatalf("close: %v", err)
	}
	r.objectPattern("big", size)
}

// The uploaded parts of a file being streamed that stayed in the cache
// (it was less than half full then) leave it when another writer needs
// the space: here a file written out of order, which must fit whole.
func TestUploadedPartsLeaveTheCacheWhenAnotherWriterNeedsTheSpace(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{CacheSize: 32 << 20, ChunkSize: 5 << 20})
	a, err := os.Create(filepath.Join(r.mnt, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	writePattern(t, a, 12<<20) // two parts go up; the cache is under half full
	time.Sleep(time.Second)    // (their uploads end)
	b, err := os.Create(filepath.Join(r.mnt, "b"))
	if err != nil {
		t.Fatal(err)
	}
	const bSize = 24 << 20
	buf := make([]byte, 1<<20)
	for off := int64(bSize) - int64(len(buf)); off >= 0; off -= int64(len(buf)) { // backwards: no streaming
		fillPattern(buf, off)
		if _, err := b.WriteAt(buf, off); err != nil {
			b.Close()
			t.Fatalf("write of b at %d: %v", off, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close b: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("close a: %v", err)
	}
	r.objectPattern("a", 12<<20)
	r.objectPattern("b", bSize)
}

// A write the cache refuses (ENOSPC) changes nothing: the file keeps its
// size, and closes and uploads as it was.
func TestWriteRefusedForSpaceLeavesTheSizeAlone(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{CacheSize: 256 << 10})
	f, err := os.Create(filepath.Join(r.mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("start")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 1<<20), 10<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write of 1 MiB with a cache of 256 KiB: %v, want ENOSPC", err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != 5 {
		t.Errorf("size after the refused write: %v %v, want 5", st.Size(), err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got, _ := r.object("f"); string(got) != "start" {
		t.Errorf("f: %q", got)
	}
}

// A file larger than the cache, fsynced while it is written (a logger, a
// database's dump) or renamed meanwhile (logrotate's mv): once the upload
// that holds its streamed parts is complete, that object holds them, and
// the writer goes on writing (what it writes then stays in the cache until
// the next close, which uploads the whole file, the rest copied from that
// object on the server).
func TestFileLargerThanTheCacheWrittenOnAfterFsyncOrRename(t *testing.T) {
	for _, how := range []string{"fsync", "rename"} {
		t.Run(how, func(t *testing.T) {
			r := newBucket(t)
			r.put("big", []byte("an older version"), nil)
			r.mount(cfs.Options{CacheSize: 48 << 20, ChunkSize: 5 << 20})
			const half = 60 << 20
			p := filepath.Join(r.mnt, "big")
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			writePattern(t, f, half)
			key := "big"
			if how == "fsync" {
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
			} else {
				key = "big.1"
				if err := os.Rename(p, filepath.Join(r.mnt, key)); err != nil {
					t.Fatal(err)
				}
			}
			buf := make([]byte, 1<<20)
			const more = 12 << 20 // what the cache has room for next to the bytes that stayed in it
			for off := int64(half); off < half+more; off += int64(len(buf)) {
				fillPattern(buf, off)
				if _, err := f.Write(buf); err != nil {
					t.Fatalf("write at %d after the %s: %v", off, how, err)
				}
			}
			// Bytes that left the cache read back from that object.
			rf, err := os.Open(filepath.Join(r.mnt, key))
			if err != nil {
				t.Fatal(err)
			}
			got, want := make([]byte, 1<<20), make([]byte, 1<<20)
			for _, off := range []int64{0, half - 3<<19, half + more - 1<<20} {
				if _, err := rf.ReadAt(got, off); err != nil {
					t.Fatalf("read at %d: %v", off, err)
				}
				fillPattern(want, off)
				if !bytes.Equal(got, want) {
					t.Errorf("read at %d: other bytes than written", off)
				}
			}
			rf.Close()
			if err := f.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			r.objectPattern(key, half+more)
			r.noUploadsLeft()
		})
	}
}

// writePattern writes size bytes of fillPattern to f, 1 MiB at a time.
func writePattern(t *testing.T, f *os.File, size int64) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		fillPattern(buf, off)
		if _, err := f.Write(buf); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
	}
}

// objectPattern checks that key holds size bytes of fillPattern, read past
// the mount, and returns the object's attributes.
func (r *rig) objectPattern(key string, size int64) transport.ObjectInfo {
	r.t.Helper()
	out, err := r.client.Get(context.Background(), &transport.GetInput{Key: key, Length: -1})
	if err != nil {
		r.t.Fatal(err)
	}
	defer out.Body.Close()
	checkPattern(r.t, out.Body, size)
	return out.Info
}

// accessDenied is the server's 403 AccessDenied answer to req, which it
// consumes.
func accessDenied(req *http.Request) *http.Response {
	if req.Body != nil {
		req.Body.Close()
	}
	body := "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>refused by the test</Message></Error>"
	return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req}
}

// refusingCompletes answers CompleteMultipartUpload requests with 403
// AccessDenied while refuse is set, and passes everything else on.
type refusingCompletes struct {
	next    http.RoundTripper
	refuse  atomic.Bool
	refused atomic.Int64
}

func (rt *refusingCompletes) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	if req.Method == http.MethodPost && q.Has("uploadId") && rt.refuse.Load() {
		rt.refused.Add(1)
		return accessDenied(req), nil
	}
	return rt.next.RoundTrip(req)
}

// A file larger than the cache streams up and its uploaded parts leave the
// cache. When its upload then fails to complete, close reports it and the
// streamed upload, which holds the only copy of those parts, stays open:
// the next close completes it and the object has every byte.
func TestStreamedFileLargerThanTheCacheSurvivesAFailedComplete(t *testing.T) {
	rt := &refusingCompletes{}
	r := newBucketThrough(t, func(next http.RoundTripper) http.RoundTripper { rt.next = next; return rt })
	r.mount(cfs.Options{CacheSize: 32 << 20})
	const size = 96 << 20
	p := filepath.Join(r.mnt, "big")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	writePattern(t, f, size)
	rt.refuse.Store(true)
	if err := f.Close(); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("close with Complete refused: %v, want EACCES", err)
	}
	if rt.refused.Load() == 0 {
		t.Fatal("no Complete was sent")
	}
	if _, err := os.ReadFile(p); err == nil {
		t.Error("a read of parts that left the cache succeeded")
	}
	if g, err := os.OpenFile(p, os.O_WRONLY, 0); err != nil {
		t.Fatal(err)
	} else {
		if _, err := g.WriteAt([]byte("more"), 0); err == nil {
			t.Error("a rewrite at offset 0 of a file whose parts left the cache succeeded")
		}
		g.Close() // fails again: Completes are still refused
	}
	// An attribute change meanwhile keeps the upload; it goes up with it.
	// (Made with the file open: on a closed file whose upload failed, a
	// chmod uploads at once and reports that upload's error.)
	f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	rt.refuse.Store(false)
	if err := f.Close(); err != nil {
		t.Fatalf("close once Completes go through: %v", err)
	}
	if info := r.objectPattern("big", size); info.Metadata["mode"] != strconv.Itoa(syscall.S_IFREG|0o600) {
		t.Errorf("object's mode %q, want the chmod's %o", info.Metadata["mode"], syscall.S_IFREG|0o600)
	}
	r.noUploadsLeft()

	// writeRefused writes a file of size bytes whose close fails.
	writeRefused := func(name string) {
		t.Helper()
		f, err := os.Create(filepath.Join(r.mnt, name))
		if err != nil {
			t.Fatal(err)
		}
		writePattern(t, f, size)
		rt.refuse.Store(true)
		if err := f.Close(); err == nil {
			t.Fatalf("close of %s with Complete refused succeeded", name)
		}
	}

	// Failed again, then emptied: the kept upload is dropped with the
	// parts it held, and the file holds what was written after.
	writeRefused("big2")
	rt.refuse.Store(false)
	if err := os.WriteFile(filepath.Join(r.mnt, "big2"), []byte("small"), 0o644); err != nil {
		t.Fatalf("rewrite of the emptied file: %v", err)
	}
	if got, _ := r.object("big2"); string(got) != "small" {
		t.Errorf("big2 holds %d bytes, want \"small\"", len(got))
	}
	r.noUploadsLeft()

	// Failed once more, and the mount ends: the kept upload is journaled
	// and the next mount on the cache dir completes it from the cache
	// (the tail) and the server (the parts that left the cache).
	writeRefused("big3")
	refused := rt.refused.Load()
	if err := r.unmount(); err == nil {
		t.Fatal("unmount with an upload refused reported nothing")
	}
	if rt.refused.Load() == refused {
		t.Error("the unmount did not try to complete the upload again")
	}
	if n := len(journalEntries(t, r.cacheDir)); n != 1 {
		t.Fatalf("%d journal entries after the unmount, want 1", n)
	}
	rt.refuse.Store(false)
	r.mount(cfs.Options{CacheSize: 32 << 20, CacheDir: r.cacheDir})
	r.objectPattern("big3", size)
	r.noUploadsLeft()
	if n := len(journalEntries(t, r.cacheDir)); n != 0 {
		t.Errorf("%d journal entries left after the upload", n)
	}
	if notes, _ := filepath.Glob(filepath.Join(r.cacheDir, "uploads", "*.json")); len(notes) != 0 {
		t.Errorf("upload notes left: %v", notes)
	}
}

// holdingParts holds UploadPart requests until open is closed, and counts
// those answered.
type holdingParts struct {
	next     http.RoundTripper
	open     chan struct{}
	held     atomic.Int64
	answered atomic.Int64
}

func (rt *holdingParts) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPut || !req.URL.Query().Has("partNumber") {
		return rt.next.RoundTrip(req)
	}
	rt.held.Add(1)
	<-rt.open
	resp, err := rt.next.RoundTrip(req)
	rt.answered.Add(1)
	return resp, err
}

// A file written from 0 and then out of order (past its end, as cp
// --sparse does over a hole) no longer streams: a part handed to the
// upload before stays in the cache when its upload ends, however full the
// cache is, and close uploads the whole file from it.
func TestOutOfOrderWriteKeepsStreamedPartsInTheCache(t *testing.T) {
	hp := &holdingParts{open: make(chan struct{})}
	r := newBucketThrough(t, func(next http.RoundTripper) http.RoundTripper { hp.next = next; return hp })
	r.mount(cfs.Options{CacheSize: 16 << 20})
	f, err := os.Create(filepath.Join(r.mnt, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const seq, hole, tail = 12 << 20, 14 << 20, 1 << 20
	writePattern(t, f, seq) // part 1 goes to the upload, and is held there
	eventually(t, 10*time.Second, func() error {
		if hp.held.Load() == 0 {
			return errors.New("no part sent yet")
		}
		return nil
	})
	want := make([]byte, hole+tail)
	fillPattern(want[:seq], 0)
	fillPattern(want[hole:], hole)
	if _, err := f.WriteAt(want[hole:], hole); err != nil {
		t.Fatal(err)
	}
	close(hp.open)
	eventually(t, 10*time.Second, func() error {
		if hp.answered.Load() == 0 {
			return errors.New("the part is not uploaded yet")
		}
		return nil
	})
	// Time for the part's upload to end in the mount, where a part
	// uploaded under pressure may leave the cache.
	time.Sleep(300 * time.Millisecond)
	if _, err := f.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatalf("read of the first part after its upload: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got, _ := r.object("sparse"); !bytes.Equal(got, want) {
		t.Fatalf("object of %d bytes differs from the %d written", len(got), len(want))
	}
	r.noUploadsLeft()
}

func TestFullCacheDiskGivesENOSPCAndNoCorruptObject(t *testing.T) {
	r := newBucket(t)
	cacheDir := t.TempDir()
	if err := syscall.Mount("tmpfs", cacheDir, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount a small tmpfs for the cache: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(cacheDir, syscall.MNT_DETACH) })
	r.mount(cfs.Options{CacheDir: cacheDir})
	src := randomBytes(40<<20, 5)
	srcPath := filepath.Join(t.TempDir(), "src")
	os.WriteFile(srcPath, src, 0o644)
	dst := filepath.Join(r.mnt, "f")
	out, err := exec.Command("cp", srcPath, dst).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "No space left on device") {
		t.Fatalf("cp into a mount whose cache disk is full: %v %s; want ENOSPC", err, out)
	}
	// Whatever the file holds is exactly what the object holds.
	st, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := r.object("f")
	if int64(len(got)) != st.Size() || !bytes.Equal(got, src[:len(got)]) {
		t.Fatalf("object of %d bytes for a file of %d: not a prefix of what was written", len(got), st.Size())
	}
	r.noUploadsLeft()
}

// Without --write-back-delay close uploads, and the attributes set after it
// ride on the rename's copy: one PUT, one COPY, one DELETE, and a stat of
// the new name costs no request.
func TestRsyncPatternCostsOneUploadAndOneCopy(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{MetaDelay: time.Hour})
	// rsync makes the directories it fills: a directory made here answers
	// lookups of names not in it without asking the bucket.
	if err := os.Mkdir(filepath.Join(r.mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(r.mnt, "d/.data.XXXXXX")
	if err := os.WriteFile(tmp, []byte("rsync payload"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := r.client.Stats()
	mt := time.Unix(1600000000, 42)
	if err := os.Chtimes(tmp, mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.mnt, "d/data")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(r.mnt, "d/data"))
	if err != nil || st.Size() != 13 || !st.ModTime().Equal(mt) || st.Mode().Perm() != 0o600 {
		t.Fatalf("renamed file through the mount: %v %v", st, err)
	}
	// The old name's DELETE goes after the rename returned.
	eventually(t, 10*time.Second, func() error {
		if n := r.client.Stats()["DELETE"] - before["DELETE"]; n == 0 {
			return errors.New("no DELETE of the old name yet")
		}
		return nil
	})
	after := r.client.Stats()
	for _, op := range []string{"PUT", "COPY", "DELETE", "HEAD", "LIST"} {
		want := int64(0)
		if op == "COPY" || op == "DELETE" {
			want = 1
		}
		if n := after[op] - before[op]; n != want {
			t.Errorf("%s requests: %d, want %d (set times, chmod, rename, stat)", op, n, want)
		}
	}
	got, info := r.object("d/data")
	if string(got) != "rsync payload" || info.Metadata["mode"] != "33152" || info.Metadata["cosmount-mtime"] != "1600000000.000000042" {
		t.Fatalf("object after the rename: %q %v", got, info.Metadata)
	}
	// An attribute change with no rename after it is written by the
	// unmount at the latest.
	if err := os.Chmod(filepath.Join(r.mnt, "d/data"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, info := r.object("d/data"); info.Metadata["mode"] != "33152" {
		t.Fatalf("chmod written before its delay: %v", info.Metadata)
	}
	if err := r.fsys.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, info := r.object("d/data"); info.Metadata["mode"] != "33184" {
		t.Fatalf("chmod not written by the unmount's drain: %v", info.Metadata)
	}
}

// A closed file whose upload is still pending (here: --write-back-delay)
// and is then removed, or replaced by a rename, gives its cache space and
// its cache file back at once: nothing else would drop them.
func TestRemovedPendingFileLeavesTheCache(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{WriteBackDelay: time.Hour})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	for _, name := range []string{"gone", "old", "new"} {
		if err := os.WriteFile(m(name), bytes.Repeat([]byte(name), 1000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if used := r.fsys.CacheUsed(); used == 0 {
		t.Fatal("no cache space used by three pending files")
	}
	if err := os.Remove(m("gone")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m("new"), m("old")); err != nil {
		t.Fatal(err)
	}
	// One pending file is left: "old", with new's bytes.
	if used, want := r.fsys.CacheUsed(), int64(len("new")*1000); used > want {
		t.Errorf("cache space used after rm and mv over: %d bytes, want at most %d", used, want)
	}
	var files []string
	_ = filepath.WalkDir(r.cacheDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), "wb-") {
			files = append(files, d.Name())
		}
		return nil
	})
	if len(files) != 1 {
		t.Errorf("write-back files in the cache dir: %v, want one", files)
	}
	if err := r.unmount(); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	if got, _ := r.object("old"); !bytes.Equal(got, bytes.Repeat([]byte("new"), 1000)) {
		t.Errorf("old in the bucket: %.20q...", got)
	}
	for _, k := range []string{"gone", "new"} {
		if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: k}); !errors.Is(err, transport.ErrNotFound) {
			t.Errorf("%s in the bucket: %v, want not found", k, err)
		}
	}
}

// With --write-back-delay, a close whose journal entry cannot be written
// reports it, and the file is still uploaded after the delay.
func TestWriteBackDelayCloseThatCannotJournalStillUploads(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{WriteBackDelay: 200 * time.Millisecond})
	journal := filepath.Join(r.cacheDir, "journal")
	if err := os.RemoveAll(journal); err != nil {
		t.Fatal(err)
	}
	// A file where the journal's folder goes: no entry can be written.
	if err := os.WriteFile(journal, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(r.mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err == nil {
		t.Fatal("close without a journal: no error")
	}
	if err := os.Remove(journal); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		_, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "f"})
		return err
	})
	if got, _ := r.object("f"); string(got) != "kept" {
		t.Errorf("f in the bucket: %q", got)
	}
	if err := r.unmount(); err != nil {
		t.Errorf("unmount: %v", err)
	}
}

func TestWriteBackDelayRsyncPatternCostsOneUpload(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{WriteBackDelay: time.Hour})
	before := r.client.Stats()
	tmp := filepath.Join(r.mnt, ".data.XXXXXX")
	if err := os.WriteFile(tmp, []byte("rsync payload"), 0o644); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1600000000, 42)
	if err := os.Chtimes(tmp, mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.mnt, "data")); err != nil {
		t.Fatal(err)
	}
	// Nothing has gone up yet: close returned with the data in the cache.
	if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "data"}); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("object exists before the delayed upload: %v", err)
	}
	st, err := os.Stat(filepath.Join(r.mnt, "data"))
	if err != nil || st.Size() != 13 || !st.ModTime().Equal(mt) || st.Mode().Perm() != 0o600 {
		t.Fatalf("pending file through the mount: %v %v", st, err)
	}
	if err := r.fsys.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, info := r.object("data")
	if string(got) != "rsync payload" || info.Metadata["mode"] != "33152" || info.Metadata["cosmount-mtime"] != "1600000000.000000042" {
		t.Fatalf("object after the delayed upload: %q %v", got, info.Metadata)
	}
	after := r.client.Stats()
	for _, op := range []string{"PUT", "COPY", "UploadPart", "UploadPartCopy", "DELETE"} {
		n := after[op] - before[op]
		want := int64(0)
		if op == "PUT" {
			want = 1
		}
		if n != want {
			t.Errorf("%s requests: %d, want %d (write, set times, chmod, rename must cost one upload)", op, n, want)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(r.cacheDir, "journal")); len(ents) != 0 {
		t.Errorf("journal entries left after the upload: %d", len(ents))
	}
}

func TestReadOnlyMountRefusesChanges(t *testing.T) {
	r := newBucket(t)
	r.put("f", []byte("x"), nil)
	r.mount(cfs.Options{ReadOnly: true})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	for name, err := range map[string]error{
		"create":   os.WriteFile(m("new"), []byte("y"), 0o644),
		"open rw":  func() error { f, err := os.OpenFile(m("f"), os.O_RDWR, 0); f.Close(); return err }(),
		"mkdir":    os.Mkdir(m("d"), 0o755),
		"unlink":   os.Remove(m("f")),
		"rename":   os.Rename(m("f"), m("g")),
		"chmod":    os.Chmod(m("f"), 0o600),
		"truncate": os.Truncate(m("f"), 0),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s on a read-only mount: %v, want EROFS", name, err)
		}
	}
	if b, err := os.ReadFile(m("f")); err != nil || string(b) != "x" {
		t.Errorf("read on a read-only mount: %q %v", b, err)
	}
}

func TestChildClosingInheritedDescriptorDoesNotUpload(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{})
	f, err := os.Create(filepath.Join(r.mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("first half, "))
	// The child's copy of the descriptor is closed at exec: a FLUSH from
	// another process, which must not upload the half-written file.
	if out, err := exec.Command("true").CombinedOutput(); err != nil {
		t.Fatalf("true: %v %s", err, out)
	}
	if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "f"}); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("a child's close uploaded the half-written file: %v", err)
	}
	f.Write([]byte("second half"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.object("f"); string(got) != "first half, second half" {
		t.Fatalf("object: %q", got)
	}
}

func TestRenameOverAFileOpenForWriting(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	w, err := os.Create(m("dst"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("old contents being written"))
	if err := os.WriteFile(m("src"), []byte("NEW"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m("src"), m("dst")); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(" more"))
	w.Close()
	if got, _ := r.object("dst"); string(got) != "NEW" {
		t.Errorf("dst after the replaced file's writer closed: %q, want NEW", got)
	}
	out, err := r.client.List(context.Background(), &transport.ListInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Objects {
		if o.Key != "dst" {
			t.Errorf("unexpected object %q in the bucket", o.Key)
		}
	}
	r.noUploadsLeft()
}

func TestRenameDirectoryWhileAFileInItStreams(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	os.Mkdir(m("d"), 0o755)
	w, err := os.Create(m("d/big"))
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(20<<20, 3)
	w.Write(data[:17<<20]) // two 8 MiB parts stream under d/big
	if err := os.Rename(m("d"), m("e")); err != nil {
		t.Fatal(err)
	}
	w.Write(data[17<<20:])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.object("e/big"); !bytes.Equal(got, data) {
		t.Errorf("e/big has %d bytes (or other bytes), want the %d written", len(got), len(data))
	}
	if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "d/big"}); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("d/big exists after the directory was renamed: %v", err)
	}
	r.noUploadsLeft()
}

// A directory holding a file whose streamed parts left the cache is not
// renamed while the file is being written (as the file itself is not): the
// parts are in an upload under the old name.
func TestRenameDirectoryRefusedWhileAFileInItOutgrowsTheCache(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{CacheSize: 32 << 20})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	os.Mkdir(m("d"), 0o755)
	w, err := os.Create(m("d/big"))
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	writePattern(t, w, size)
	if err := os.Rename(m("d"), m("e")); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("rename of the directory: %v, want EBUSY", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r.objectPattern("d/big", size)
	if err := os.Rename(m("d"), m("e")); err != nil {
		t.Errorf("rename once the file is closed: %v", err)
	}
	r.noUploadsLeft()
}

// gatedLists holds the LISTs of prefix without a delimiter (a directory
// rename's) until open is closed, and signals held for each.
type gatedLists struct {
	*countingBucket
	prefix string
	held   chan struct{}
	open   chan struct{}
}

func (b *gatedLists) List(ctx context.Context, in *transport.ListInput) (*transport.ListOutput, error) {
	if in.Prefix == b.prefix && in.Delimiter == "" {
		select {
		case b.held <- struct{}{}:
		default:
		}
		<-b.open
	}
	return b.countingBucket.List(ctx, in)
}

// refusingCopies answers the first server-side copy (a request with
// x-amz-copy-source) with 403 AccessDenied when armed, and passes
// everything else on.
type refusingCopies struct {
	next    http.RoundTripper
	armed   atomic.Bool
	refused atomic.Int64
}

func (rt *refusingCopies) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("x-amz-copy-source") != "" && rt.armed.CompareAndSwap(true, false) {
		rt.refused.Add(1)
		return accessDenied(req), nil
	}
	return rt.next.RoundTrip(req)
}

// A file emptied and written while a directory above it is being renamed
// streams under its old name, and its uploaded parts leave the cache: they
// exist only in that upload. Its close completes the upload under the old
// name and moves the object to the new one; nothing is lost or left behind.
// When the move fails, close reports it and the next close uploads the file
// under its name from that object, which is then deleted.
func TestFileStreamedWhileItsDirectoryIsRenamedKeepsItsParts(t *testing.T) {
	for _, failMove := range []bool{false, true} {
		t.Run(fmt.Sprintf("failMove=%v", failMove), func(t *testing.T) { testStreamedWhileRenamed(t, failMove) })
	}
}

func testStreamedWhileRenamed(t *testing.T, failMove bool) {
	rc := &refusingCopies{}
	r := newBucketThrough(t, func(next http.RoundTripper) http.RoundTripper { rc.next = next; return rc })
	gb := &gatedLists{countingBucket: r.counter, prefix: "d/", held: make(chan struct{}, 1), open: make(chan struct{})}
	r.bucketOverride = gb
	r.mount(cfs.Options{CacheSize: 32 << 20})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	if err := os.Mkdir(m("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := os.Create(m("d/big"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	renamed := make(chan error, 1)
	go func() { renamed <- os.Rename(m("d"), m("e")) }()
	select {
	case <-gb.held:
	case <-time.After(10 * time.Second):
		close(gb.open)
		t.Fatal("the directory rename sent no listing")
	}
	// Emptied: the file may stream again, under the name it has now.
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	const size = 96 << 20
	writePattern(t, w, size)
	close(gb.open)
	if err := <-renamed; err != nil {
		t.Fatalf("rename of the directory: %v", err)
	}
	if failMove {
		rc.armed.Store(true)
		if err := w.Close(); err == nil {
			t.Fatal("close with the move refused succeeded")
		}
		if rc.refused.Load() != 1 {
			t.Fatal("no copy was refused")
		}
		// Its data is in the object left under its former name, which a
		// rename of the directory it is in now does not move.
		if err := os.Rename(m("e"), m("f")); err != nil {
			t.Fatalf("rename of the directory after the failed move: %v", err)
		}
		g, err := os.OpenFile(m("f/big"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Close(); err != nil {
			t.Fatalf("close once copies work: %v", err)
		}
		r.objectPattern("f/big", size)
	} else if err := w.Close(); err != nil {
		t.Fatalf("close after the rename: %v", err)
	} else {
		r.objectPattern("e/big", size)
	}
	eventually(t, 10*time.Second, func() error {
		if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "d/big"}); !errors.Is(err, transport.ErrNotFound) {
			return fmt.Errorf("object under the old name: %v, want none", err)
		}
		return nil
	})
	r.noUploadsLeft()
}

func TestUnlinkWhileOpenForWriting(t *testing.T) {
	r := newBucket(t)
	r.put("f", []byte("abc"), nil)
	r.mount(cfs.Options{})
	p := filepath.Join(r.mnt, "f")
	rw, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := rw.ReadAt(buf, 0); err != nil || string(buf) != "abc" {
		t.Errorf("read through a writable handle after unlink: %q %v", buf, err)
	}
	rw.Close()
	eventually(t, 10*time.Second, func() error {
		if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "f"}); !errors.Is(err, transport.ErrNotFound) {
			return errors.New("object not deleted after the last close")
		}
		return nil
	})
}

func TestWriteBackDelayRenameOfAChangedExistingObject(t *testing.T) {
	r := newBucket(t)
	r.put("f", []byte("old"), nil)
	r.mount(cfs.Options{WriteBackDelay: time.Hour})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	a, err := os.OpenFile(m("f"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	a.Write([]byte("+new"))
	a.Close()
	if err := os.Rename(m("f"), m("g")); err != nil {
		t.Fatal(err)
	}
	if err := r.fsys.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.object("g"); string(got) != "old+new" {
		t.Errorf("g: %q, want old+new", got)
	}
	if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "f"}); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("f still exists: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(r.cacheDir, "journal")); len(ents) != 0 {
		t.Errorf("%d journal entries left", len(ents))
	}
}

func TestSignalsDuringCloseDoNotAbandonTheUpload(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{})
	data := randomBytes(48<<20, 11)
	type result struct {
		err error
	}
	done := make(chan result, 1)
	tidc := make(chan int, 1)
	go func() {
		// The thread blocked in close gets the signals: the kernel then
		// interrupts the FUSE request.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tidc <- unix.Gettid()
		f, err := os.Create(filepath.Join(r.mnt, "f"))
		if err == nil {
			_, err = f.WriteAt(data, 0) // one write: no part streams before close
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		done <- result{err}
	}()
	tid := <-tidc
	var res result
loop:
	for {
		select {
		case res = <-done:
			break loop
		default:
			unix.Tgkill(os.Getpid(), tid, unix.SIGURG)
			time.Sleep(200 * time.Microsecond)
		}
	}
	if res.err != nil {
		t.Fatalf("write and close with signals arriving: %v", res.err)
	}
	if got, _ := r.object("f"); !bytes.Equal(got, data) {
		t.Fatalf("object has %d bytes, %d written", len(got), len(data))
	}
}

func TestCreatingFilesInANewDirectorySendsNoLookups(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{})
	d := filepath.Join(r.mnt, "new")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	r.counter.reset()
	for i := 0; i < 20; i++ {
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if h, l := r.counter.heads.Load(), r.counter.lists.Load(); h != 0 || l != 0 {
		t.Errorf("creating 20 files in a directory this mount just made sent %d HEAD and %d LIST", h, l)
	}
	// A listed directory answers lookups of absent names the same way.
	os.WriteFile(filepath.Join(r.mnt, "top"), []byte("y"), 0o644)
	if _, err := os.ReadDir(r.mnt); err != nil {
		t.Fatal(err)
	}
	r.counter.reset()
	if _, err := os.Stat(filepath.Join(r.mnt, "absent")); !os.IsNotExist(err) {
		t.Fatalf("absent: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(r.mnt, "top")); err != nil || string(b) != "y" {
		t.Fatalf("top: %q %v", b, err)
	}
	if h, l := r.counter.heads.Load(), r.counter.lists.Load(); h != 0 || l != 0 {
		t.Errorf("lookups in a freshly listed directory sent %d HEAD and %d LIST", h, l)
	}
}

// An attribute change waiting for its self-copy gives way to another
// client's newer object: it is dropped, not retried forever, and the
// unmount's drain reports nothing left.
func TestPendingAttributesYieldToANewerObject(t *testing.T) {
	r := newBucket(t)
	r.put("f", []byte("old"), nil)
	r.mount(cfs.Options{MetaDelay: 300 * time.Millisecond})
	if err := os.Chmod(filepath.Join(r.mnt, "f"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.put("f", []byte("newer, from elsewhere"), map[string]string{"mode": "33261"}) // 0755
	time.Sleep(time.Second)
	if body, info := r.object("f"); string(body) != "newer, from elsewhere" || info.Metadata["mode"] != "33261" {
		t.Fatalf("the other client's object was changed: %q %v", body, info.Metadata)
	}
	if err := r.fsys.Drain(context.Background()); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

// open(O_TRUNC) of an existing object truncates with the handle open: the
// object is replaced by one upload at close, never first by an empty one.
func TestOpenTruncUploadsOnce(t *testing.T) {
	r := newBucket(t)
	r.put("t", bytes.Repeat([]byte("old"), 1000), nil)
	r.mount(cfs.Options{})
	p := filepath.Join(r.mnt, "t")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	before := r.client.Stats()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n := r.client.Stats()["PUT"] - before["PUT"]; n != 1 {
		t.Errorf("%d PUTs for open(O_TRUNC), write, close; want 1", n)
	}
	if body, _ := r.object("t"); string(body) != "new" {
		t.Errorf("object after the rewrite: %q", body)
	}
}

// The new contents of a file must stream while they are written, not wait
// for close, also when the file starts out by being emptied: cp over an
// existing file opens it with O_TRUNC (the kernel sends a truncate to 0), or
// uploaded while empty (an fsync before the first write).
func TestEmptiedFilesStream(t *testing.T) {
	overwrite := func(t *testing.T, p string) *os.File {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, tc := range []struct {
		name string
		open func(t *testing.T, p string) *os.File
		old  []byte // the object there before
	}{
		{"open O_TRUNC over an existing file", overwrite, bytes.Repeat([]byte("old"), 1000)},
		// The kernel sends the open without O_TRUNC and no truncate, the
		// file being empty already (cp over a file made by touch).
		{"open O_TRUNC over an empty object", overwrite, []byte{}},
		{"uploaded while empty", func(t *testing.T, p string) *os.File {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil { // uploads the empty file
				t.Fatal(err)
			}
			return f
		}, bytes.Repeat([]byte("old"), 1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newBucket(t)
			r.put("t", tc.old, nil)
			r.mount(cfs.Options{ChunkSize: 5 << 20})
			f := tc.open(t, filepath.Join(r.mnt, "t"))
			defer f.Close()
			data := randomBytes(16<<20, 7)
			before := r.client.Stats()["UploadPart"]
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			// Three whole parts were written; they go up before close.
			deadline := time.Now().Add(30 * time.Second)
			for r.client.Stats()["UploadPart"]-before < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("%d parts uploaded before close, want 3: the file did not stream", r.client.Stats()["UploadPart"]-before)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := r.object("t"); !bytes.Equal(got, data) {
				t.Errorf("t has %d bytes (or other bytes), want the %d written", len(got), len(data))
			}
			r.noUploadsLeft()
		})
	}
}

// A shell's `cmd > file`, and dd, duplicate the file's descriptor and close
// the first one before the first write. That close must not upload the
// empty file (an extra request, and an empty object or version others see):
// the last close does, once. A second open of the file, or a copy held by
// another process, does not hold the upload back.
func TestCloseOfAnEmptyFileWhileACopyStaysOpenDoesNotUpload(t *testing.T) {
	r := newBucket(t)
	r.put("old", []byte("old contents"), nil)
	r.mount(cfs.Options{})
	absent := func(key string) {
		t.Helper()
		if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: key}); !errors.Is(err, transport.ErrNotFound) {
			t.Errorf("%s in the bucket before the last close (err %v)", key, err)
		}
	}
	holds := func(key, want string) {
		t.Helper()
		if body, _ := r.object(key); string(body) != want {
			t.Errorf("%s holds %q, want %q", key, body, want)
		}
	}

	for _, tc := range []struct {
		key   string
		flags int
		// before: the bucket after the first close
		before func()
	}{
		{"new", os.O_CREATE | os.O_TRUNC, func() { absent("new") }},
		// The kernel sends the O_TRUNC as a truncate: the file is emptied,
		// but the object keeps its contents until the last close.
		{"old", os.O_TRUNC, func() { holds("old", "old contents") }},
	} {
		p := filepath.Join(r.mnt, tc.key)
		before := r.client.Stats()
		f, err := os.OpenFile(p, os.O_WRONLY|tc.flags, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := syscall.Dup(int(f.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		tc.before()
		g := os.NewFile(uintptr(fd), p)
		if _, err := g.Write([]byte("data")); err != nil {
			t.Fatal(err)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if n := r.client.Stats()["PUT"] - before["PUT"]; n != 1 {
			t.Errorf("%s: %d PUTs for open, dup, close, write, close; want 1", tc.key, n)
		}
		holds(tc.key, "data")
	}

	// A second open of the file for writing: each close uploads, as the
	// other handle's close may never come from this process.
	p := filepath.Join(r.mnt, "two")
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	o, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	holds("two", "")
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	// A child's copy does not hold back the parent's close.
	p = filepath.Join(r.mnt, "child")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	holds("child", "")
}

// A truncate that has to wait for cache space must not hold up the file's
// other operations meanwhile: they take the file's lock.
func TestTruncateWaitingForSpaceHoldsUpNothingElse(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{CacheSize: 8 << 20})
	// a fills the cache and keeps it: written out of order, it does not
	// stream, and it stays open.
	a, err := os.Create(filepath.Join(r.mnt, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	data := randomBytes(8<<20, 9)
	if _, err := a.WriteAt(data[1:], 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteAt(data[:1], 0); err != nil {
		t.Fatal(err)
	}
	bPath := filepath.Join(r.mnt, "b")
	b, err := os.Create(bPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	truncated := make(chan error, 1)
	go func() { truncated <- b.Truncate(1 << 20) }()
	select {
	case err := <-truncated:
		t.Fatalf("the truncate did not wait for space (%v): the test proves nothing", err)
	case <-time.After(500 * time.Millisecond):
	}
	answered := make(chan error, 1)
	go func() {
		_, err := unix.Getxattr(bPath, "user.none", make([]byte, 64))
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != unix.ENODATA {
			t.Errorf("getxattr while the truncate waits: %v, want ENODATA", err)
		}
	case <-truncated:
		t.Fatal("the truncate ended first")
	case <-time.After(20 * time.Second):
		t.Fatal("getxattr of the file waits for the truncate: the truncate holds the file's lock while it waits for space")
	}
	// Uploading a frees the space; the truncate then goes through.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-truncated; err != nil {
		t.Fatalf("truncate after space was freed: %v", err)
	}
	if st, err := b.Stat(); err != nil || st.Size() != 1<<20 {
		t.Fatalf("b after the truncate: %v, %v", st, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.object("b"); !bytes.Equal(got, make([]byte, 1<<20)) {
		t.Errorf("b holds %d bytes, want 1 MiB of zeros", len(got))
	}
}

// A handle opened write-only (cp, dd, tar) writes past the kernel's page
// cache: the pages it would fill would be dropped at the next open anyway,
// once the upload changes the ETag. A reader open at the same time still
// sees every byte written, including the rest of a page it read before.
func TestWriteOnlyHandlesBypassThePageCache(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{})
	p := filepath.Join(r.mnt, "w")
	const size = 4 << 20
	data := make([]byte, size)
	fillPattern(data, 0)
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(data[:3]); err != nil {
		t.Fatal(err)
	}
	rd, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	head := make([]byte, 3)
	if _, err := rd.ReadAt(head, 0); err != nil || !bytes.Equal(head, data[:3]) {
		t.Fatalf("reader before the rest was written: %q, %v", head, err)
	}
	if _, err := w.Write(data[3:]); err != nil {
		t.Fatal(err)
	}
	page := int64(os.Getpagesize())
	if out := evictedBlocks(t, rd, size, page); out < size/page-1 {
		t.Errorf("%d of %d pages written through a write-only handle are in the page cache", size/page-out, size/page)
	}
	got := make([]byte, size)
	if _, err := rd.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		i := 0
		for got[i] == data[i] {
			i++
		}
		t.Fatalf("the reader sees byte %d as %d, written as %d", i, got[i], data[i])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkPattern(t, f, size)
}

// Parts already uploaded leave memory while the file is still being written
// (they are written out to the cache disk and dropped from the page cache),
// but stay in the cache: a rewrite of the first part and a read of the
// whole file before close still work, and the object holds every byte.
// The parts after the first give the write-outs of the file more chances to
// drop pages the kernel still held (socket buffers) at the first one's.
func TestUploadedPartsLeaveMemoryButStayInTheCache(t *testing.T) {
	r := newBucket(t)
	const part = 5 << 20
	r.mount(cfs.Options{CacheDir: testrig.DiskTempDir(t), ChunkSize: part})
	p := filepath.Join(r.mnt, "big")
	const size = 8 * part
	data := make([]byte, size)
	fillPattern(data, 0)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off := 0; off < size; off += 1 << 20 {
		if _, err := f.Write(data[off : off+1<<20]); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	wbs, _ := filepath.Glob(filepath.Join(r.cacheDir, "wb-*"))
	if len(wbs) != 1 {
		t.Fatalf("%d write-back files in the cache, want 1", len(wbs))
	}
	wb, err := os.Open(wbs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	firstPart := part / os.Getpagesize()
	deadline := time.Now().Add(20 * time.Second)
	for {
		in := testrig.InMemory(testrig.Resident(t, wb, part))
		if in == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pages of the uploaded first part are still in memory after 20 s", in, firstPart)
		}
		time.Sleep(20 * time.Millisecond)
	}
	copy(data, "the first part, rewritten after its upload")
	if _, err := f.WriteAt(data[:64], 0); err != nil {
		t.Fatal(err)
	}
	rd, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got := make([]byte, size)
	if _, err := io.ReadFull(rd, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the file read back before close differs from what was written")
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	obj, _ := r.object("big")
	if !bytes.Equal(obj, data) {
		t.Fatalf("the object (%d bytes) differs from what was written (%d bytes)", len(obj), len(data))
	}
	r.noUploadsLeft()
}

// The process id of a FUSE caller is read from the top of
// /proc/TID/status for whichever of its threads made the request.
func TestStatusTgid(t *testing.T) {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		t.Skipf("no /proc/self/task: %v", err)
	}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended
		}
		if tgid, ok := cfs.StatusTgid(b[:min(len(b), 512)]); !ok || tgid != os.Getpid() {
			t.Errorf("%s: tgid %d, %v; want %d", p, tgid, ok, os.Getpid())
		}
	}
	for _, bad := range []string{"", "Name:\tx\n", "Name:\tTgid: 7\nTgid:\tseven\n", "Name:\tx\nTgi"} {
		if tgid, ok := cfs.StatusTgid([]byte(bad)); ok {
			t.Errorf("%q: tgid %d, want none", bad, tgid)
		}
	}
	if tgid, ok := cfs.StatusTgid([]byte("Name:\ta b\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\n")); !ok || tgid != 4242 {
		t.Errorf("tgid %d, %v; want 4242", tgid, ok)
	}
}

// Attributes set here and not written yet (--meta-delay) are what stat
// shows after the stat TTL runs out, not the bucket's older ones.
func TestPendingAttributesOutliveTheStatTTL(t *testing.T) {
	r := newBucket(t)
	r.put("f", []byte("x"), nil)
	r.mount(cfs.Options{StatTTL: 100 * time.Millisecond, MetaDelay: time.Minute})
	p := filepath.Join(r.mnt, "f")
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat after the TTL: %v %v, want mode 0600", st, err)
	}
	r.fsys.ForgetEntry("", "f") // (a lookup, not a getattr, answers next)
	time.Sleep(300 * time.Millisecond)
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat after a new lookup: %v %v, want mode 0600", st, err)
	}
}
