package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cfs "cosmount/fs"
	"cosmount/transport"
)

// gatedDeleteBucket holds the DELETEs of one key until release is closed;
// started is closed when the first arrives.
type gatedDeleteBucket struct {
	cfs.Bucket
	key     string
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGatedDelete(b cfs.Bucket, key string) *gatedDeleteBucket {
	return &gatedDeleteBucket{Bucket: b, key: key, started: make(chan struct{}), release: make(chan struct{})}
}

func (b *gatedDeleteBucket) Delete(ctx context.Context, key string) error {
	if key == b.key {
		if err := b.hold(ctx); err != nil {
			return err
		}
	}
	return b.Bucket.Delete(ctx, key)
}

// hold waits until release is closed.
func (b *gatedDeleteBucket) hold(ctx context.Context) error {
	b.once.Do(func() { close(b.started) })
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A rename returns before the old name's object is deleted; until it is,
// the old name is gone from lookups and listings, and a file made under
// it waits for the delete before its upload, so that the delete cannot
// take it.
func TestRenameDeletesTheOldNameAfterReturning(t *testing.T) {
	r := newBucket(t)
	old := []byte("the file as rsync wrote it under its temporary name")
	r.put(".f.tmp", old, nil)
	gate := newGatedDelete(r.counter, ".f.tmp")
	r.bucketOverride = gate
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	if err := os.Rename(m(".f.tmp"), m("f")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gate.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no DELETE of the old name was sent")
	}
	ctx := context.Background()
	if _, err := r.client.Head(ctx, &transport.HeadInput{Key: ".f.tmp"}); err != nil {
		t.Fatalf("the old object before its delete: %v", err)
	}
	if _, err := os.Stat(m(".f.tmp")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat of the old name while its delete is pending: %v, want ENOENT", err)
	}
	ents, err := os.ReadDir(r.mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != "f" {
		t.Errorf("listing while the delete is pending: %q, want [f]", names)
	}
	if got, err := os.ReadFile(m("f")); err != nil || !bytes.Equal(got, old) {
		t.Errorf("read of the new name: %q, %v", got, err)
	}
	// A new file under the old name: its upload waits for the delete.
	fresh := []byte("a new file under the old name")
	wrote := make(chan error, 1)
	go func() { wrote <- os.WriteFile(m(".f.tmp"), fresh, 0o644) }()
	time.Sleep(100 * time.Millisecond)
	close(gate.release)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := r.unmount(); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.object(".f.tmp"); !bytes.Equal(got, fresh) {
		t.Errorf("the old name after the delete and the new file: %q, want %q", got, fresh)
	}
	if got, _ := r.object("f"); !bytes.Equal(got, old) {
		t.Errorf("the new name: %q, want %q", got, old)
	}
}

// rmdir of a directory whose last file was just renamed out of it waits
// for that file's delete instead of finding the directory not empty.
func TestRmdirAfterRenamingItsLastFileOut(t *testing.T) {
	r := newBucket(t)
	r.put("d/", nil, nil)
	r.put("d/a", []byte("a"), nil)
	gate := newGatedDelete(r.counter, "d/a")
	r.bucketOverride = gate
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	if err := os.Rename(m("d/a"), m("a")); err != nil {
		t.Fatal(err)
	}
	<-gate.started
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(gate.release)
	}()
	if err := os.Remove(m("d")); err != nil {
		t.Fatalf("rmdir of the emptied directory: %v", err)
	}
	if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "d/a"}); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("d/a after the rmdir: %v, want not found", err)
	}
}

// heldCopies holds copy requests until release is closed; arrived is
// closed when the first comes.
type heldCopies struct {
	next    http.RoundTripper
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func (rt *heldCopies) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("X-Amz-Copy-Source") != "" {
		rt.once.Do(func() { close(rt.arrived) })
		<-rt.release
	}
	return rt.next.RoundTrip(req)
}

