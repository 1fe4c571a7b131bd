package cache

import (
	"fmt"
	"io"
	"os"
	"strconv"
)

// OpenSection opens the write-back file again, positioned at off, for a
// sender that wants a file of its own: the transport sends such a body with
// sendfile, so the bytes go from the page cache to the socket without a copy
// through cosmount's memory. It fails when [off, off+n) is not all held
// (discarded, or past the file's end), and where /proc is missing.
func (w *WriteFile) OpenSection(off, n int64) (*os.File, error) {
	if err := w.Intact(off, n); err != nil {
		return nil, err
	}
	rc, err := w.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var f *os.File
	var oerr error
	// Control holds the descriptor open while it is named, so a concurrent
	// close cannot hand its number to another file.
	if err := rc.Control(func(fd uintptr) {
		f, oerr = os.Open("/proc/self/fd/" + strconv.FormatUint(uint64(fd), 10))
	}); err != nil {
		return nil, err
	}
	if oerr != nil {
		return nil, oerr
	}
	st, err := f.Stat()
	if err == nil && st.Size() < off+n {
		err = fmt.Errorf("write-back file holds %d bytes, not the %d up to %d", st.Size(), n, off+n)
	}
	if err == nil {
		_, err = f.Seek(off, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Intact reports whether [off, off+n) is still held: after a send from an
// OpenSection file it tells that the bytes sent were the file's all along.
func (w *WriteFile) Intact(off, n int64) error {
	if w.Discarded(Range{Off: off, Len: n}) {
		return ErrDiscarded
	}
	return nil
}
