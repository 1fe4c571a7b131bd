package fs

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// A close of one descriptor while the process holds another on the same
// file, open for writing, does not upload the file while it is still empty.
// A shell's `cmd > file`, and dd, open the file, duplicate the descriptor
// onto standard output and close the first one before the first write: the
// kernel sends that close as a FLUSH like any other, which would upload an
// empty object, and the real close a moment later would upload the data
// over it (one more request, an empty version on a versioned bucket, and an
// empty object other clients can see meanwhile). The data goes up at the
// process's last close of the file, which reports its errors.
//
// The calling thread's descriptors are read from /proc/TID/fdinfo (mount
// id, inode number, flags). Only a file with one open handle qualifies:
// every other descriptor on it is then a copy of the one being closed, whose
// last close by this process uploads. Anything unexpected (no permission, a
// mount this process does not see, too many descriptors, a kernel whose
// fdinfo lacks the inode number) uploads as any close does.

// maxFdinfo bounds the descriptors looked at in one close.
const maxFdinfo = 1024

// Mounted tells the file system where it is mounted, once the mount is up,
// so that it can recognise its own files among a process's descriptors
// (see heldElsewhere) and tell whether it is still mounted there (see
// StillMounted). Without it every close of a changed file uploads.
func (f *FS) Mounted(mountpoint string) {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return
	}
	// mountinfo names it without symlinks; the mount point itself is not
	// resolved (that would ask this file system).
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(dir, filepath.Base(abs))
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	ids := mountIDs(b, abs)
	f.mountIDs.Store(&ids)
	f.mountpoint = abs
}

// StillMounted reports whether this mount is still at its mount point, as
// far as /proc/self/mountinfo tells; true when that cannot be told. After
// a lazy umount the mount point may already hold another mount, which an
// unmount by path would take down.
func (f *FS) StillMounted() bool {
	p := f.mountIDs.Load()
	if p == nil || len(*p) == 0 {
		return true
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return true
	}
	return slices.Contains(*p, topMountAt(b, f.mountpoint))
}

// topMountAt is the id of the mount mountinfo lists last at mountpoint
// (the one a path reaches, and an unmount by path takes), -1 for none.
func topMountAt(info []byte, mountpoint string) int {
	top := -1
	for _, e := range mountEntries(info) {
		if e.at == mountpoint {
			top = e.id
		}
	}
	return top
}

// mountIDs parses mountinfo text: the ids of every mount of the device
// mounted last at mountpoint (bind mounts of it included).
func mountIDs(info []byte, mountpoint string) []int {
	es := mountEntries(info)
	dev := ""
	for _, e := range es {
		if e.at == mountpoint {
			dev = e.dev
		}
	}
	var ids []int
	for _, e := range es {
		if dev != "" && e.dev == dev {
			ids = append(ids, e.id)
		}
	}
	return ids
}

type mountEntry struct {
	id     int
	dev    string // major:minor
	at     string // mount point
	fstype string
}

// MountedAt reports whether something is mounted at path (absolute, with
// no symlinks), and what (its file system type), from
// /proc/self/mountinfo; false where that cannot be read.
func MountedAt(path string) (fstype string, ok bool) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	return mountedAt(b, path)
}

func mountedAt(info []byte, path string) (fstype string, ok bool) {
	for _, e := range mountEntries(info) {
		if e.at == path {
			fstype, ok = e.fstype, true
		}
	}
	return fstype, ok
}

// mountEntries parses the lines of mountinfo text, in order.
func mountEntries(info []byte) []mountEntry {
	var es []mountEntry
	for line := range bytes.Lines(info) {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fs := strings.Fields(string(line))
		if len(fs) < 5 {
			continue
		}
		id, err := strconv.Atoi(fs[0])
		if err != nil {
			continue
		}
		e := mountEntry{id: id, dev: fs[2], at: unescapeMountinfo(fs[4])}
		if i := slices.Index(fs[5:], "-"); i >= 0 && 5+i+1 < len(fs) {
			e.fstype = fs[5+i+1]
		}
		es = append(es, e)
	}
	return es
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// heldElsewhere reports whether thread tid (the caller of a FLUSH) still
// has a descriptor open for writing on the file with inode number ino of
// this mount.
func (f *FS) heldElsewhere(tid uint32, ino uint64) bool {
	p := f.mountIDs.Load()
	if p == nil || len(*p) == 0 || tid == 0 || ino == 0 || f.noFdinfo.Load() {
		return false
	}
	dir := "/proc/" + strconv.FormatUint(uint64(tid), 10) + "/fdinfo/"
	d, err := os.Open(dir)
	if err != nil {
		return false
	}
	names, err := d.Readdirnames(maxFdinfo + 1)
	d.Close()
	if err != nil || len(names) > maxFdinfo {
		return false
	}
	var buf [256]byte
	for _, name := range names {
		b := readHead(dir+name, buf[:])
		if b == nil {
			continue // closed meanwhile
		}
		fi, ok := parseFdinfo(b)
		if !ok {
			// Not the format this reads (before Linux 5.14 it had no
			// inode number): not asked again.
			f.noFdinfo.Store(true)
			return false
		}
		if fi.ino == ino && fi.flags&syscall.O_ACCMODE != syscall.O_RDONLY && slices.Contains(*p, fi.mnt) {
			return true
		}
	}
	return false
}

type fdinfo struct {
	flags int
	mnt   int
	ino   uint64
}

// parseFdinfo reads the flags, mnt_id and ino lines of /proc/PID/fdinfo/N.
func parseFdinfo(b []byte) (fdinfo, bool) {
	var fi fdinfo
	var seen int
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		var err error
		switch string(k) {
		case "flags":
			var x uint64
			x, err = strconv.ParseUint(string(v), 8, 32)
			fi.flags = int(x)
		case "mnt_id":
			fi.mnt, err = strconv.Atoi(string(v))
		case "ino":
			fi.ino, err = strconv.ParseUint(string(v), 10, 64)
		default:
			continue
		}
		if err != nil {
			return fi, false
		}
		seen++
	}
	return fi, seen == 3
}

// emptyPending reports whether n is empty and not uploaded as such, with
// one handle open.
func (n *File) emptyPending() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ws != nil && n.ws.dirty && n.ws.size == 0 && n.opens == 1
}
