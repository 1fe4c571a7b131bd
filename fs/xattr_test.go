package fs_test

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	cfs "cosmount/fs"
)

// Only user.* attributes are stored. The others (SELinux labels, POSIX
// ACLs, capabilities, trusted.*) are not supported, and say so: EOPNOTSUPP,
// on which ls -l stops asking for them file by file.
func TestOnlyUserXattrsAreSupported(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{})
	file := filepath.Join(r.mnt, "f")
	dir := filepath.Join(r.mnt, "d")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for _, p := range []string{file, dir} {
		for _, name := range []string{"security.selinux", "system.posix_acl_access", "security.capability", "trusted.x"} {
			if _, err := unix.Getxattr(p, name, buf); !errors.Is(err, unix.EOPNOTSUPP) {
				t.Errorf("getxattr %s %s: %v, want EOPNOTSUPP", filepath.Base(p), name, err)
			}
			// (The kernel itself refuses a malformed ACL or capability
			// before asking.)
			if name == "security.selinux" || name == "trusted.x" {
				if err := unix.Setxattr(p, name, []byte("v"), 0); !errors.Is(err, unix.EOPNOTSUPP) {
					t.Errorf("setxattr %s %s: %v, want EOPNOTSUPP", filepath.Base(p), name, err)
				}
			}
			if err := unix.Removexattr(p, name); !errors.Is(err, unix.EOPNOTSUPP) {
				t.Errorf("removexattr %s %s: %v, want EOPNOTSUPP", filepath.Base(p), name, err)
			}
		}
		if _, err := unix.Getxattr(p, "user.absent", buf); !errors.Is(err, unix.ENODATA) {
			t.Errorf("getxattr %s user.absent: %v, want ENODATA", filepath.Base(p), err)
		}
	}
	if err := unix.Setxattr(file, "user.color", []byte("blue"), 0); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Getxattr(file, "user.color", buf); err != nil || string(buf[:n]) != "blue" {
		t.Errorf("user.color: %q, %v", buf[:max(n, 0)], err)
	}
	// Another tool stored a security.* attribute with a user.* one (s3fs'
	// form): only what getxattr answers is listed, so that cp -a and
	// rsync -X do not fail on it.
	r.put("other", []byte("y"), map[string]string{"xattr": url.QueryEscape(`{"user.a":"MQ==","security.selinux":"eA=="}`)})
	n, err := unix.Listxattr(filepath.Join(r.mnt, "other"), buf)
	if err != nil || string(buf[:n]) != "user.a\x00" {
		t.Errorf("listxattr of an object with user.a and security.selinux: %q, %v", buf[:max(n, 0)], err)
	}
}
