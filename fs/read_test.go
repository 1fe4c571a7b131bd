package fs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sync/errgroup"

	cfs "cosmount/fs"
	"cosmount/internal/testrig"
	"cosmount/transport"
)

func readDirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Keys the test server cannot store ("a" beside "a/b", "a//b", "a/./b",
// components over 255 bytes) are covered over the COS fake (oddkeys_test.go).
func TestListingNestedMarkersAndOddNames(t *testing.T) {
	r := newBucket(t)
	keys := []string{
		"a.txt", "dir1/b.txt", "dir1/sub/c.txt", "marker/", "marker/x", "emptymarker/",
		"implicit/deep/y", "sp ace.txt", "uni-日本語.txt", "plus+.txt", "pct%41.txt", "hash#.txt",
		"q?.txt", "amp&=.txt", "g/ok",
	}
	for _, k := range keys {
		data := []byte("data of " + k)
		if strings.HasSuffix(k, "/") {
			data = nil // a directory marker
		}
		r.put(k, data, nil)
	}
	r.mount(cfs.Options{})

	got := readDirNames(t, r.mnt)
	want := []string{"a.txt", "amp&=.txt", "dir1/", "emptymarker/", "g/", "hash#.txt",
		"implicit/", "marker/", "pct%41.txt", "plus+.txt", "q?.txt", "sp ace.txt", "uni-日本語.txt"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("root listing:\n got %q\nwant %q", got, want)
	}
	for dir, want := range map[string][]string{
		"dir1":          {"b.txt", "sub/"},
		"dir1/sub":      {"c.txt"},
		"marker":        {"x"},
		"emptymarker":   nil,
		"implicit":      {"deep/"},
		"implicit/deep": {"y"},
		"g":             {"ok"},
	} {
		if got := readDirNames(t, filepath.Join(r.mnt, dir)); !reflect.DeepEqual(got, want) {
			t.Errorf("listing of %s: got %q want %q", dir, got, want)
		}
	}
	for _, k := range []string{"a.txt", "sp ace.txt", "uni-日本語.txt", "plus+.txt", "pct%41.txt", "hash#.txt", "q?.txt", "dir1/sub/c.txt", "marker/x"} {
		b, err := os.ReadFile(filepath.Join(r.mnt, k))
		if err != nil {
			t.Errorf("read %q: %v", k, err)
			continue
		}
		if string(b) != "data of "+k {
			t.Errorf("read %q: got %q", k, b)
		}
	}
	if _, err := os.Stat(filepath.Join(r.mnt, "nonexistent")); !os.IsNotExist(err) {
		t.Errorf("stat of a missing name: %v, want ENOENT", err)
	}
}

func TestAttributesFromMetadata(t *testing.T) {
	r := newBucket(t)
	r.put("s3fs", []byte("x"), map[string]string{"mode": "33261", "uid": "1234", "gid": "5678", "mtime": "1600000000"})
	r.put("rclone", []byte("x"), map[string]string{"mtime": "1600000000.5"})
	r.put("zero", []byte("x"), map[string]string{"mode": "0"})
	r.put("plain", []byte("hello"), nil)
	r.put("link", []byte("plain"), map[string]string{"mode": fmt.Sprint(syscall.S_IFLNK | 0o777)})
	r.mount(cfs.Options{UID: 42, GID: 43})

	stat := func(name string) *syscall.Stat_t {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(r.mnt, name), &st); err != nil {
			t.Fatalf("lstat %s: %v", name, err)
		}
		return &st
	}
	s := stat("s3fs")
	if s.Mode != 0o100755 || s.Uid != 1234 || s.Gid != 5678 || s.Mtim.Sec != 1600000000 {
		t.Errorf("s3fs-style metadata: mode %o uid %d gid %d mtime %d", s.Mode, s.Uid, s.Gid, s.Mtim.Sec)
	}
	s = stat("rclone")
	if s.Mtim.Sec != 1600000000 || s.Mtim.Nsec != 500000000 {
		t.Errorf("rclone mtime: got %d.%09d", s.Mtim.Sec, s.Mtim.Nsec)
	}
	s = stat("zero")
	if s.Mode&0o777 == 0 {
		t.Errorf("mode 0 metadata gave mode %o: objects must stay readable", s.Mode)
	}
	s = stat("plain")
	if s.Mode != 0o100644 || s.Uid != 42 || s.Gid != 43 || s.Size != 5 {
		t.Errorf("plain object: mode %o uid %d gid %d size %d", s.Mode, s.Uid, s.Gid, s.Size)
	}
	if d := time.Since(time.Unix(s.Mtim.Sec, 0)); d < -time.Minute || d > 10*time.Minute {
		t.Errorf("plain object's mtime %v is not its upload time", time.Unix(s.Mtim.Sec, 0))
	}
	s = stat("link")
	if s.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		t.Errorf("symlink object: mode %o", s.Mode)
	}
	if target, err := os.Readlink(filepath.Join(r.mnt, "link")); err != nil || target != "plain" {
		t.Errorf("readlink: %q %v", target, err)
	}
	if b, err := os.ReadFile(filepath.Join(r.mnt, "link")); err != nil || string(b) != "hello" {
		t.Errorf("read through symlink: %q %v", b, err)
	}
	st := stat(".")
	if st.Mode != syscall.S_IFDIR|0o755 {
		t.Errorf("root mode %o", st.Mode)
	}
}

