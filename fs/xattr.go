package fs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// foreignXattr reports a name outside the user namespace. cosmount stores
// no security (SELinux labels, capabilities), system (POSIX ACLs) or trusted
// attributes, and says so with EOPNOTSUPP rather than ENODATA: ls -l asks
// every file for its label and its ACL, and on EOPNOTSUPP it stops asking
// for the rest of the mount (coreutils remembers a device without support)
// instead of costing two round trips per file.
func foreignXattr(attr string) bool { return !strings.HasPrefix(attr, "user.") }

// noXattrs answers the extended-attribute calls of a node that stores none
// (directories): lists are empty, reads find nothing, and setting one is not
// supported, which tells cp -a and rsync -X to go on without.
type noXattrs struct{}

func (noXattrs) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if foreignXattr(attr) {
		return 0, syscall.EOPNOTSUPP
	}
	return 0, syscall.ENODATA
}

func (noXattrs) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}

func (noXattrs) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if foreignXattr(attr) {
		return syscall.EOPNOTSUPP
	}
	return syscall.ENODATA
}

func (noXattrs) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) { return 0, 0 }

var (
	_ = (gofs.NodeGetxattrer)((*File)(nil))
	_ = (gofs.NodeSetxattrer)((*File)(nil))
	_ = (gofs.NodeListxattrer)((*File)(nil))
	_ = (gofs.NodeRemovexattrer)((*File)(nil))
	_ = (gofs.NodeSetxattrer)((*Dir)(nil))
)

// maxXattrMeta bounds the encoded attributes: buckets cap user metadata
// at about 2 KiB per object.
const maxXattrMeta = 2000

// decodeXattrs reads s3fs' form; anything unreadable is ignored.
func decodeXattrs(v string) map[string][]byte {
	raw, err := url.QueryUnescape(v)
	if err != nil {
		raw = v
	}
	var enc map[string]string
	if json.Unmarshal([]byte(raw), &enc) != nil {
		return nil
	}
	out := make(map[string][]byte, len(enc))
	for k, b := range enc {
		if val, err := base64.StdEncoding.DecodeString(b); err == nil {
			out[k] = val
		}
	}
	return out
}

// encodeXattrs writes s3fs' form.
func encodeXattrs(x map[string][]byte) string {
	enc := make(map[string]string, len(x))
	for k, v := range x {
		enc[k] = base64.StdEncoding.EncodeToString(v)
	}
	b, _ := json.Marshal(enc)
	return strings.ReplaceAll(url.QueryEscape(string(b)), "+", "%20")
}

// Getxattr implements NodeGetxattrer. Only user.* attributes are stored;
// the kernel's own (security.*, system.*) are answered locally.
func (n *File) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	if foreignXattr(attr) {
		return 0, syscall.EOPNOTSUPP
	}
	m, errno := n.refreshExact(ctx)
	if errno != 0 {
		return 0, errno
	}
	v, ok := m.xattrs[attr]
	if !ok {
		return 0, syscall.ENODATA
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Listxattr implements NodeListxattrer.
func (n *File) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	m, errno := n.refreshExact(ctx)
	if errno != 0 {
		return 0, errno
	}
	names := make([]string, 0, len(m.xattrs))
	for k := range m.xattrs {
		if !foreignXattr(k) { // stored by another tool; Getxattr refuses them
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var b []byte
	for _, k := range names {
		b = append(append(b, k...), 0)
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

// Setxattr implements NodeSetxattrer: user.* attributes go to the object's
// metadata, with a pending upload or by a self-copy.
func (n *File) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	ctx = uninterrupted(ctx)
	if foreignXattr(attr) {
		return syscall.EOPNOTSUPP
	}
	const xattrCreate, xattrReplace = 1, 2
	return n.changeXattrs(ctx, func(x map[string][]byte) syscall.Errno {
		_, exists := x[attr]
		switch {
		case flags&xattrCreate != 0 && exists:
			return syscall.EEXIST
		case flags&xattrReplace != 0 && !exists:
			return syscall.ENODATA
		}
		x[attr] = append([]byte(nil), data...)
		return 0
	})
}

// Removexattr implements NodeRemovexattrer.
func (n *File) Removexattr(ctx context.Context, attr string) syscall.Errno {
	ctx = uninterrupted(ctx)
	if foreignXattr(attr) {
		return syscall.EOPNOTSUPP
	}
	return n.changeXattrs(ctx, func(x map[string][]byte) syscall.Errno {
		if _, ok := x[attr]; !ok {
			return syscall.ENODATA
		}
		delete(x, attr)
		return 0
	})
}

func (n *File) changeXattrs(ctx context.Context, change func(map[string][]byte) syscall.Errno) syscall.Errno {
	f := n.fsys
	if f.opt.ReadOnly {
		return syscall.EROFS
	}
	if _, errno := n.refreshExact(ctx); errno != 0 {
		return errno
	}
	n.mu.Lock()
	x := make(map[string][]byte, len(n.meta.xattrs)+1)
	for k, v := range n.meta.xattrs {
		x[k] = v
	}
	if errno := change(x); errno != 0 {
		n.mu.Unlock()
		return errno
	}
	if len(encodeXattrs(x)) > maxXattrMeta {
		n.mu.Unlock()
		return syscall.ENOSPC
	}
	n.meta.xattrs = x
	pending := n.ws != nil && n.ws.dirty
	if pending {
		n.ws.gen++
	}
	open := n.opens > 0
	m := n.meta
	n.mu.Unlock()
	if pending {
		if open {
			return 0 // goes up with the upload at close
		}
		return n.flush(ctx)
	}
	// The copy writes every attribute, those waiting included, one upload
	// or copy of this file at a time.
	n.upMu.Lock()
	defer n.upMu.Unlock()
	m, withMeta := n.takeMeta()
	errno := n.setMetaRemote(ctx, n.key(), m)
	if errno != 0 && withMeta {
		n.restoreMeta()
	}
	return errno
}
