package transport

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"
)

// listingKeys are n keys in a few folders, with names that need escaping:
// spaces, unicode, + % # ? & = ~ * ( ).
func listingKeys(n int) []string {
	dirs := []string{"dir 0", "dir+1", "dïr%2", "dir#3", "dir?4"}
	names := []string{"plain", "with space", "ünïcødé-日本", "plus+sign", "per%cent", "per%20cent",
		"hash#tag", "quest?ion", "amp&er=sand", "tilde~", "star*(paren)"}
	keys := make([]string, 0, n)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%04d", names[i%len(names)], i)
		switch {
		case i%50 == 0:
			keys = append(keys, "root "+name)
		case i%7 == 0:
			keys = append(keys, dirs[i%len(dirs)]+"/sub+dir/"+name)
		default:
			keys = append(keys, dirs[i%len(dirs)]+"/"+name)
		}
	}
	return keys
}

func putMany(t *testing.T, b contractBucket, keys []string) {
	t.Helper()
	g, ctx := errgroup.WithContext(testCtx(t))
	g.SetLimit(16)
	for _, k := range keys {
		g.Go(func() error {
			_, err := b.Put(ctx, &PutInput{Key: k, Body: strings.NewReader(k), Size: int64(len(k))})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// listAll follows a listing to its end, page by page.
func listAll(t *testing.T, b contractBucket, in ListInput) (objs []ObjectInfo, prefixes []string, pages int) {
	t.Helper()
	ctx := testCtx(t)
	for {
		out, err := b.List(ctx, &in)
		if err != nil {
			t.Fatalf("list %+v: %v", in, err)
		}
		pages++
		if in.MaxKeys > 0 && len(out.Objects)+len(out.CommonPrefixes) > in.MaxKeys {
			t.Errorf("page of %d entries for MaxKeys %d", len(out.Objects)+len(out.CommonPrefixes), in.MaxKeys)
		}
		objs = append(objs, out.Objects...)
		prefixes = append(prefixes, out.CommonPrefixes...)
		if out.NextToken == "" {
			return objs, prefixes, pages
		}
		in.Token = out.NextToken
		if pages > 10000 {
			t.Fatal("listing does not end")
		}
	}
}

func contractListPagination(t *testing.T, b contractBucket) {
	keys := listingKeys(2500)
	putMany(t, b, keys)
	want := slices.Clone(keys)
	sort.Strings(want)
	objs, prefixes, pages := listAll(t, b, ListInput{MaxKeys: 97})
	if len(prefixes) != 0 {
		t.Errorf("prefixes without a delimiter: %v", prefixes[:min(5, len(prefixes))])
	}
	if pages < 2500/97 {
		t.Errorf("%d pages for 2,500 keys at 97 a page", pages)
	}
	got := make([]string, len(objs))
	for i, o := range objs {
		got[i] = o.Key
		if o.Size != int64(len(o.Key)) || o.ETag != md5hexOf([]byte(o.Key)) || o.LastModified.IsZero() {
			t.Errorf("entry %+v", o)
		}
	}
	if !slices.Equal(got, want) {
		seen := map[string]int{}
		for _, k := range got {
			seen[k]++
		}
		for _, k := range want {
			if seen[k] != 1 {
				t.Errorf("key %q listed %d times", k, seen[k])
			}
		}
		t.Fatalf("listing: %d keys, want %d", len(got), len(want))
	}
	// The same listing through ListPages, which asks one page ahead.
	var paged []string
	err := ListPages(testCtx(t), b, ListInput{MaxKeys: 97}, func(out *ListOutput) error {
		for _, o := range out.Objects {
			paged = append(paged, o.Key)
		}
		return nil
	})
	if err != nil || !slices.Equal(paged, want) {
		t.Fatalf("ListPages: %d keys, want %d (%v)", len(paged), len(want), err)
	}
	// A prefix with characters that need escaping.
	objs, _, _ = listAll(t, b, ListInput{Prefix: "dïr%2/", MaxKeys: 50})
	n := 0
	for _, k := range keys {
		if strings.HasPrefix(k, "dïr%2/") {
			n++
		}
	}
	if len(objs) != n || n == 0 {
		t.Errorf("prefix dïr%%2/: %d keys, want %d", len(objs), n)
	}
}

func contractListDelimiters(t *testing.T, b contractBucket) {
	keys := listingKeys(400)
	putMany(t, b, keys)
	for _, tc := range []struct {
		prefix string
		max    int
	}{{"", 0}, {"", 2}, {"dir+1/", 0}, {"dir+1/", 3}, {"dir?4/", 1}, {"dir#3/sub+dir/", 5}, {"nothing/", 0}} {
		var wantObjs, wantPrefixes []string
		seen := map[string]bool{}
		for _, k := range keys {
			rest, ok := strings.CutPrefix(k, tc.prefix)
			if !ok {
				continue
			}
			if i := strings.Index(rest, "/"); i >= 0 {
				p := tc.prefix + rest[:i+1]
				if !seen[p] {
					seen[p] = true
					wantPrefixes = append(wantPrefixes, p)
				}
				continue
			}
			wantObjs = append(wantObjs, k)
		}
		sort.Strings(wantObjs)
		sort.Strings(wantPrefixes)
		objs, prefixes, _ := listAll(t, b, ListInput{Prefix: tc.prefix, Delimiter: "/", MaxKeys: tc.max})
		var gotObjs []string
		for _, o := range objs {
			gotObjs = append(gotObjs, o.Key)
		}
		if !slices.Equal(gotObjs, wantObjs) {
			t.Errorf("prefix %q max %d: objects %d, want %d", tc.prefix, tc.max, len(gotObjs), len(wantObjs))
		}
		if !slices.Equal(prefixes, wantPrefixes) {
			t.Errorf("prefix %q max %d: prefixes %q, want %q", tc.prefix, tc.max, prefixes, wantPrefixes)
		}
	}
	// The lookup the filesystem does: is "dir 0" a directory?
	out, err := b.List(testCtx(t), &ListInput{Prefix: "dir 0/", Delimiter: "/", MaxKeys: 1})
	if err != nil || len(out.Objects)+len(out.CommonPrefixes) != 1 || out.NextToken == "" {
		t.Errorf("max-keys 1 lookup: %+v %v", out, err)
	}
}

func contractDeleteMany(t *testing.T, b contractBucket) {
	ctx := testCtx(t)
	var keys []string
	for i := 0; i < 1203; i++ {
		keys = append(keys, fmt.Sprintf("del/%d ü+%%&<>\"'", i))
	}
	putMany(t, b, keys)
	mustPut(t, b, "keep", []byte("k"), nil)
	failed, err := b.DeleteMany(ctx, append(keys, "del/missing-1", "del/missing-2"))
	if err != nil || len(failed) != 0 {
		t.Fatalf("delete many: %v %+v", err, failed)
	}
	objs, _, _ := listAll(t, b, ListInput{})
	if len(objs) != 1 || objs[0].Key != "keep" {
		t.Errorf("left after delete many: %d keys", len(objs))
	}
	if failed, err := b.DeleteMany(ctx, nil); err != nil || len(failed) != 0 {
		t.Errorf("delete nothing: %v %v", failed, err)
	}
	if got, _ := mustGet(t, b, &GetInput{Key: "keep", Length: -1}); !bytes.Equal(got, []byte("k")) {
		t.Errorf("keep: %q", got)
	}
}

// TestClientStats checks the per-operation counters and the hook.
func TestClientStats(t *testing.T) {
	var hooked = make(chan string, 100)
	c := newS3Client(t, func(cfg *Config) { cfg.OnRequest = func(op string) { hooked <- op } })
	ctx := testCtx(t)
	var keys []string
	for i := 0; i < 1001; i++ {
		keys = append(keys, fmt.Sprint("k", i))
	}
	if _, err := c.DeleteMany(ctx, keys); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, &PutInput{Key: "a", Body: strings.NewReader("a"), Size: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Head(ctx, &HeadInput{Key: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(ctx, &ListInput{}); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st["DeleteMany"] != 2 || st["PUT"] != 1 || st["HEAD"] != 1 || st["LIST"] != 1 || st["GET"] != 0 {
		t.Errorf("stats %v", st)
	}
	close(hooked)
	var ops []string
	for op := range hooked {
		ops = append(ops, op)
	}
	if !slices.Equal(ops, []string{"DeleteMany", "DeleteMany", "PUT", "HEAD", "LIST"}) {
		t.Errorf("hook saw %v", ops)
	}
}