func TestReadWholeFilesAndRandomRanges(t *testing.T) {
	r := newBucket(t)
	sizes := []int{0, 1, 4095, 1<<20 - 1, 1 << 20, 1<<20 + 1, 5<<20 + 17}
	rng := rand.New(rand.NewSource(1))
	data := map[string][]byte{}
	for _, n := range sizes {
		b := make([]byte, n)
		rng.Read(b)
		k := fmt.Sprintf("f%d", n)
		data[k] = b
		r.put(k, b, nil)
	}
	r.mount(cfs.Options{})
	for k, want := range data {
		got, err := os.ReadFile(filepath.Join(r.mnt, k))
		if err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Fatalf("%s: content differs (%d bytes read, %d stored)", k, len(got), len(want))
		}
	}
	big := data[fmt.Sprintf("f%d", 5<<20+17)]
	f, err := os.Open(filepath.Join(r.mnt, fmt.Sprintf("f%d", 5<<20+17)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; i < 200; i++ {
		off := rng.Int63n(int64(len(big)))
		n := rng.Intn(3<<20) + 1
		buf := make([]byte, n)
		got, err := f.ReadAt(buf, off)
		end := min(off+int64(n), int64(len(big)))
		if int64(got) != end-off {
			t.Fatalf("ReadAt(%d, %d): %d bytes, %v", off, n, got, err)
		}
		if !bytes.Equal(buf[:got], big[off:end]) {
			t.Fatalf("ReadAt(%d, %d): content differs", off, n)
		}
	}
}

func TestLargeFileReadTwiceSecondFromCache(t *testing.T) {
	if testing.Short() {
		t.Skip("2 GiB object")
	}
	r := newBucket(t)
	const size = 2<<30 + 12345
	r.putLarge("big", size)
	r.mount(cfs.Options{ReadCacheSize: 64 << 20})
	p := filepath.Join(r.mnt, "big")
	const bs = 1 << 20 // the unit the page cache is checked in
	blocks := int64(size / bs)
	var evictedAfterPass1 int64
	for pass := 1; pass <= 2; pass++ {
		r.counter.reset()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		var evictedAtOpen int64
		if pass == 2 {
			evictedAtOpen = evictedBlocks(t, f, size, bs)
		}
		checkPattern(t, f, size)
		evictedAfter := evictedBlocks(t, f, size, bs)
		if pass == 1 {
			evictedAfterPass1 = evictedAfter
		}
		f.Close()
		gets, bytes := r.counter.gets.Load(), r.counter.getBytes.Load()
		t.Logf("pass %d: %d GETs for %d MiB", pass, gets, bytes>>20)
		if pass == 1 {
			// Fetched once, in runs of blocks: a GET brings 1 MiB or more
			// on average, however many readahead runs were dropped.
			if gets == 0 || gets > size/(1<<20) {
				t.Errorf("first read sent %d GETs for %d MiB; want sequential reads fetched in runs of blocks", gets, size>>20)
			}
			if bytes > size+size/20 {
				t.Errorf("first read fetched %d bytes of a %d-byte object", bytes, size)
			}
		}
		if pass == 2 {
			// Opening the unchanged object again must keep the page cache;
			// the kernel itself may evict pages under memory pressure, at
			// the open or during the read, and those are rightly read
			// again.
			t.Logf("blocks not in the page cache: %d after the first read, %d at the second open, %d after it", evictedAfterPass1, evictedAtOpen, evictedAfter)
			if evictedAtOpen > evictedAfterPass1+blocks/20 {
				t.Errorf("the second open dropped the page cache: %d blocks missing, %d before it", evictedAtOpen, evictedAfterPass1)
			}
			// What the kernel lost it asks for again, and a run of
			// missing pages read in order starts a readahead window
			// that also fetches pages still cached (cosmount cannot see
			// the page cache): under the race detector on a loaded
			// machine the kernel loses 5 to 1,320 of the 2,048 MiB
			// during the first read (this machine pages out memory not
			// touched for a minute), and each run of lost pages can
			// cost a window. Only when it lost little does the amount
			// fetched tell anything: a dropped page cache would fetch
			// all of it.
			if lost := max(evictedAtOpen, evictedAfter); lost < blocks/20 && bytes > size*3/4 {
				t.Errorf("second read of an unchanged object fetched %d MiB with %d MiB out of the page cache", bytes>>20, lost)
			}
		}
	}
}

// evictedBlocks counts the blockSize blocks of f that are not wholly in the
// page cache.
func evictedBlocks(t *testing.T, f *os.File, size, blockSize int64) int64 {
	t.Helper()
	in := testrig.Resident(t, f, size)
	per := int(blockSize / int64(os.Getpagesize()))
	var n int64
	for b := 0; b < len(in); b += per {
		for _, ok := range in[b:min(b+per, len(in))] {
			if !ok {
				n++
				break
			}
		}
	}
	return n
}

func TestObjectChangedBehindTheMountSeenAfterTTL(t *testing.T) {
	r := newBucket(t)
	r.put("f", []byte("version one"), nil)
	r.mount(cfs.Options{StatTTL: 500 * time.Millisecond, NegativeTTL: 500 * time.Millisecond})
	p := filepath.Join(r.mnt, "f")
	if b, err := os.ReadFile(p); err != nil || string(b) != "version one" {
		t.Fatalf("first read: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(r.mnt, "new")); !os.IsNotExist(err) {
		t.Fatalf("new: %v", err)
	}
	r.put("f", []byte("version two, longer"), nil)
	r.put("new", []byte("n"), nil)
	eventually(t, 10*time.Second, func() error {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != "version two, longer" {
			return fmt.Errorf("after the TTL: read %q %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(r.mnt, "new")); err != nil {
			return fmt.Errorf("new object not seen after the negative TTL: %v", err)
		}
		return nil
	})
}

func TestListingRequestCounts(t *testing.T) {
	const n = 10000
	r := newBucket(t)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("big/file-%05d", i)
	}
	r.putMany(keys, func(i int) []byte { return []byte{byte(i)} })
	for _, fast := range []bool{false, true} {
		t.Run(fmt.Sprintf("fast-list=%v", fast), func(t *testing.T) {
			r.counter = &countingBucket{Bucket: r.client}
			r.t = t
			// A TTL long enough that no entry expires while 10,000 HEADs
			// go out on a slow machine (which would look some up again).
			r.mount(cfs.Options{FastList: fast, StatTTL: 10 * time.Minute})
			out, err := exec.Command("ls", "-l", filepath.Join(r.mnt, "big")).CombinedOutput()
			if err != nil {
				t.Fatalf("ls -l: %v: %s", err, out)
			}
			if lines := strings.Count(string(out), "\n"); lines != n+1 {
				t.Fatalf("ls -l printed %d lines, want %d", lines, n+1)
			}
			heads, lists, maxInflight := r.counter.heads.Load(), r.counter.lists.Load(), r.counter.maxHeadsX.Load()
			t.Logf("LIST %d, HEAD %d, most HEADs in flight %d", lists, heads, maxInflight)
			if lists > 11 {
				t.Errorf("%d LIST requests, want at most 11", lists)
			}
			// One HEAD for the directory's own lookup is allowed.
			if fast {
				if heads > 1 {
					t.Errorf("--fast-list sent %d HEADs, want none per entry", heads)
				}
			} else {
				if heads > n+1 {
					t.Errorf("%d HEADs for %d objects: more than one per object", heads, n)
				}
				if maxInflight < 32 {
					t.Errorf("at most %d HEADs in flight; want them sent together (>= 32)", maxInflight)
				}
			}
		})
	}
}

// Directories of one listing page send their HEADs only when a program
// asks for a file's attributes: `find` sends none, `ls -l` one per file, all
// of a directory's together after its first stat, and `du` as many.
func TestSmallDirectoriesHeadOnlyWhenAsked(t *testing.T) {
	const dirs, per = 20, 40
	r := newBucket(t)
	var keys []string
	for d := 0; d < dirs; d++ {
		for i := 0; i < per; i++ {
			keys = append(keys, fmt.Sprintf("tree/d%02d/f%02d", d, i))
		}
	}
	r.putMany(keys, func(i int) []byte { return make([]byte, i%7) })
	r.counter = &countingBucket{Bucket: r.client}
	r.mount(cfs.Options{})
	out, err := exec.Command("find", filepath.Join(r.mnt, "tree")).CombinedOutput()
	if err != nil {
		t.Fatalf("find: %v: %s", err, out)
	}
	if lines := strings.Count(string(out), "\n"); lines != 1+dirs+dirs*per {
		t.Fatalf("find printed %d lines, want %d", lines, 1+dirs+dirs*per)
	}
	// The HEAD of tree itself (a lookup of an unknown name) is allowed.
	if heads := r.counter.heads.Load(); heads > 1 {
		t.Errorf("find sent %d HEADs; the listing is all it needs", heads)
	}
	before := r.counter.heads.Load()
	out, err = exec.Command("ls", "-l", filepath.Join(r.mnt, "tree/d03")).CombinedOutput()
	if err != nil {
		t.Fatalf("ls -l: %v: %s", err, out)
	}
	if lines := strings.Count(string(out), "\n"); lines != per+1 {
		t.Fatalf("ls -l printed %d lines, want %d", lines, per+1)
	}
	if heads := r.counter.heads.Load() - before; heads != per {
		t.Errorf("ls -l of %d files sent %d HEADs, want one each", per, heads)
	}
	if most := r.counter.maxHeadsX.Load(); most < 8 {
		t.Errorf("at most %d HEADs in flight: the directory's HEADs were not sent together", most)
	}
	// Exact attributes: the sizes ls printed are the objects'.
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
		f := strings.Fields(line)
		var i int
		if _, err := fmt.Sscanf(f[len(f)-1], "f%02d", &i); err != nil {
			t.Fatalf("ls -l line %q", line)
		}
		if want := fmt.Sprint((3*per + i) % 7); f[4] != want {
			t.Errorf("%s: size %s, want %s", f[len(f)-1], f[4], want)
		}
	}
	out, err = exec.Command("du", "-s", "--apparent-size", "-b", filepath.Join(r.mnt, "tree")).CombinedOutput()
	if err != nil {
		t.Fatalf("du: %v: %s", err, out)
	}
	want := int64(0)
	for i := range keys {
		want += int64(i % 7)
	}
	for d := -1; d < dirs; d++ { // du counts the directories' sizes too
		p := filepath.Join(r.mnt, "tree")
		if d >= 0 {
			p = filepath.Join(p, fmt.Sprintf("d%02d", d))
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want += st.Size()
	}
	if got := strings.Fields(string(out))[0]; got != fmt.Sprint(want) {
		t.Errorf("du -b says %s bytes, want %d", got, want)
	}
	if heads := r.counter.heads.Load(); heads > int64(1+dirs*per) {
		t.Errorf("%d HEADs after find, ls -l and du: more than one per object", heads)
	}
}

// The root's first listing page, which the mount sends anyway to prove the
// bucket answers, answers the first lookups of top-level names.
func TestWarmRootAnswersTopLevelLookups(t *testing.T) {
	r := newBucket(t)
	r.putMany([]string{"top.txt", "dir/inner.txt"}, func(i int) []byte { return []byte("hello") })
	r.counter = &countingBucket{Bucket: r.client}
	r.mount(cfs.Options{})
	page, err := r.client.List(context.Background(), &transport.ListInput{Delimiter: "/"})
	if err != nil {
		t.Fatal(err)
	}
	r.fsys.WarmRoot(page)
	r.counter.reset()
	if st, err := os.Stat(filepath.Join(r.mnt, "dir")); err != nil || !st.IsDir() {
		t.Fatalf("stat dir: %v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(r.mnt, "absent")); !os.IsNotExist(err) {
		t.Fatalf("stat absent: %v", err)
	}
	if n := r.counter.heads.Load() + r.counter.lists.Load(); n != 0 {
		t.Errorf("lookups of a listed directory and an absent name sent %d requests, want none", n)
	}
	if st, err := os.Stat(filepath.Join(r.mnt, "top.txt")); err != nil || st.Size() != 5 {
		t.Fatalf("stat top.txt: %v %v", st, err)
	}
	if h, l := r.counter.heads.Load(), r.counter.lists.Load(); h != 1 || l != 0 {
		t.Errorf("lookup of a listed file: %d HEAD, %d LIST; want its HEAD alone", h, l)
	}
}

// A walk over sibling directories lists the next ones ahead, several at
// once; a listing prefetched before this mount changed a name is not used.
func TestWalkPrefetchesSiblingListings(t *testing.T) {
	const dirs, per = 30, 5
	r := newBucket(t)
	var keys []string
	for d := 0; d < dirs; d++ {
		for i := 0; i < per; i++ {
			keys = append(keys, fmt.Sprintf("w/d%02d/f%d", d, i))
		}
	}
	r.putMany(keys, func(i int) []byte { return []byte("x") })
	r.counter = &countingBucket{Bucket: r.client}
	r.mount(cfs.Options{})
	out, err := exec.Command("find", filepath.Join(r.mnt, "w")).CombinedOutput()
	if err != nil {
		t.Fatalf("find: %v: %s", err, out)
	}
	if lines := strings.Count(string(out), "\n"); lines != 1+dirs+dirs*per {
		t.Fatalf("find printed %d lines, want %d", lines, 1+dirs+dirs*per)
	}
	// w's lookup, w's listing and one per subdirectory, some of them sent
	// ahead of find and together.
	if lists := r.counter.lists.Load(); lists > dirs+2 {
		t.Errorf("find sent %d LISTs for %d directories", lists, dirs+1)
	}
	if most := r.counter.maxListsX.Load(); most < 2 {
		t.Errorf("at most %d LIST in flight: no sibling listed ahead", most)
	}

	// A du-like walk: the files' HEADs go out with the prefetched listings.
	r.counter.reset()
	r.mount(cfs.Options{})
	out, err = exec.Command("du", "-s", "-b", "--apparent-size", filepath.Join(r.mnt, "w")).CombinedOutput()
	if err != nil {
		t.Fatalf("du: %v: %s", err, out)
	}
	if heads := r.counter.heads.Load(); heads > int64(1+dirs*per) {
		t.Errorf("du sent %d HEADs for %d files", heads, dirs*per)
	}

	// Prefetch d02.. by listing d00 and d01, then create a file in d05
	// through the mount: d05's listing must show it.
	r.mount(cfs.Options{})
	for _, d := range []string{"w", "w/d00", "w/d01"} {
		if _, err := os.ReadDir(filepath.Join(r.mnt, d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.mnt, "w/d05/new"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(r.mnt, "w/d05"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ents {
		found = found || e.Name() == "new"
	}
	if !found || len(ents) != per+1 {
		t.Errorf("d05 after a create: %d entries, new found %v; a stale prefetched listing was used", len(ents), found)
	}
}

// Random reads that land near each other start no readahead: each costs the
// block it needs, not a run of blocks after it.
func TestRandomReadsNearEachOtherFetchNoRuns(t *testing.T) {
	r := newBucket(t)
	r.putLarge("r", 32<<20)
	r.mount(cfs.Options{BlockSize: 256 << 10})
	f := r.openDirect("r")
	r.counter.reset()
	// 40 distinct blocks in the first 16 MiB, in a shuffled order, none at
	// offset 0 and none right after the one read before.
	rnd := rand.New(rand.NewSource(7))
	blocks := rnd.Perm(64)[:40]
	buf := unsafeAligned(4096)
	touched := map[int]bool{}
	for i, b := range blocks {
		if b == 0 || (i > 0 && b == blocks[i-1]+1) {
			continue
		}
		touched[b] = true
		readChecked(t, f, buf, int64(b)<<18+8192)
	}
	got, limit := r.counter.getBytes.Load(), int64(len(touched))<<18
	t.Logf("%d random reads of %d blocks: %d GETs, %d KiB", len(touched), len(touched), r.counter.gets.Load(), got>>10)
	if got > limit {
		t.Errorf("random reads fetched %d KiB for %d blocks of 256 KiB: readahead ran", got>>10, len(touched))
	}
}

// Readers at once, with reads spanning up to 17 blocks, while the small
// cache evicts: every read gets its own bytes. Read answers are pooled and
// their blocks pinned until the kernel has them, so a result handed back
// too early, or a block reused while it is still being sent, shows here as
// wrong bytes (or as a race under -race).
func TestConcurrentReadsWhileTheCacheEvicts(t *testing.T) {
	r := newBucket(t)
	const size = 8 << 20
	r.putLarge("c", size)
	r.mount(cfs.Options{BlockSize: 64 << 10, ReadCacheSize: 2 << 20})
	f := r.openDirect("c")
	var g errgroup.Group
	for w := range 8 {
		g.Go(func() error {
			rnd := rand.New(rand.NewSource(int64(w)))
			buf := unsafeAligned(1 << 20)
			want := make([]byte, 1<<20)
			for range 40 {
				n := (1 + rnd.Intn(256)) * 4096 // 4 KiB to 1 MiB
				off := rnd.Int63n((size-int64(n))/4096+1) * 4096
				if _, err := f.ReadAt(buf[:n], off); err != nil {
					return fmt.Errorf("read of %d at %d: %v", n, off, err)
				}
				fillPattern(want[:n], off)
				if !bytes.Equal(buf[:n], want[:n]) {
					return fmt.Errorf("read of %d at %d: wrong bytes", n, off)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Blocks a sequential reader has read through leave the read cache before
// older blocks a random reader fetched: those are worth keeping, the
// sequential reader's are in the page cache or behind it.
func TestBlocksReadThroughLeaveTheCacheFirst(t *testing.T) {
	r := newBucket(t)
	for _, k := range []string{"rnd", "seq", "more"} {
		r.putLarge(k, 8<<20)
	}
	// 16 blocks of 256 KiB, readahead one block at a time.
	r.mount(cfs.Options{BlockSize: 256 << 10, ReadCacheSize: 4 << 20, ReadaheadRun: 1, MaxReadahead: 1})
	buf := unsafeAligned(4096)
	// Four blocks read at random: the oldest in the cache.
	rnd := r.openDirect("rnd")
	for _, b := range []int64{3, 9, 5, 14} {
		readChecked(t, rnd, buf, b<<18+4096)
	}
	r.fetchesDone()
	// Eight blocks read through from the start.
	seq := r.openDirect("seq")
	block := unsafeAligned(256 << 10)
	for off := int64(0); off < 2<<20; off += 256 << 10 {
		readChecked(t, seq, block, off)
	}
	r.fetchesDone()
	// Six more blocks read at random: the cache must drop some.
	more := r.openDirect("more")
	for _, b := range []int64{2, 11, 7, 20, 16, 29} {
		readChecked(t, more, buf, b<<18+4096)
	}
	r.fetchesDone()
	r.counter.reset()
	for _, b := range []int64{3, 9, 5, 14} {
		readChecked(t, rnd, buf, b<<18+4096)
	}
	if n := r.counter.gets.Load(); n != 0 {
		t.Errorf("the first random reader's 4 blocks cost %d GETs again: the cache dropped them before the blocks read through", n)
	}
}

// openDirect opens key through the mount with O_DIRECT, so that reads reach
// cosmount as they are made; it is closed when the test ends.
func (r *rig) openDirect(key string) *os.File {
	r.t.Helper()
	f, err := os.OpenFile(filepath.Join(r.mnt, key), os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { f.Close() })
	return f
}

// readChecked reads len(buf) bytes at off and checks them against the
// pattern putLarge stores.
func readChecked(t *testing.T, f *os.File, buf []byte, off int64) {
	t.Helper()
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatalf("read at %d: %v", off, err)
	}
	want := make([]byte, len(buf))
	fillPattern(want, off)
	if !bytes.Equal(buf, want) {
		t.Fatalf("wrong bytes at %d", off)
	}
}

// fetchesDone waits until the read cache fetches nothing, readahead
// included.
func (r *rig) fetchesDone() {
	r.t.Helper()
	eventually(r.t, 10*time.Second, func() error {
		if n := r.fsys.ReadCacheFetching(); n > 0 {
			return fmt.Errorf("%d blocks still being fetched", n)
		}
		return nil
	})
}

// unsafeAligned is a buffer aligned for O_DIRECT.
func unsafeAligned(n int) []byte {
	b := make([]byte, n+4096)
	off := int(4096 - uintptr(unsafe.Pointer(&b[0]))%4096)
	return b[off%4096 : off%4096+n]
}

// Sequential readers share half of the read cache for readahead: each may
// have MaxReadahead while two or fewer read, less when more do. A reader
// stops counting at the end of its file, at a random read and at close.
func TestSequentialReadersShareTheReadahead(t *testing.T) {
	r := newBucket(t)
	const size = 64 << 20
	for i := range 4 {
		r.putLarge(fmt.Sprintf("s%d", i), size)
	}
	// 256 blocks of 256 KiB: 128 for readahead; MaxReadahead 16 MiB (64
	// blocks), runs of 16 blocks at least.
	r.mount(cfs.Options{BlockSize: 256 << 10, ReadCacheSize: 64 << 20})
	check := func(when string, streams int64, limit int) {
		t.Helper()
		if s, l := r.fsys.Streams(), r.fsys.ReadaheadLimit(); s != streams || l != limit {
			t.Fatalf("%s: %d streams with a window of %d blocks; want %d and %d", when, s, l, streams, limit)
		}
	}
	buf := unsafeAligned(1 << 20)
	var files []*os.File
	for i, limit := range []int{64, 64, 32, 32} {
		// s1 goes random later with a 4 KiB read: O_DIRECT, so that the
		// kernel does not make it a run of reads of its own.
		flags := os.O_RDONLY
		if i == 1 {
			flags |= syscall.O_DIRECT
		}
		f, err := os.OpenFile(filepath.Join(r.mnt, fmt.Sprintf("s%d", i)), flags, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := io.ReadFull(f, buf); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		check(fmt.Sprintf("%d readers", i+1), int64(i+1), limit)
	}
	checkPattern(t, io.MultiReader(bytes.NewReader(buf), files[0]), size)
	check("one reader at the end of its file", 3, 32)
	if _, err := files[1].ReadAt(buf[:4096], 60<<20); err != nil {
		t.Fatal(err)
	}
	check("one reader gone random", 2, 64)
	// The kernel sends the release after close returns.
	released := func(streams int64) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			if s := r.fsys.Streams(); s != streams {
				return fmt.Errorf("%d streams after a close, want %d", s, streams)
			}
			return nil
		})
	}
	files[2].Close()
	released(1)
	check("one closed", 1, 64)
	files[3].Close()
	released(0)
}

// When the cache drops blocks fetched ahead of a sequential reader before it
// reads them, readahead asks for them again in runs: the reader does not go
// on fetching its own blocks one read at a time.
func TestReadaheadFetchesEvictedBlocksAgainInRuns(t *testing.T) {
	r := newBucket(t)
	r.putLarge("e", 64<<20)
	r.mount(cfs.Options{BlockSize: 256 << 10})
	f := r.openDirect("e")
	buf := unsafeAligned(1 << 20)
	var off int64
	for ; off < 8<<20; off += 1 << 20 {
		readChecked(t, f, buf, off)
	}
	r.fetchesDone()
	r.fsys.PurgeReadCache()
	r.counter.reset()
	for ; off < 24<<20; off += 1 << 20 {
		readChecked(t, f, buf, off)
	}
	t.Logf("16 MiB read after the cache was purged: %d GETs, %d of at most 1 MiB", r.counter.gets.Load(), r.counter.smallGets.Load())
	if n := r.counter.smallGets.Load(); n > 2 {
		t.Errorf("%d GETs of 1 MiB or less for 16 MiB read after the cache dropped the readahead", n)
	}
}

// A handle still open on an object's old version, after a later open found
// the object replaced behind the mount, reads nothing more (ESTALE) rather
// than put the old bytes into the page cache the new opens read.
func TestOldHandleDoesNotMixVersionsIntoThePageCache(t *testing.T) {
	r := newBucket(t)
	const size = 4 << 20
	r.put("f", bytes.Repeat([]byte("A"), size), nil)
	r.mount(cfs.Options{StatTTL: 200 * time.Millisecond, NegativeTTL: 200 * time.Millisecond})
	p := filepath.Join(r.mnt, "f")
	h1, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	if _, err := io.ReadAll(h1); err != nil { // (its blocks are in the read cache now)
		t.Fatal(err)
	}
	r.put("f", bytes.Repeat([]byte("B"), size), nil)
	var h2 *os.File
	eventually(t, 10*time.Second, func() error {
		h, err := os.Open(p)
		if err != nil {
			return err
		}
		b := make([]byte, 1)
		if _, err := h.ReadAt(b, 0); err != nil || b[0] != 'B' {
			h.Close()
			return fmt.Errorf("new open reads %q (%v)", b, err)
		}
		h2 = h
		return nil
	})
	defer h2.Close()
	// The old handle's read of the second half must not fill the page
	// cache with A.
	b := make([]byte, 4096)
	if _, err := h1.ReadAt(b, size/2); !errors.Is(err, syscall.ESTALE) {
		t.Errorf("old handle's read after the object changed: %q... (%v), want ESTALE", b[:4], err)
	}
	if _, err := h2.ReadAt(b, size/2); err != nil || !bytes.Equal(b, bytes.Repeat([]byte("B"), 4096)) {
		t.Fatalf("new handle reads %q... (%v) in the second half, want B", b[:4], err)
	}
}
