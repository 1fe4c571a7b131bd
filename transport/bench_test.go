package transport

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"golang.org/x/sync/errgroup"
)

// Raw client throughput against the test server on loopback: the ceilings
// the filesystem is measured against. go test -run '^$' -bench . ./transport/

const benchObject = 64 << 20

func benchSetup(b *testing.B) (*Client, []byte) {
	c := newS3Client(b)
	data := randBytes(benchObject, 99)
	if _, err := c.Put(testCtx(b), &PutInput{Key: "obj", Body: bytes.NewReader(data), Size: int64(len(data))}); err != nil {
		b.Fatal(err)
	}
	return c, data
}

func BenchmarkGetSingleStream(b *testing.B) {
	c, _ := benchSetup(b)
	ctx := testCtx(b)
	buf := make([]byte, 1<<20)
	b.SetBytes(benchObject)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := c.Get(ctx, &GetInput{Key: "obj", Length: -1})
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, out.Body, buf)
		out.Body.Close()
		if err != nil || n != benchObject {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkGetParallelRanged(b *testing.B) {
	for _, par := range []int{4, 16} {
		b.Run(fmt.Sprintf("x%d-1MiB", par), func(b *testing.B) {
			c, _ := benchSetup(b)
			ctx := testCtx(b)
			const block = 1 << 20
			b.SetBytes(benchObject)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g, gctx := errgroup.WithContext(ctx)
				g.SetLimit(par)
				for off := int64(0); off < benchObject; off += block {
					g.Go(func() error {
						out, err := c.Get(gctx, &GetInput{Key: "obj", Offset: off, Length: block})
						if err != nil {
							return err
						}
						defer out.Body.Close()
						_, err = io.Copy(io.Discard, out.Body)
						return err
					})
				}
				if err := g.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPutSingle(b *testing.B) {
	c := newS3Client(b)
	ctx := testCtx(b)
	data := randBytes(16<<20, 98)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Put(ctx, &PutInput{Key: "put", Body: bytes.NewReader(data), Size: int64(len(data))}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMultipartParallel(b *testing.B) {
	c := newS3Client(b)
	ctx := testCtx(b)
	data := randBytes(benchObject, 97)
	b.SetBytes(benchObject)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id, err := c.InitiateMultipart(ctx, &InitiateInput{Key: "mp"})
		if err != nil {
			b.Fatal(err)
		}
		parts, err := uploadParts(ctx, c, "mp", id, data, 8<<20)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.CompleteMultipart(ctx, &CompleteInput{Key: "mp", UploadID: id, Parts: parts}); err != nil {
			b.Fatal(err)
		}
	}
}