// A file renamed while open keeps its old object for its readers until the
// last close; when that close comes during the rename's copy (the kernel
// sends it after close has returned, so often after a rename that follows
// at once, as rsync's), the rename deletes the old name itself.
func TestRenameWhoseLastCloseComesDuringTheCopyDeletesTheOldName(t *testing.T) {
	rt := &heldCopies{arrived: make(chan struct{}), release: make(chan struct{})}
	r := newBucketThrough(t, func(next http.RoundTripper) http.RoundTripper { rt.next = next; return rt })
	r.put("d/.f.tmp", []byte("payload"), nil)
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	f, err := os.Open(m("d/.f.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	renamed := make(chan error, 1)
	go func() { renamed <- os.Rename(m("d/.f.tmp"), m("d/f")) }()
	<-rt.arrived
	f.Close()
	time.Sleep(200 * time.Millisecond) // the kernel's release
	close(rt.release)
	if err := <-renamed; err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eventually(t, 10*time.Second, func() error {
		if _, err := r.client.Head(ctx, &transport.HeadInput{Key: "d/.f.tmp"}); !errors.Is(err, transport.ErrNotFound) {
			return fmt.Errorf("the old name after the rename and the last close: %v, want not found", err)
		}
		return nil
	})
	if got, _ := r.object("d/f"); string(got) != "payload" {
		t.Errorf("the new name: %q", got)
	}
}

// A file renamed away while open keeps its old object for its reader; a
// rename back onto the old name takes the name: the reader's last close
// must not delete it.
func TestRenameBackOntoANameHeldForAReader(t *testing.T) {
	r := newBucket(t)
	data := []byte("read while renamed away and back")
	r.put("a", data, nil)
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	rd, err := os.Open(m("a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m("a"), m("b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m("b"), m("a")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(m("a")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("a after renaming it back: %q, %v", got, err)
	}
	rd.Close()
	if err := r.unmount(); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.object("a"); !bytes.Equal(got, data) {
		t.Errorf("a after the reader's last close: %q, want %q", got, data)
	}
	if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "b"}); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("b after the renames: %v, want not found", err)
	}
}

// heldListings holds the answers of LIST requests, once hold is set, until
// release is closed; sent is closed when the first held one has been
// answered by the server.
type heldListings struct {
	next    http.RoundTripper
	hold    atomic.Bool
	sent    chan struct{}
	release chan struct{}
	once    sync.Once
}

func (rt *heldListings) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(req)
	if rt.hold.Load() && req.Method == http.MethodGet && req.URL.Query().Has("list-type") {
		rt.once.Do(func() { close(rt.sent) })
		<-rt.release
	}
	return resp, err
}

