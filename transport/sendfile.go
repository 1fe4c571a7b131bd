package transport

import (
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// FileReaderAt is an io.ReaderAt whose bytes live in a file. Upload parts
// read from one are sent with sendfile: the kernel copies them from the page
// cache to the socket, and they never pass through cosmount's memory.
type FileReaderAt interface {
	io.ReaderAt
	// OpenSection opens a file of its own positioned at off, with at least
	// n bytes from there.
	OpenSection(off, n int64) (*os.File, error)
	// Intact reports, once [off, off+n) was sent from an OpenSection file,
	// whether those bytes were still the source's all along.
	Intact(off, n int64) error
}

// sectionBody is a request body that can give n bytes from its position
// start as a file of its own; check, called after a successful send, tells
// whether they were valid.
type sectionBody interface {
	section(start, n int64) (f *os.File, check func() error, ok bool)
}

func (b *partBody) section(start, n int64) (*os.File, func() error, bool) {
	src, ok := b.src.(FileReaderAt)
	if !ok || start < 0 || start+n > b.size {
		return nil, nil, false
	}
	f, err := src.OpenSection(b.off+start, n)
	if err != nil {
		return nil, nil, false
	}
	return f, func() error {
		if err := src.Intact(b.off+start, n); err != nil {
			return err
		}
		b.maxPos = max(b.maxPos, start+n)
		return nil
	}, true
}

// fileBody is an attempt's body read from a file of its own. Being a
// syscall.Conn, it is sent by the http transport with sendfile; as that
// gives no word of progress, a poll of the file's offset tells the watchdog
// the send is moving. The offset moves each time the socket's send buffer
// has room again (a few hundred KiB to a few MiB at a time), so a send
// slower than that much per timeout counts as silence. Close cuts the body
// off like reqBody's.
type fileBody struct {
	f     *os.File
	end   int64 // file offset where the body ends
	wd    *watchdog
	check func() error

	mu     sync.Mutex
	closed bool
	stop   chan struct{}
}

func newFileBody(f *os.File, n int64, check func() error, wd *watchdog) (*fileBody, error) {
	start, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	b := &fileBody{f: f, end: start + n, wd: wd, check: check, stop: make(chan struct{})}
	go b.watch(max(wd.d/4, 10*time.Millisecond))
	return b, nil
}

// Read reads up to the body's end. Sendfile moves the file's offset too, so
// the end is checked against the offset, not counted here: the transport
// reads once more after the body to make sure nothing is left.
func (b *fileBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBodyClosed
	}
	pos, err := b.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if pos >= b.end {
		return 0, io.EOF
	}
	if int64(len(p)) > b.end-pos {
		p = p[:b.end-pos]
	}
	n, err := b.f.Read(p)
	b.wd.kickSend()
	return n, err
}

func (b *fileBody) SyscallConn() (syscall.RawConn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errBodyClosed
	}
	return b.f.SyscallConn()
}

func (b *fileBody) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	b.mu.Unlock()
	return nil
}

// finish ends the body for good once the round trip is over. A sendfile
// still running keeps the descriptor until it ends.
func (b *fileBody) finish() {
	b.Close()
	b.f.Close()
}

func (b *fileBody) watch(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := int64(-1)
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			if pos, err := b.f.Seek(0, io.SeekCurrent); err == nil && pos != last {
				last = pos
				b.wd.kickSend()
			}
		}
	}
}
