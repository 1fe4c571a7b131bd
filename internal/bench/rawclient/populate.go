package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"path"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"cosmount/transport"
)

// populate creates the bucket and the objects the read workloads use:
// bench/big.bin, bench/fio/f0..f3, bench/ls/ (a flat directory) and
// bench/tree/ (directories of small objects).
func populate(args []string) error {
	var c common
	var big, fio sizeFlag
	var lsN, dirs, perDir int
	fl := flag.NewFlagSet("populate", flag.ExitOnError)
	c.register(fl)
	fl.Var(&big, "big", "size of bench/big.bin")
	fl.Var(&fio, "fio", "size of each of bench/fio/f0..f3")
	fl.IntVar(&lsN, "ls", 10000, "objects in bench/ls/")
	fl.IntVar(&dirs, "dirs", 1000, "directories in bench/tree/")
	fl.IntVar(&perDir, "per-dir", 20, "objects per directory in bench/tree/")
	_ = fl.Parse(args)

	ctx := context.Background()
	cl := c.client()
	start := time.Now()
	if err := cl.CreateBucket(ctx); err != nil && !errors.Is(err, transport.ErrConflict) {
		return fmt.Errorf("create bucket %s: %w", c.bucket, err)
	}
	up := transport.NewUploader(cl, transport.UploaderOptions{ChunkSize: 16 << 20, ChunkParallelLimit: 8, MinPartSize: 5 << 20})
	if big > 0 {
		if _, err := up.Upload(ctx, &transport.UploadInput{Key: keyBig, BodyAt: newPattern(int64(big)), Size: int64(big)}); err != nil {
			return err
		}
	}
	if fio > 0 {
		for i := 0; i < 4; i++ {
			key := fmt.Sprintf("%sf%d", prefixFio, i)
			if _, err := up.Upload(ctx, &transport.UploadInput{Key: key, BodyAt: newPattern(int64(fio)), Size: int64(fio)}); err != nil {
				return err
			}
		}
	}
	var keys []string
	for i := 0; i < lsN; i++ {
		keys = append(keys, fmt.Sprintf("%so%05d", prefixLs, i))
	}
	for d := 0; d < dirs; d++ {
		for f := 0; f < perDir; f++ {
			keys = append(keys, fmt.Sprintf("%sd%04d/f%02d", prefixTr, d, f))
		}
	}
	body := bytes.Repeat([]byte("cosmount benchmark\n"), 54) // 1,026 bytes
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for _, k := range keys {
		g.Go(func() error {
			_, err := cl.Put(gctx, &transport.PutInput{Key: k, Body: bytes.NewReader(body), Size: int64(len(body))})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	log.Printf("rawclient: bucket %s populated in %v (%d small objects)", c.bucket, time.Since(start).Round(time.Millisecond), len(keys))
	return nil
}

// wait polls HEAD until -key has -size bytes, for file systems whose close
// returns before the upload ends; it fails after -timeout.
func wait(args []string) error {
	var c common
	var key string
	var size int64
	var timeout time.Duration
	fl := flag.NewFlagSet("wait", flag.ExitOnError)
	c.register(fl)
	fl.StringVar(&key, "key", "", "object key")
	fl.Int64Var(&size, "size", 0, "expected size")
	fl.DurationVar(&timeout, "timeout", 10*time.Minute, "give up after")
	_ = fl.Parse(args)
	cl := c.client()
	deadline := time.Now().Add(timeout)
	for {
		info, err := cl.Head(context.Background(), &transport.HeadInput{Key: key})
		if err == nil && info.Size == size {
			return nil
		}
		if err != nil && !errors.Is(err, transport.ErrNotFound) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not reach %d bytes in %v", key, size, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// count prints how many objects lie under a prefix, and how many of them
// have a base name starting with "." (temporary files a copy tool renames
// when it is done: any left means a rename lost its delete).
func count(args []string) error {
	var c common
	var prefix string
	fl := flag.NewFlagSet("count", flag.ExitOnError)
	c.register(fl)
	fl.StringVar(&prefix, "prefix", "", "key prefix")
	_ = fl.Parse(args)
	cl := c.client()
	var n, dot int
	err := transport.ListPages(context.Background(), cl, transport.ListInput{Prefix: prefix}, func(out *transport.ListOutput) error {
		for _, o := range out.Objects {
			n++
			if strings.HasPrefix(path.Base(o.Key), ".") {
				dot++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Println(n, dot)
	return nil
}
