package fs_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	cfs "cosmount/fs"
	"cosmount/transport"
)

// slowGets serves GET bodies at about 32 MiB/s each and counts the bytes
// asked for, the bytes read and the bodies not yet closed.
type slowGets struct {
	cfs.Bucket
	asked, read, open atomic.Int64
}

func (b *slowGets) Get(ctx context.Context, in *transport.GetInput) (*transport.GetOutput, error) {
	out, err := b.Bucket.Get(ctx, in)
	if err != nil {
		return nil, err
	}
	b.asked.Add(out.ContentLength)
	b.open.Add(1)
	out.Body = &slowBody{ReadCloser: out.Body, b: b}
	return out, nil
}

type slowBody struct {
	io.ReadCloser
	b      *slowGets
	closed bool
}

func (s *slowBody) Read(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	n, err := s.ReadCloser.Read(p[:min(len(p), 64<<10)])
	s.b.read.Add(int64(n))
	return n, err
}

func (s *slowBody) Close() error {
	if !s.closed {
		s.closed = true
		s.b.open.Add(-1)
	}
	return s.ReadCloser.Close()
}

// A reader that reads the start of a large file and closes it leaves no
// readahead behind: runs not sent are dropped, and runs being received
// stop, instead of downloading the tens of MiB its window asked for.
func TestClosedReaderStopsItsReadahead(t *testing.T) {
	r := newBucket(t)
	r.putLarge("big", 128<<20)
	slow := &slowGets{Bucket: r.counter}
	r.bucketOverride = slow
	r.mount(cfs.Options{})
	f, err := os.Open(filepath.Join(r.mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for range 8 {
		if _, err := io.ReadFull(f, buf); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	eventually(t, 30*time.Second, func() error {
		if n := slow.open.Load(); n > 0 {
			return fmt.Errorf("%d GET bodies still open", n)
		}
		return nil
	})
	asked, read := slow.asked.Load(), slow.read.Load()
	t.Logf("asked for %d MiB, read %d MiB", asked>>20, read>>20)
	if asked < 32<<20 {
		t.Fatalf("the reader's window asked for only %d MiB: nothing to stop", asked>>20)
	}
	if read > asked/2 {
		t.Errorf("read %d MiB of the %d MiB asked for after the reader closed at 8 MiB", read>>20, asked>>20)
	}
}