// A listing sent while a renamed file's old name is still being deleted,
// and answered after, does not show the old name.
func TestListingSentBeforeTheOldNameWentDoesNotShowIt(t *testing.T) {
	lists := &heldListings{sent: make(chan struct{}), release: make(chan struct{})}
	r := newBucketThrough(t, func(next http.RoundTripper) http.RoundTripper { lists.next = next; return lists })
	r.put("d/.f.tmp", []byte("x"), nil)
	gate := newGatedDelete(r.counter, "d/.f.tmp")
	r.bucketOverride = gate
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	if err := os.Rename(m("d/.f.tmp"), m("d/f")); err != nil {
		t.Fatal(err)
	}
	<-gate.started
	lists.hold.Store(true)
	listed := make(chan []string, 1)
	go func() {
		ents, _ := os.ReadDir(m("d"))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		listed <- names
	}()
	<-lists.sent // the server answered with the old name still there
	close(gate.release)
	eventually(t, 10*time.Second, func() error {
		if _, err := r.client.Head(context.Background(), &transport.HeadInput{Key: "d/.f.tmp"}); !errors.Is(err, transport.ErrNotFound) {
			return fmt.Errorf("old name: %v", err)
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond) // the delete's end, after its answer
	close(lists.release)
	if names := <-listed; len(names) != 1 || names[0] != "f" {
		t.Errorf("listing answered after the delete: %q, want [f]", names)
	}
}

// failingDeleteBucket holds the DELETEs of one key until release is
// closed, then refuses them.
type failingDeleteBucket struct {
	*gatedDeleteBucket
}

func (b failingDeleteBucket) Delete(ctx context.Context, key string) error {
	if key == b.key {
		if err := b.hold(ctx); err != nil {
			return err
		}
		return fmt.Errorf("delete %s: %w", key, transport.ErrAccessDenied)
	}
	return b.Bucket.Delete(ctx, key)
}

// renameWithHeldFailingDelete mounts a bucket holding d/.f.tmp = data
// whose DELETEs of that key are held and then refused, renames it to d/f,
// and returns once the DELETE of the old name has arrived.
func renameWithHeldFailingDelete(t *testing.T, data []byte, opt cfs.Options) (*rig, func(string) string, *gatedDeleteBucket) {
	t.Helper()
	r := newBucket(t)
	r.put("d/.f.tmp", data, nil)
	gate := newGatedDelete(r.counter, "d/.f.tmp")
	r.bucketOverride = failingDeleteBucket{gate}
	r.mount(opt)
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	if err := os.Rename(m("d/.f.tmp"), m("d/f")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gate.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no DELETE of the old name was sent")
	}
	return r, m, gate
}

// When the delete of a renamed file's old name fails after the rename has
// returned, nothing is lost: the object stays under the old name, which
// comes back in lookups and listings as the bucket has it, and the new
// name holds the same data.
func TestRenameWhoseDeleteFailsKeepsTheOldName(t *testing.T) {
	data := []byte("kept under both names when the delete is refused")
	r, m, gate := renameWithHeldFailingDelete(t, data, cfs.Options{NegativeTTL: time.Hour})
	// While the delete is pending the old name is absent, and the kernel
	// keeps that answer (for the hour of NegativeTTL) unless told otherwise.
	if _, err := os.Stat(m("d/.f.tmp")); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("the old name while its delete is pending: %v, want ENOENT", err)
	}
	close(gate.release)
	eventually(t, 10*time.Second, func() error {
		got, err := os.ReadFile(m("d/.f.tmp"))
		if err != nil || !bytes.Equal(got, data) {
			return fmt.Errorf("the old name after its delete failed: %q, %v", got, err)
		}
		return nil
	})
	ents, err := os.ReadDir(m("d"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 2 || names[0] != ".f.tmp" || names[1] != "f" {
		t.Errorf("listing after the failed delete: %q, want [.f.tmp f]", names)
	}
	if got, err := os.ReadFile(m("d/f")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the new name: %q, %v", got, err)
	}
	// The mount goes on: rmdir of the directory is refused for the file
	// left in it, not blocked by the failed delete.
	if err := os.Remove(m("d")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir with the old name left in it: %v, want ENOTEMPTY", err)
	}
	if err := r.unmount(); err != nil {
		t.Fatal(err)
	}
}

// A lookup of the old name that must ask the bucket waits for the pending
// delete, with the kernel holding the directory's lock; when that delete
// fails, telling the kernel to drop its entry of the name (which takes the
// same lock) must not wait for the lookup.
func TestLookupWaitingForAFailedDeleteReturns(t *testing.T) {
	data := []byte("looked up while its delete fails")
	// Absence is not cached: a lookup of the old name goes to the bucket.
	r, m, gate := renameWithHeldFailingDelete(t, data, cfs.Options{NegativeTTL: time.Millisecond})
	time.Sleep(5 * time.Millisecond) // the rename's negative entry expires
	looked := make(chan error, 1)
	go func() {
		got, err := os.ReadFile(m("d/.f.tmp"))
		if err == nil && !bytes.Equal(got, data) {
			err = fmt.Errorf("read %q", got)
		}
		looked <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); r.fsys.DeleteWaiters() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the lookup of the old name did not wait for its delete")
		}
		time.Sleep(time.Millisecond)
	}
	close(gate.release)
	select {
	case err := <-looked:
		if err != nil {
			t.Errorf("the old name after its delete failed: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the lookup of the old name never returned")
	}
	if err := r.unmount(); err != nil {
		t.Fatal(err)
	}
}
