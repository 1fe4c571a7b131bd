package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// noXattrs answers the extended-attribute calls of a file system that
// stores none: lists are empty, reads find nothing, and setting one is not
// supported, which tells cp -a and rsync -X to go on without ACLs.
type noXattrs struct{}

func (noXattrs) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENODATA
}

func (noXattrs) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}

func (noXattrs) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.ENODATA
}

func (noXattrs) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) { return 0, 0 }

var (
	_ = (gofs.NodeGetxattrer)((*File)(nil))
	_ = (gofs.NodeSetxattrer)((*Dir)(nil))
	_ = (gofs.NodeListxattrer)((*Dir)(nil))
	_ = (gofs.NodeRemovexattrer)((*File)(nil))
)
