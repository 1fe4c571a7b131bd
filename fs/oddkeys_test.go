package fs_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	cfs "cosmount/fs"
)

// Keys that cannot be a file name (docs/semantics.md, "Keys that cannot be
// a file name"). The test server refuses to store them, so they are seeded
// into the in-process COS bucket, which the mount reaches through the real
// cos-flavour client, and checked through a real mount.

var (
	long300 = strings.Repeat("L", 300)
	name255 = strings.Repeat("m", 255)
)

// oddKeys are seeded, with data "data of KEY".
var oddKeys = []string{
	// normal keys
	"a.txt", "sub/b.txt", name255,
	// both a and a/... exist: a is the directory
	"dup", "dup/z", "dupm", "dupm/",
	// an empty component
	"e//f", "/lead",
	// "." and ".." components
	"g/./h", "g/../i", "g/ok", "./j", "../k",
	// a component longer than 255 bytes
	long300, "long/" + long300, "long/ok", "deep/" + long300 + "/x", "deep/ok",
	// a NUL byte
	"n\x00", "nul/a\x00b", "nul/ok",
}

// oddWarned is the key each rule logs, once, for the seeded keys.
var oddWarned = []string{
	"dup", "dupm", "e//", "/", "g/./", "g/../", "./", "../",
	long300, "long/" + long300, "deep/" + long300 + "/", "n\x00", "nul/a\x00b",
}

// oddTree is what a walk of the mount finds.
var oddTree = []string{
	"a.txt", "deep/", "deep/ok", "dup/", "dup/z", "dupm/", "e/", "g/", "g/ok",
	"long/", "long/ok", name255, "nul/", "nul/ok", "sub/", "sub/b.txt",
}

func TestOddKeys(t *testing.T) {
	// With pages of one entry, "dup" (the object) and "dup/" (the prefix)
	// come in different LIST pages, and every odd key has a page alone.
	for _, pageSize := range []int{0, 1} {
		name := "default pages"
		if pageSize > 0 {
			name = "pages of one"
		}
		t.Run(name, func(t *testing.T) { testOddKeys(t, pageSize) })
	}
}

