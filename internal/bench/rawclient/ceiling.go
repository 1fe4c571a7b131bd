package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"cosmount/transport"
)

// ceiling measures what the client alone achieves against the server:
//
//	raw-get-single      one GET of bench/big.bin             MB/s
//	raw-get-parallel    ranged GETs of -part, -parallel in flight  MB/s
//	raw-get-parallel-warm  the same again, the server's page cache holding the object  MB/s
//	raw-put-single      one PUT of -put-size bytes            MB/s
//	raw-put-multipart   Uploader (default ChunkSize and ChunkParallelLimit)  MB/s
//	first-4k            4 KiB ranged GET on a new connection  ms
//	randread-4k-*, randread-128k-*   16 ranged GETs in flight for -rand-time: IOPS, p99 ms
//	ls                  paged LIST of bench/ls/ with delimiter, one page ahead   s
//	ls-head             that LIST, then a HEAD of every key, 128 in flight (as cosmount)  s
//	find                paged LIST of bench/tree/, no delimiter  s
func ceiling(args []string) error {
	var c common
	var part, putSize sizeFlag = 8 << 20, 0
	var parallel int
	var randTime time.Duration
	var only string
	var coldFirst bool
	fl := flag.NewFlagSet("ceiling", flag.ExitOnError)
	c.register(fl)
	fl.Var(&part, "part", "range size of the parallel GET")
	fl.IntVar(&parallel, "parallel", 16, "ranged GETs in flight")
	fl.Var(&putSize, "put-size", "bytes of the PUT measurements (default: the size of bench/big.bin)")
	fl.DurationVar(&randTime, "rand-time", 10*time.Second, "duration of each random-read run")
	fl.StringVar(&only, "only", "", "run only these groups, comma-separated: get, first, put, rand, list (default all)")
	fl.BoolVar(&coldFirst, "cold-first", false, "drop the page cache (needs root) before each first-4k, as the file systems' first read is measured")
	var coldGet bool
	fl.BoolVar(&coldGet, "cold-get", false, "drop the page cache (needs root) before the single and the parallel GET, as the file systems' cold reads are measured")
	var coldList bool
	fl.BoolVar(&coldList, "cold-list", false, "drop the page cache (needs root) before each listing measurement, as the file systems' listings are measured cold")
	var cleanPut bool
	fl.BoolVar(&cleanPut, "clean-put", false, "sync and drop the page cache (needs root) before each PUT measurement, as the file systems' writes start")
	_ = fl.Parse(args)

	ctx := context.Background()
	cl := c.client()
	info, err := cl.Head(ctx, &transport.HeadInput{Key: keyBig})
	if err != nil {
		return fmt.Errorf("head %s: %w", keyBig, err)
	}
	size := info.Size
	if putSize == 0 {
		putSize = sizeFlag(size)
	}
	want := func(g string) bool { return only == "" || slices.Contains(strings.Split(only, ","), g) }

	for _, run := range c.runNumbers() {
		if want("get") {
			// cold: the server reads the object from its disk, as it does
			// for the file systems' cold reads.
			cold := func() error { return dropCachesIf(coldGet) }
			if err := cold(); err != nil {
				return err
			}
			t := time.Now()
			n, err := getRange(ctx, cl, keyBig, 0, -1)
			c.emit("raw-get-single", run, mbps(n, time.Since(t)), "MB/s", err)

			if err := cold(); err != nil {
				return err
			}
			t = time.Now()
			n, err = parallelGet(ctx, cl, keyBig, size, int64(part), parallel)
			c.emit("raw-get-parallel", run, mbps(n, time.Since(t)), "MB/s", err)

			t = time.Now()
			n, err = parallelGet(ctx, cl, keyBig, size, int64(part), parallel)
			c.emit("raw-get-parallel-warm", run, mbps(n, time.Since(t)), "MB/s", err)
		}
		if want("first") {
			if coldFirst {
				if err := dropCaches(); err != nil {
					return err
				}
			}
			fresh := c.client() // a new connection, like a first read on a new mount
			t := time.Now()
			_, err := getRange(ctx, fresh, keyBig, size/2&^4095, 4096)
			c.emit("first-4k", run, float64(time.Since(t).Microseconds())/1000, "ms", err)
		}
		if want("put") {
			body := newPattern(int64(putSize))
			key := fmt.Sprintf("bench/raw-put-%d", run)
			// Each write starts with no dirty pages and an empty page
			// cache, as the file systems' do.
			if cleanPut {
				if err := dropCaches(); err != nil {
					return err
				}
			}
			t := time.Now()
			_, err := cl.Put(ctx, &transport.PutInput{Key: key, Body: io.NewSectionReader(body, 0, int64(putSize)), Size: int64(putSize)})
			c.emit("raw-put-single", run, mbps(int64(putSize), time.Since(t)), "MB/s", err)

			up := transport.NewUploader(cl, transport.UploaderOptions{MinPartSize: 5 << 20})
			if cleanPut {
				if err := dropCaches(); err != nil {
					return err
				}
			}
			t = time.Now()
			_, err = up.Upload(ctx, &transport.UploadInput{Key: key, BodyAt: body, Size: int64(putSize)})
			c.emit("raw-put-multipart", run, mbps(int64(putSize), time.Since(t)), "MB/s", err)
			_ = cl.Delete(ctx, key)
		}
		if want("rand") {
			for _, bs := range []int64{4 << 10, 128 << 10} {
				name := fmt.Sprintf("randread-%dk", bs>>10)
				iops, p99, err := randomReads(ctx, cl, keyBig, size, bs, 16, randTime)
				c.emit(name+"-iops", run, iops, "IOPS", err)
				c.emit(name+"-p99", run, p99, "ms", err)
			}
		}
		if want("list") {
			// cold: the server starts from an empty page cache, as it does
			// for the file systems' listings.
			cold := func() error { return dropCachesIf(coldList) }
			if err := cold(); err != nil {
				return err
			}
			t := time.Now()
			_, err := listAll(ctx, cl, prefixLs, "/")
			c.emit("ls", run, time.Since(t).Seconds(), "s", err)
			if err := cold(); err != nil {
				return err
			}
			t = time.Now()
			err = listAndHead(ctx, cl, prefixLs, 128)
			c.emit("ls-head", run, time.Since(t).Seconds(), "s", err)
			if err := cold(); err != nil {
				return err
			}
			t = time.Now()
			_, err = listAll(ctx, cl, prefixTr, "")
			c.emit("find", run, time.Since(t).Seconds(), "s", err)
		}
	}
	return nil
}

