package fs

import (
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cosmount/transport"
)

// objMeta is what the filesystem knows of one name: a directory (a prefix,
// with or without a marker object) or an object.
type objMeta struct {
	dir   bool
	size  int64
	mtime time.Time
	mode  uint32 // full st_mode: type bits and permissions
	uid   uint32
	gid   uint32
	etag  string
	// fromListing: attributes came from a LIST entry alone (no metadata).
	fromListing bool
	// xattrs are the user.* extended attributes (files only).
	xattrs map[string][]byte
}

func (m objMeta) fileType() uint32 { return m.mode & syscall.S_IFMT }

// Metadata names shared with cosfs, s3fs and rclone (the flavour's
// x-cos-meta- / x-amz-meta- prefix is added by the transport).
const (
	metaMode  = "mode"
	metaUID   = "uid"
	metaGID   = "gid"
	metaMtime = "mtime"
	// metaMtimeN is cosmount's own "sec.nsec" mtime, written beside the
	// whole-second mtime other tools read, so that nanoseconds survive
	// (rsync compares them). Used only while its seconds match mtime's.
	metaMtimeN = "cosmount-mtime"
	// metaXattr holds extended attributes as s3fs does: the URL-encoded
	// JSON object {"name":"base64(value)"}.
	metaXattr = "xattr"
	// goofys and some gateways spell it this way; read, never written.
	metaLastModified = "last-modified"
)

// metaFromObject builds attributes from an object's HEAD answer, filling
// what its metadata lacks from the mount's defaults.
func (f *FS) metaFromObject(o *transport.ObjectInfo) objMeta {
	m := objMeta{
		size:  o.Size,
		mtime: o.LastModified,
		mode:  syscall.S_IFREG | f.opt.FileMode,
		uid:   f.opt.UID,
		gid:   f.opt.GID,
		etag:  o.ETag,
	}
	if v, ok := o.Metadata[metaMode]; ok {
		if mode, ok := parseMode(v); ok {
			switch mode & syscall.S_IFMT {
			case 0:
				m.mode = syscall.S_IFREG | (mode & 0o7777)
			case syscall.S_IFREG, syscall.S_IFLNK:
				m.mode = mode
			case syscall.S_IFDIR:
				// A directory's mode on a plain object: keep the
				// permissions, the object stays a file.
				m.mode = syscall.S_IFREG | (mode & 0o7777)
			default:
				// FIFOs, sockets and devices cannot be served from an
				// object: show a regular file.
				m.mode = syscall.S_IFREG | (mode & 0o7777)
			}
			if m.mode&0o7777 == 0 {
				// Never hand out mode 0000: objects written by other tools
				// must stay readable.
				m.mode |= f.opt.FileMode
			}
		}
	}
	if v, ok := o.Metadata[metaUID]; ok {
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
			m.uid = uint32(n)
		}
	}
	if v, ok := o.Metadata[metaGID]; ok {
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
			m.gid = uint32(n)
		}
	}
	if v, ok := o.Metadata[metaXattr]; ok {
		m.xattrs = decodeXattrs(v)
	}
	if t, ok := parseMtime(o.Metadata[metaMtime]); ok {
		m.mtime = t
		if tn, ok := parseMtime(o.Metadata[metaMtimeN]); ok && tn.Unix() == t.Unix() {
			m.mtime = tn
		}
	} else if t, ok := parseMtime(o.Metadata[metaLastModified]); ok {
		m.mtime = t
	}
	return m
}

// metaFromListing builds attributes from a LIST entry (no user metadata).
func (f *FS) metaFromListing(o *transport.ObjectInfo) objMeta {
	return objMeta{
		size:        o.Size,
		mtime:       o.LastModified,
		mode:        syscall.S_IFREG | f.opt.FileMode,
		uid:         f.opt.UID,
		gid:         f.opt.GID,
		etag:        o.ETag,
		fromListing: true,
	}
}

func (f *FS) dirMeta(mtime time.Time) objMeta {
	if mtime.IsZero() {
		mtime = f.mountTime
	}
	return objMeta{dir: true, mtime: mtime, mode: syscall.S_IFDIR | f.opt.DirMode, uid: f.opt.UID, gid: f.opt.GID, size: 4096}
}

// parseMode reads s3fs/cosfs' decimal st_mode ("33188"); an octal form with
// a leading 0 ("0644") is accepted too.
func parseMode(s string) (uint32, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	base := 10
	if len(s) > 1 && s[0] == '0' {
		base = 8
	}
	n, err := strconv.ParseUint(s, base, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}

// parseMtime reads decimal seconds ("1700000000", s3fs/cosfs), fractional
// seconds ("1700000000.123456789", rclone) or RFC 3339.
func parseMtime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if sec, frac, ok := strings.Cut(s, "."); ok || sec != "" {
		if n, err := strconv.ParseInt(sec, 10, 64); err == nil {
			var nsec int64
			if ok {
				digits := (frac + "000000000")[:9]
				if v, err := strconv.ParseInt(digits, 10, 64); err == nil {
					nsec = v
				}
			}
			if n > -math.MaxInt32*1000 && n < math.MaxInt32*1000 {
				return time.Unix(n, nsec), true
			}
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	return time.Time{}, false
}