func testOddKeys(t *testing.T, pageSize int) {
	r, fake := newCOSFakeBucket(t)
	for _, k := range oddKeys {
		data := []byte("data of " + k)
		if strings.HasSuffix(k, "/") {
			data = nil
		}
		fake.Put(k, data, nil)
	}
	fake.SetMaxKeys(pageSize)
	warns := &warnCounter{n: map[string]int{}, next: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})}
	r.mount(cfs.Options{Logger: slog.New(warns)})
	mnt := r.mnt

	// Listings, twice: the second from caches must say the same, and log
	// nothing more.
	for range 2 {
		wantRoot := []string{"a.txt", "deep/", "dup/", "dupm/", "e/", "g/", "long/", name255, "nul/", "sub/"}
		if got := readDirNames(t, mnt); !reflect.DeepEqual(got, wantRoot) {
			t.Errorf("root listing:\n got %q\nwant %q", got, wantRoot)
		}
		for dir, want := range map[string][]string{
			"dup":  {"z"},
			"dupm": nil,
			"e":    nil,
			"g":    {"ok"},
			"long": {"ok"},
			"deep": {"ok"},
			"nul":  {"ok"},
			"sub":  {"b.txt"},
		} {
			if got := readDirNames(t, filepath.Join(mnt, dir)); !reflect.DeepEqual(got, want) {
				t.Errorf("listing of %s: got %q want %q", dir, got, want)
			}
		}
	}

	if pageSize > 0 {
		paged := 0
		for _, rec := range fake.Records() {
			if rec.Method == "GET" && strings.Contains(rec.URI, "marker=") {
				paged++
			}
		}
		if paged < len(oddKeys) {
			t.Errorf("%d LIST pages after the first, want at least %d", paged, len(oddKeys))
		}
	}

	// A walk stats every entry (what `ls -lR` and `find` do) and finds
	// exactly the tree the rules leave.
	var walked []string
	err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walk %s: %v", p, err)
			return nil
		}
		if p == mnt {
			return nil
		}
		if _, err := d.Info(); err != nil {
			t.Errorf("stat %s: %v", p, err)
		}
		rel, _ := filepath.Rel(mnt, p)
		if d.IsDir() {
			rel += "/"
		}
		walked = append(walked, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(walked)
	if !reflect.DeepEqual(walked, oddTree) {
		t.Errorf("walk:\n got %q\nwant %q", walked, oddTree)
	}

	// Every file the rules leave reads whole.
	for _, p := range oddTree {
		if strings.HasSuffix(p, "/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(mnt, p))
		if err != nil || string(b) != "data of "+p {
			t.Errorf("read %s: %q, %v", p, b, err)
		}
	}

	// Lookups of the odd names.
	for _, d := range []string{"dup", "dupm", "e", "g"} {
		if st, err := os.Stat(filepath.Join(mnt, d)); err != nil || !st.IsDir() {
			t.Errorf("stat %s: %v, want a directory", d, err)
		}
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "dup")); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("read of dup (the object behind the directory): %v, want EISDIR", err)
	}
	for p, want := range map[string]syscall.Errno{
		long300:                  syscall.ENAMETOOLONG,
		"long/" + long300:        syscall.ENAMETOOLONG,
		"deep/" + long300:        syscall.ENAMETOOLONG,
		"deep/" + long300 + "/x": syscall.ENAMETOOLONG,
		"e/f":                    syscall.ENOENT, // "e//f" is not "e/f"
		"g/h":                    syscall.ENOENT, // the kernel resolves g/./h to g/h
		"i":                      syscall.ENOENT, // nor g/../i to i
		"j":                      syscall.ENOENT,
		"lead":                   syscall.ENOENT,
		"n":                      syscall.ENOENT,
	} {
		if _, err := os.Stat(filepath.Join(mnt, p)); !errors.Is(err, want) {
			t.Errorf("stat %.40s: %v, want %v", p, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(mnt, name255)); err != nil {
		t.Errorf("stat of a 255-byte name: %v", err)
	}

	// Each odd key is logged once, whatever the number of listings and
	// lookups.
	got := warns.counts()
	for _, k := range oddWarned {
		if got[k] != 1 {
			t.Errorf("key %.40q logged %d times, want once", k, got[k])
		}
	}
	for k, n := range got {
		if !slices.Contains(oddWarned, k) {
			t.Errorf("unexpected warning (%d) for key %.40q", n, k)
		}
	}
}

// TestOddKeysChanges: what changes through the mount do next to keys that
// cannot be shown. They are never lost or deleted behind the user's back:
// a directory holding only such keys looks empty but is not (rmdir fails
// with ENOTEMPTY, as with gcsfuse), and renaming a directory moves them
// along with the rest.
func TestOddKeysChanges(t *testing.T) {
	r, fake := newCOSFakeBucket(t)
	for _, k := range oddKeys {
		fake.Put(k, []byte("data of "+k), nil)
	}
	r.mount(cfs.Options{})
	mnt := r.mnt
	at := func(p string) string { return filepath.Join(mnt, p) }

	if err := os.Remove(at("e")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir e (holding e//f): %v, want ENOTEMPTY", err)
	}
	if err := os.Remove(at("g/ok")); err != nil {
		t.Fatal(err)
	}
	if got := readDirNames(t, at("g")); got != nil {
		t.Errorf("g after rm g/ok: %q", got)
	}
	if err := os.Remove(at("g")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir g (holding g/./h): %v, want ENOTEMPTY", err)
	}
	if err := os.RemoveAll(at("long")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rm -r long (holding a long name): %v, want ENOTEMPTY", err)
	}
	for _, k := range []string{"e//f", "g/./h", "g/../i", "long/" + long300} {
		if _, ok := fake.Object(k); !ok {
			t.Errorf("%.40q was deleted", k)
		}
	}

	// Renaming a directory moves the keys it cannot show too.
	if err := os.Rename(at("deep"), at("deep2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(at("e"), at("e2")); err != nil {
		t.Fatal(err)
	}
	for k, moved := range map[string]bool{"deep/" + long300 + "/x": false, "deep2/" + long300 + "/x": true,
		"deep2/ok": true, "e//f": false, "e2//f": true} {
		if _, ok := fake.Object(k); ok != moved {
			t.Errorf("after rename, %.40q exists: %v", k, ok)
		}
	}

	// Once the directory "dup" is moved away, the object "dup" it hid is
	// a file again.
	if err := os.Rename(at("dup"), at("dupx")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(at("dup")); err != nil || string(b) != "data of dup" {
		t.Errorf("dup after its directory moved: %q, %v", b, err)
	}
	if b, err := os.ReadFile(at("dupx/z")); err != nil || string(b) != "data of dup/z" {
		t.Errorf("dupx/z: %q, %v", b, err)
	}

	// A name the mount could not show cannot be made either.
	if err := os.Rename(at("a.txt"), at("sub/"+long300)); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("rename to a 300-byte name: %v, want ENAMETOOLONG", err)
	}
	if err := os.WriteFile(at(long300), nil, 0o644); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("create of a 300-byte name: %v, want ENAMETOOLONG", err)
	}
	if err := os.WriteFile(at("dupm"), []byte("x"), 0o644); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("write to dupm (a directory hiding an object): %v, want EISDIR", err)
	}
	if _, ok := fake.Object("a.txt"); !ok {
		t.Error("a.txt lost by a refused rename")
	}
}

// warnCounter counts the warnings the mount logs, by their "key", and
// passes them on.
type warnCounter struct {
	mu   sync.Mutex
	n    map[string]int
	next slog.Handler
}

func (w *warnCounter) Enabled(ctx context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnCounter) Handle(ctx context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "key" {
			w.mu.Lock()
			w.n[a.Value.String()]++
			w.mu.Unlock()
		}
		return true
	})
	return w.next.Handle(ctx, r)
}