// getRange reads a range (length < 0: to the end) and discards it.
func getRange(ctx context.Context, cl *transport.Client, key string, off, length int64) (int64, error) {
	out, err := cl.Get(ctx, &transport.GetInput{Key: key, Offset: off, Length: length})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	return io.Copy(io.Discard, out.Body)
}

func parallelGet(ctx context.Context, cl *transport.Client, key string, size, part int64, parallel int) (int64, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	var mu sync.Mutex
	var total int64
	for off := int64(0); off < size; off += part {
		g.Go(func() error {
			n, err := getRange(gctx, cl, key, off, min(part, size-off))
			mu.Lock()
			total += n
			mu.Unlock()
			return err
		})
	}
	err := g.Wait()
	return total, err
}

// randomReads runs workers that read bs bytes at random bs-aligned offsets
// until d has passed, and returns the IOPS and the 99th percentile latency.
func randomReads(ctx context.Context, cl *transport.Client, key string, size, bs int64, workers int, d time.Duration) (float64, float64, error) {
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for time.Now().Before(deadline) {
				off := r.Int64N(size/bs) * bs
				t := time.Now()
				_, err := getRange(ctx, cl, key, off, bs)
				el := time.Since(t)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				lat = append(lat, el)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if len(lat) == 0 {
		return 0, 0, errors.Join(firstErr, errors.New("no reads"))
	}
	slices.Sort(lat)
	p99 := lat[min(len(lat)-1, len(lat)*99/100)]
	return float64(len(lat)) / el.Seconds(), float64(p99.Microseconds()) / 1000, firstErr
}

// listAndHead lists prefix and sends a HEAD for every key, parallel at
// once: the requests a file system needs for exact attributes of a
// directory's entries.
func listAndHead(ctx context.Context, cl *transport.Client, prefix string, parallel int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	err := transport.ListPages(ctx, cl, transport.ListInput{Prefix: prefix, Delimiter: "/"}, func(out *transport.ListOutput) error {
		for _, o := range out.Objects {
			g.Go(func() error {
				_, err := cl.Head(gctx, &transport.HeadInput{Key: o.Key})
				return err
			})
		}
		return nil
	})
	return errors.Join(err, g.Wait())
}

// listAll lists prefix to its end, one page ahead as cosmount does
// (transport.ListPages).
func listAll(ctx context.Context, cl *transport.Client, prefix, delim string) (int, error) {
	n := 0
	err := transport.ListPages(ctx, cl, transport.ListInput{Prefix: prefix, Delimiter: delim}, func(out *transport.ListOutput) error {
		n += len(out.Objects) + len(out.CommonPrefixes)
		return nil
	})
	return n, err
}

// putdir uploads the regular files under DIR, -parallel at once, and emits
// the time it took as -workload.
func putdir(args []string) error {
	var c common
	var parallel int
	var workload, prefix string
	fl := flag.NewFlagSet("putdir", flag.ExitOnError)
	c.register(fl)
	fl.IntVar(&parallel, "parallel", 16, "PUTs in flight")
	fl.StringVar(&workload, "workload", "cp-r", "name of the figure")
	fl.StringVar(&prefix, "prefix", "bench/putdir/", "key prefix")
	_ = fl.Parse(args)
	if fl.NArg() != 1 {
		return errors.New("putdir: want DIR")
	}
	dir := fl.Arg(0)
	ctx := context.Background()
	cl := c.client()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, run := range c.runNumbers() {
		t := time.Now()
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(parallel)
		for _, p := range files {
			g.Go(func() error {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				st, err := f.Stat()
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(dir, p)
				_, err = cl.Put(gctx, &transport.PutInput{Key: fmt.Sprintf("%s%d/%s", prefix, run, filepath.ToSlash(rel)), Body: f, Size: st.Size()})
				return err
			})
		}
		err := g.Wait()
		c.emit(workload, run, time.Since(t).Seconds(), "s", err)
	}
	return nil
}

// dropCachesIf is dropCaches when cold is set.
func dropCachesIf(cold bool) error {
	if !cold {
		return nil
	}
	return dropCaches()
}

// dropCaches writes back dirty pages and empties the page cache (root only).
func dropCaches() error {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	return nil
}
