package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	cfs "cosmount/fs"
	"cosmount/transport"
)

// heldBucket holds back every listing page but the first until release is
// closed, and fails them with failWith when it is set.
type heldBucket struct {
	*countingBucket
	release  chan struct{}
	failWith error
}

func (b *heldBucket) List(ctx context.Context, in *transport.ListInput) (*transport.ListOutput, error) {
	if in.Token != "" && in.Delimiter == "/" {
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(30 * time.Second):
			return nil, errors.New("page held for 30 s")
		}
		if b.failWith != nil {
			return nil, b.failWith
		}
	}
	return b.countingBucket.List(ctx, in)
}

// flatKeys are n keys in dir, file-00000 on.
func flatKeys(dir string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s/file-%05d", dir, i)
	}
	return keys
}

// A directory's first page reaches the program while the next is still on
// its way; the rest follows.
func TestListingStreamsPageByPage(t *testing.T) {
	r := newBucket(t)
	keys := flatKeys("d", 2500)
	r.putMany(keys, func(i int) []byte { return []byte{byte(i)} })
	hb := &heldBucket{countingBucket: &countingBucket{Bucket: r.client}, release: make(chan struct{})}
	r.counter = hb.countingBucket
	r.bucketOverride = hb
	r.mount(cfs.Options{FastList: true})
	f, err := os.Open(filepath.Join(r.mnt, "d"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := make(chan []string, 1)
	go func() {
		names, err := f.Readdirnames(100)
		if err != nil {
			t.Errorf("first entries: %v", err)
		}
		first <- names
	}()
	var got []string
	select {
	case got = <-first:
	case <-time.After(20 * time.Second):
		close(hb.release)
		t.Fatal("the first page's entries waited for the second page")
	}
	close(hb.release)
	rest, err := f.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, rest...)
	sort.Strings(got)
	want := make([]string, len(keys))
	for i, k := range keys {
		want[i] = filepath.Base(k)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d names, want %d", len(got), len(want))
	}
}

// A page that fails after the first ends the listing with its error, not
// with a short directory.
func TestListingPageFailureIsAnError(t *testing.T) {
	r := newBucket(t)
	r.putMany(flatKeys("d", 1500), func(i int) []byte { return []byte{byte(i)} })
	hb := &heldBucket{countingBucket: &countingBucket{Bucket: r.client}, release: make(chan struct{}),
		failWith: &transport.Error{Op: "LIST", StatusCode: 403, Code: "AccessDenied", Kind: transport.ErrAccessDenied}}
	close(hb.release)
	r.counter = hb.countingBucket
	r.bucketOverride = hb
	r.mount(cfs.Options{FastList: true})
	names, err := os.ReadDir(filepath.Join(r.mnt, "d"))
	if !errors.Is(err, syscall.EACCES) {
		t.Fatalf("listing whose second page is refused: %d names, %v; want EACCES", len(names), err)
	}
}

// scriptedBucket answers the listing of d/ with its pages (by token), each
// after the one before by delay.
type scriptedBucket struct {
	*countingBucket
	pages map[string]*transport.ListOutput
	delay time.Duration
}

func (b *scriptedBucket) List(ctx context.Context, in *transport.ListInput) (*transport.ListOutput, error) {
	if in.Prefix == "d/" && in.Delimiter == "/" {
		b.lists.Add(1)
		if in.Token != "" {
			time.Sleep(b.delay)
		}
		out := *b.pages[in.Token]
		return &out, nil
	}
	return b.countingBucket.List(ctx, in)
}

// An object and a directory of the same name on different pages: the name
// is listed once, as the directory, although the object came first. (A
// POSIX-backed server cannot hold both, so the pages are scripted.)
func TestListingNameCollisionAcrossPages(t *testing.T) {
	r := newBucket(t)
	r.putMany([]string{"d/a"}, func(i int) []byte { return []byte("v") })
	obj := func(name string) transport.ObjectInfo {
		return transport.ObjectInfo{Key: "d/" + name, Size: 1, ETag: "e-" + name, LastModified: time.Now()}
	}
	// Page one ends with x and x-1 ('-' sorts before '/'); page two starts
	// with the prefix x/. It comes later, so that the kernel would have
	// taken x as a file by then if it had been handed over.
	page1 := &transport.ListOutput{NextToken: "p2", Objects: []transport.ObjectInfo{obj("a"), obj("x"), obj("x-1")}}
	page2 := &transport.ListOutput{CommonPrefixes: []string{"d/x/"}, Objects: []transport.ObjectInfo{obj("y")}}
	sb := &scriptedBucket{countingBucket: &countingBucket{Bucket: r.client}, delay: 300 * time.Millisecond,
		pages: map[string]*transport.ListOutput{"": page1, "p2": page2}}
	r.counter = sb.countingBucket
	r.bucketOverride = sb
	r.mount(cfs.Options{FastList: true})
	ents, err := os.ReadDir(filepath.Join(r.mnt, "d"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range ents {
		seen[e.Name()]++
		if e.Name() == "x" && !e.IsDir() {
			t.Error("x is listed as a file; the directory x/ hides it")
		}
		if (e.Name() == "x-1" || e.Name() == "y") && e.IsDir() {
			t.Errorf("%s is listed as a directory", e.Name())
		}
	}
	for n, c := range seen {
		if c != 1 {
			t.Errorf("%s listed %d times", n, c)
		}
	}
	if len(seen) != 4 || seen["a"] != 1 || seen["x"] != 1 || seen["x-1"] != 1 || seen["y"] != 1 {
		t.Errorf("listed %v, want a, x, x-1 and y", seen)
	}
	if st, err := os.Stat(filepath.Join(r.mnt, "d", "x")); err != nil || !st.IsDir() {
		t.Errorf("stat x: %v %v; want the directory", st, err)
	}
}

// A directory listed in full and then renamed does not answer "no such
// file" for the names it holds under its new name (the names its listing
// knew were under the old one).
func TestRenamedListedDirectoryFindsItsFiles(t *testing.T) {
	r := newBucket(t)
	r.put("a/x", []byte("x"), nil)
	r.put("a/s/y", []byte("y"), nil)
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	for _, d := range []string{"a", "a/s"} {
		if _, err := os.ReadDir(m(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(m("a"), m("b")); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"b/x": "x", "b/s/y": "y"} {
		if got, err := os.ReadFile(m(p)); err != nil || string(got) != want {
			t.Errorf("%s after the rename: %q %v", p, got, err)
		}
	}
}

// A file removed while open goes from the bucket at its last close, unless
// its name was taken meanwhile: a new file with the same bytes (the same
// ETag) stays. A directory renamed meanwhile does not take it along.
func TestUnlinkedOpenFileLeavesANewFileOfItsNameAlone(t *testing.T) {
	r := newBucket(t)
	r.put("f", []byte("same"), nil)
	r.put("d/g", []byte("gone"), nil)
	r.put("d/h", []byte("moved"), nil)
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	f, err := os.Open(m("f"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.Open(m("d/g"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"f", "d/g"} {
		if err := os.Remove(m(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(m("f"), []byte("same"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m("d"), m("e")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := g.ReadAt(buf, 0); string(buf[:n]) != "gone" {
		t.Errorf("read of d/g, removed, after its directory's rename: %q %v", buf[:n], err)
	}
	f.Close()
	g.Close()
	ctx := context.Background()
	eventually(t, 10*time.Second, func() error {
		if _, err := r.client.Head(ctx, &transport.HeadInput{Key: "d/g"}); !errors.Is(err, transport.ErrNotFound) {
			return fmt.Errorf("d/g after its last close: %v, want not found", err)
		}
		return nil
	})
	if got, _ := r.object("f"); string(got) != "same" {
		t.Errorf("f: %q", got)
	}
	if got, _ := r.object("e/h"); string(got) != "moved" {
		t.Errorf("e/h: %q", got)
	}
	if _, err := r.client.Head(ctx, &transport.HeadInput{Key: "e/g"}); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("e/g: %v, want not found", err)
	}
	if _, err := os.Stat(m("f")); err != nil {
		t.Errorf("stat f: %v", err)
	}
}

// headFailBucket fails the HEADs of one key while armed.
type headFailBucket struct {
	cfs.Bucket
	key atomic.Pointer[string]
}

func (b *headFailBucket) Head(ctx context.Context, in *transport.HeadInput) (*transport.ObjectInfo, error) {
	if k := b.key.Load(); k != nil && *k == in.Key {
		return nil, errors.New("injected failure")
	}
	return b.Bucket.Head(ctx, in)
}

// A name a complete listing gave is looked up again once what the stat
// cache knew of it is gone (here: its HEAD failed, which keeps the
// listing's attributes for the negative TTL only), never answered "no
// such file" from the listing.
func TestListedNameWhoseHeadFailedIsFoundLater(t *testing.T) {
	r := newBucket(t)
	r.put("d/a", []byte("a"), nil)
	r.put("d/b", []byte("b"), nil)
	hb := &headFailBucket{Bucket: r.counter}
	r.bucketOverride = hb
	r.mount(cfs.Options{NegativeTTL: 100 * time.Millisecond})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	k := "d/b"
	hb.key.Store(&k)
	if _, err := os.ReadDir(m("d")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m("d/a")); err != nil { // sends the listing's HEADs
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	hb.key.Store(nil)
	eventually(t, 10*time.Second, func() error {
		if errno := r.fsys.ForgetEntry("d", "b"); errno != 0 && errno != syscall.ENOENT {
			return errno
		}
		b, err := os.ReadFile(m("d/b"))
		if err != nil || string(b) != "b" {
			return fmt.Errorf("d/b: %q %v", b, err)
		}
		return nil
	})
}

// With --fast-list, attributes come from listings, which carry no mode,
// owner, mtime or xattrs. A change that writes the attributes back (chmod,
// touch, setfattr, an append) reads the object's own first, so that it
// keeps what it does not change; getfattr reads them too.
func TestFastListChangesKeepTheObjectsAttributes(t *testing.T) {
	r := newBucket(t)
	xattr := url.QueryEscape(`{"user.a":"MQ=="}`)
	meta := map[string]string{"mode": "33152", "uid": "1234", "gid": "4321", "mtime": "1000000000", "xattr": xattr}
	for _, k := range []string{"d/chmod", "d/touch", "d/setfattr", "d/append", "d/getfattr"} {
		r.put(k, []byte("data"), meta)
	}
	r.mount(cfs.Options{FastList: true})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	if _, err := os.ReadDir(m("d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(m("d/chmod"), 0o640); err != nil {
		t.Fatal(err)
	}
	when := time.Unix(1500000000, 0)
	if err := os.Chtimes(m("d/touch"), when, when); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(m("d/setfattr"), "user.b", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(m("d/append"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("+more")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Getxattr(m("d/getfattr"), "user.a", buf); err != nil || string(buf[:n]) != "1" {
		t.Errorf("getxattr user.a: %q %v", buf[:max(n, 0)], err)
	}
	if err := r.unmount(); err != nil { // writes the attributes it holds back
		t.Fatalf("unmount: %v", err)
	}
	for k, want := range map[string]map[string]string{
		"d/chmod":    {"mode": "33184", "uid": "1234", "gid": "4321", "mtime": "1000000000"},
		"d/touch":    {"mode": "33152", "uid": "1234", "gid": "4321", "mtime": "1500000000"},
		"d/setfattr": {"mode": "33152", "uid": "1234", "gid": "4321", "mtime": "1000000000"},
		"d/append":   {"mode": "33152", "uid": "1234", "gid": "4321"},
	} {
		o, err := r.client.Head(context.Background(), &transport.HeadInput{Key: k})
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range want {
			if got := o.Metadata[name]; got != v {
				t.Errorf("%s: metadata %s = %q, want %q", k, name, got, v)
			}
		}
		if k != "d/setfattr" && o.Metadata["xattr"] != xattr {
			t.Errorf("%s: xattrs %q, want %q", k, o.Metadata["xattr"], xattr)
		}
	}
	o, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "d/setfattr"})
	if err != nil {
		t.Fatal(err)
	}
	if x, _ := url.QueryUnescape(o.Metadata["xattr"]); !strings.Contains(x, `"user.a"`) || !strings.Contains(x, `"user.b"`) {
		t.Errorf("d/setfattr: xattrs %q, want user.a and user.b", x)
	}
}

// A file renamed while open for reading stays readable through its open
// handles, even the parts of it not read yet: the object they read goes at
// their last close, as an unlinked file's does.
func TestFileRenamedWhileOpenStaysReadable(t *testing.T) {
	r := newBucket(t)
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	r.put("big", data, nil)
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	f, err := os.Open(m("big"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, 1<<20); err != nil { // not at 0: no readahead
		t.Fatal(err)
	}
	if err := os.Rename(m("big"), m("other")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m("other"), m("third")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m("big")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat big after the rename: %v, want ENOENT", err)
	}
	if n, err := f.ReadAt(buf, 2<<20); err != nil || !bytes.Equal(buf[:n], data[2<<20:2<<20+4096]) {
		t.Errorf("read of the renamed file's handle: %d bytes, %v", n, err)
	}
	f.Close()
	ctx := context.Background()
	eventually(t, 10*time.Second, func() error {
		for _, k := range []string{"big", "other"} {
			if _, err := r.client.Head(ctx, &transport.HeadInput{Key: k}); !errors.Is(err, transport.ErrNotFound) {
				return fmt.Errorf("%s after the last close: %v, want not found", k, err)
			}
		}
		return nil
	})
	if got, _ := r.object("third"); !bytes.Equal(got, data) {
		t.Errorf("third: %d bytes, want the object's %d", len(got), len(data))
	}
}

// gatedPutBucket holds the PUTs of one key until release is closed (with
// after, once the server has answered); started is closed when the first
// arrives.
type gatedPutBucket struct {
	cfs.Bucket
	key     string
	after   bool
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *gatedPutBucket) Put(ctx context.Context, in *transport.PutInput) (*transport.PutOutput, error) {
	if in.Key != b.key {
		return b.Bucket.Put(ctx, in)
	}
	if !b.after {
		b.once.Do(func() { close(b.started) })
		<-b.release
		return b.Bucket.Put(ctx, in)
	}
	out, err := b.Bucket.Put(ctx, in)
	b.once.Do(func() { close(b.started) })
	<-b.release
	return out, err
}

// A directory renamed while a file in it is being uploaded waits for that
// upload and moves its object too: the object does not land under the old
// name after the rename.
func TestDirectoryRenamedDuringAnUploadMovesTheUploadedFile(t *testing.T) {
	r := newBucket(t)
	gb := &gatedPutBucket{Bucket: r.counter, key: "d/f", started: make(chan struct{}), release: make(chan struct{})}
	r.bucketOverride = gb
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	if err := os.Mkdir(m("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	written := make(chan error, 1)
	go func() { written <- os.WriteFile(m("d/f"), []byte("data"), 0o644) }()
	select {
	case <-gb.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the upload of d/f did not start")
	}
	renamed := make(chan error, 1)
	go func() { renamed <- os.Rename(m("d"), m("e")) }()
	time.Sleep(200 * time.Millisecond)
	close(gb.release)
	for _, c := range []chan error{written, renamed} {
		select {
		case err := <-c:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("write or rename still waiting")
		}
	}
	if got, _ := r.object("e/f"); string(got) != "data" {
		t.Errorf("e/f: %q", got)
	}
	if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "d/f"}); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("d/f after the rename: %v, want not found", err)
	}
	if b, err := os.ReadFile(m("e/f")); err != nil || string(b) != "data" {
		t.Errorf("e/f through the mount: %q %v", b, err)
	}
}

// slowDeleteBucket takes a while over each DELETE.
type slowDeleteBucket struct{ cfs.Bucket }

func (b slowDeleteBucket) Delete(ctx context.Context, key string) error {
	time.Sleep(300 * time.Millisecond)
	return b.Bucket.Delete(ctx, key)
}

// The end of a mount waits for the deletes its last closes started: a file
// removed while open is gone from the bucket once the drain returns.
func TestDrainWaitsForTheDeleteOfAFileRemovedWhileOpen(t *testing.T) {
	r := newBucket(t)
	r.put("f", []byte("x"), nil)
	r.bucketOverride = slowDeleteBucket{r.counter}
	r.mount(cfs.Options{})
	f, err := os.Open(filepath.Join(r.mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(r.mnt, "f")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := r.unmount(); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "f"}); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("f once the drain returned: %v, want not found", err)
	}
}

// closeDuringUpload writes "0123456789" to a new file f and closes it in
// the background, its upload held by the gate (after the PUT when after is
// set, before it otherwise), and returns a second handle of f, the close's
// result, and the gate to release.
func closeDuringUpload(t *testing.T, after bool) (r *rig, h2 *os.File, closed chan error, gb *gatedPutBucket) {
	t.Helper()
	r = newBucket(t)
	gb = &gatedPutBucket{Bucket: r.counter, key: "f", after: after, started: make(chan struct{}), release: make(chan struct{})}
	r.bucketOverride = gb
	r.mount(cfs.Options{})
	p := filepath.Join(r.mnt, "f")
	h1, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h1.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if h2, err = os.OpenFile(p, os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h2.Close() })
	closed = make(chan error, 1)
	go func() { closed <- h1.Close() }()
	select {
	case <-gb.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the upload did not start")
	}
	return r, h2, closed, gb
}

// A file truncated and written again while its close uploads it reads,
// once that upload is its base, as written since: zeros where the truncate
// cut it, not the uploaded bytes.
func TestTruncateDuringAnUploadKeepsTheZeros(t *testing.T) {
	r, h2, closed, gb := closeDuringUpload(t, true)
	if err := h2.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.WriteAt([]byte("ab"), 5); err != nil {
		t.Fatal(err)
	}
	close(gb.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := h2.ReadAt(buf, 0)
	if want := "\x00\x00\x00\x00\x00ab"; string(buf[:n]) != want {
		t.Errorf("f after the upload: %q (%v), want %q", buf[:n], err, want)
	}
	if err := h2.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.object("f"); string(got) != "\x00\x00\x00\x00\x00ab" {
		t.Errorf("f in the bucket: %q", got)
	}
}

// A truncate that cuts a file while its close uploads it, so that the
// upload runs short of bytes, makes the close upload the file again rather
// than fail.
func TestTruncateDuringAnUploadUploadsAgain(t *testing.T) {
	r, h2, closed, gb := closeDuringUpload(t, false)
	if err := h2.Truncate(4); err != nil {
		t.Fatal(err)
	}
	close(gb.release)
	if err := <-closed; err != nil {
		t.Fatalf("close during which the file was cut: %v", err)
	}
	if got, _ := r.object("f"); string(got) != "0123" {
		t.Errorf("f in the bucket: %q, want %q", got, "0123")
	}
}

// heldCompletes holds the answer of the first CompleteMultipartUpload,
// once the server has made the object, until release is closed.
type heldCompletes struct {
	next    http.RoundTripper
	once    sync.Once
	started chan struct{}
	release chan struct{}
}

func (rt *heldCompletes) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(req)
	if req.Method == http.MethodPost && req.URL.Query().Has("uploadId") {
		held := false
		rt.once.Do(func() { held = true; close(rt.started) })
		if held {
			<-rt.release
		}
	}
	return resp, err
}

// A read of a file open for writing, of bytes it has not changed, while
// its close uploads it (their part copied on the server from the object
// it was opened from): the old object goes when the upload completes, and
// the read reads the new one rather than failing (ESTALE).
func TestReadDuringTheUploadOfTheSameFile(t *testing.T) {
	rt := &heldCompletes{started: make(chan struct{}), release: make(chan struct{})}
	r := newBucketThrough(t, func(next http.RoundTripper) http.RoundTripper { rt.next = next; return rt })
	const size = 24 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i % 253)
	}
	r.put("f", data, nil)
	r.mount(cfs.Options{})
	p := filepath.Join(r.mnt, "f")
	w, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteAt([]byte("changed"), 0); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		h, err := os.OpenFile(p, os.O_RDWR, 0) // a second handle, closed: uploads
		if err == nil {
			err = h.Close()
		}
		closed <- err
	}()
	select {
	case <-rt.started:
	case <-time.After(20 * time.Second):
		t.Fatal("the upload did not complete")
	}
	go func() { time.Sleep(300 * time.Millisecond); close(rt.release) }()
	buf := make([]byte, 4096)
	at := int64(20 << 20)
	if n, err := w.ReadAt(buf, at); err != nil || !bytes.Equal(buf[:n], data[at:at+4096]) {
		t.Errorf("read of unchanged bytes during the upload: %d bytes, %v", n, err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// heldRootList holds the answer of the next listing of the root, once
// armed, until release is closed.
type heldRootList struct {
	cfs.Bucket
	armed   atomic.Bool
	started chan struct{}
	release chan struct{}
}

func (b *heldRootList) List(ctx context.Context, in *transport.ListInput) (*transport.ListOutput, error) {
	out, err := b.Bucket.List(ctx, in)
	if in.Prefix == "" && b.armed.CompareAndSwap(true, false) {
		close(b.started)
		<-b.release
	}
	return out, err
}

// A listing answered before this mount's own upload, and taken in after
// it, does not put the old object's attributes back in the stat cache
// (--fast-list takes attributes from listings).
func TestListingOlderThanAnUploadKeepsTheUpload(t *testing.T) {
	r := newBucket(t)
	r.put("f", []byte("AAAA"), nil)
	hb := &heldRootList{Bucket: r.counter, started: make(chan struct{}), release: make(chan struct{})}
	r.bucketOverride = hb
	r.mount(cfs.Options{FastList: true, StatTTL: time.Minute})
	p := filepath.Join(r.mnt, "f")
	// Opened before the listing: a create would wait for the directory,
	// which the kernel holds while the listing runs.
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	hb.armed.Store(true)
	listed := make(chan error, 1)
	go func() {
		_, err := os.ReadDir(r.mnt)
		listed <- err
	}()
	select {
	case <-hb.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the listing did not start")
	}
	if _, err := w.Write([]byte("BBBBBB")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	close(hb.release)
	if err := <-listed; err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "BBBBBB" {
		t.Errorf("f after a listing older than its upload: %q (%v), want BBBBBB", b, err)
	}
}

// A directory renamed into a directory whose listing was complete stays
// there once the kernel forgets its inode: the listing does not answer
// ENOENT for the name the rename gave it.
func TestRenamedIntoAListedDirectorySurvivesForget(t *testing.T) {
	r := newBucket(t)
	r.put("a/x", []byte("x"), nil)
	r.put("b/y", []byte("y"), nil)
	r.mount(cfs.Options{StatTTL: time.Minute})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	if _, err := os.ReadDir(m("b")); err != nil { // (b's listing is complete now)
		t.Fatal(err)
	}
	if err := os.Rename(m("a"), m("b/a")); err != nil {
		t.Fatal(err)
	}
	// The kernel forgets an inode once nothing uses it and it leaves its
	// cache: drop the entry, then the cache's unused entries. b, held
	// open, stays.
	bh, err := os.Open(m("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	eventually(t, 10*time.Second, func() error {
		_ = r.fsys.ForgetEntry("b", "a")
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
			t.Skipf("cannot drop the kernel's caches: %v", err)
		}
		if r.fsys.HasChild("b", "a") {
			return errors.New("the kernel still holds b/a")
		}
		return nil
	})
	if _, err := os.Stat(m("b/a")); err != nil {
		t.Fatalf("b/a after the kernel forgot it: %v", err)
	}
	if b, err := os.ReadFile(m("b/a/x")); err != nil || string(b) != "x" {
		t.Fatalf("b/a/x: %q %v", b, err)
	}
}

// A listing fetched ahead (during a walk) and used a while later holds for
// the stat TTL from when it was sent, not from when it was used: a name
// added in the bucket meanwhile is seen once that TTL has run out.
func TestPrefetchedListingHoldsFromWhenItWasSent(t *testing.T) {
	r := newBucket(t)
	for _, k := range []string{"p/a/1", "p/b/1", "p/c/1"} {
		r.put(k, []byte("1"), nil)
	}
	const ttl = 2 * time.Second
	r.mount(cfs.Options{StatTTL: ttl, NegativeTTL: 50 * time.Millisecond})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	if _, err := os.ReadDir(m("p")); err != nil {
		t.Fatal(err)
	}
	lists := r.counter.lists.Load()
	sent := time.Now()
	// A walk: a, then b; c's listing goes out as b is done.
	for _, d := range []string{"p/a", "p/b"} {
		if _, err := os.ReadDir(m(d)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, time.Second, func() error {
		if n := r.counter.lists.Load() - lists; n != 3 {
			return fmt.Errorf("%d LISTs after listing p/a and p/b, want 3 (p/c's fetched ahead)", n)
		}
		return nil
	})
	time.Sleep(ttl * 3 / 4)
	if _, err := os.ReadDir(m("p/c")); err != nil {
		t.Fatal(err)
	}
	if n := r.counter.lists.Load() - lists; n != 3 {
		t.Fatalf("%d LISTs for p/a, p/b and p/c, want 3: p/c's listing fetched ahead was not used", n)
	}
	r.put("p/c/new", []byte("n"), nil)
	time.Sleep(time.Until(sent.Add(ttl + ttl/2)))
	if _, err := os.Stat(m("p/c/new")); err != nil {
		t.Errorf("p/c/new, added %v after p/c's listing was sent (TTL %v): %v", time.Since(sent).Round(time.Millisecond), ttl, err)
	}
}