func (w *warnCounter) WithAttrs(as []slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler         { return w }

func (w *warnCounter) counts() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[string]int, len(w.n))
	for k, v := range w.n {
		m[k] = v
	}
	return m
}

// Names no key can hold are refused when a file, a directory, a symlink
// or a rename would make them (EILSEQ for bytes that are not UTF-8,
// ENAMETOOLONG for a key over 1,024 bytes), rather than accepted and then
// never uploaded; and looking one up finds nothing without a request.
func TestNamesNoKeyCanHoldAreRefused(t *testing.T) {
	r := newBucket(t)
	r.put("ok", []byte("x"), nil)
	r.mount(cfs.Options{})
	m := func(p string) string { return filepath.Join(r.mnt, p) }
	bad := "caf\xe9"
	if _, err := os.Stat(m(bad)); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat of a name that is not UTF-8: %v, want ENOENT", err)
	}
	if err := os.WriteFile(m(bad), []byte("data"), 0o644); !errors.Is(err, syscall.EILSEQ) {
		t.Errorf("create: %v, want EILSEQ", err)
	}
	if err := os.Mkdir(m(bad), 0o755); !errors.Is(err, syscall.EILSEQ) {
		t.Errorf("mkdir: %v, want EILSEQ", err)
	}
	if err := os.Symlink("ok", m(bad)); !errors.Is(err, syscall.EILSEQ) {
		t.Errorf("symlink: %v, want EILSEQ", err)
	}
	if err := os.Rename(m("ok"), m(bad)); !errors.Is(err, syscall.EILSEQ) {
		t.Errorf("rename: %v, want EILSEQ", err)
	}
	if b, err := os.ReadFile(m("ok")); err != nil || string(b) != "x" {
		t.Errorf("ok after the refused rename: %q %v", b, err)
	}
	// Five levels of 200 bytes: each name is fine, the key is too long.
	dir := ""
	for i := range 5 {
		dir = filepath.Join(dir, strings.Repeat(string(rune('a'+i)), 200))
		if err := os.Mkdir(m(dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(m(filepath.Join(dir, strings.Repeat("f", 30))), nil, 0o644); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("create with a key over 1,024 bytes: %v, want ENAMETOOLONG", err)
	}
	if err := os.WriteFile(m(filepath.Join(dir, "f")), []byte("y"), 0o644); err != nil {
		t.Errorf("create with a key of %d bytes: %v", len(dir)+2, err)
	}
	// Looked up on a new mount, where the directories are the bucket's.
	r.unmount()
	r.mount(cfs.Options{})
	if _, err := os.Stat(m(dir)); err != nil {
		t.Fatal(err)
	}
	r.counter.reset()
	if _, err := os.Stat(m(filepath.Join(dir, strings.Repeat("f", 30)))); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat of a key over 1,024 bytes: %v, want ENOENT", err)
	}
	if n := r.counter.heads.Load() + r.counter.lists.Load(); n != 0 {
		t.Errorf("stat of a key over 1,024 bytes sent %d requests, want none", n)
	}
}
