package fs_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	cfs "cosmount/fs"
	"cosmount/internal/testrig"
)

// mountS3fs mounts the rig's bucket with s3fs, the way its users do, and
// unmounts it when the test ends.
func (r *rig) mountS3fs() string {
	t := r.t
	t.Helper()
	if _, err := exec.LookPath("s3fs"); err != nil {
		t.Fatal("s3fs is needed for this test (scripts/test.sh installs it)")
	}
	srv := testrig.Get(t)
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, []byte(srv.AccessKey+":"+srv.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	cmd := exec.Command("s3fs", r.bucketName, mnt, "-o", "url="+srv.Endpoint, "-o", "use_path_request_style",
		"-o", "passwd_file="+passwd, "-o", "stat_cache_expire=1", "-o", "use_xattr")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("s3fs: %v %s", err, out)
	}
	t.Cleanup(func() {
		for i := 0; i < 50; i++ {
			if syscall.Unmount(mnt, 0) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		syscall.Unmount(mnt, syscall.MNT_DETACH)
	})
	eventually(t, 10*time.Second, func() error {
		_, err := os.ReadDir(mnt)
		return err
	})
	return mnt
}

func TestAttributesInteroperateWithS3fs(t *testing.T) {
	r := newBucket(t)
	r.mount(cfs.Options{StatTTL: time.Second, NegativeTTL: time.Second})
	s3 := r.mountS3fs()
	mt := time.Unix(1500000000, 0)

	// Written by cosmount, read by s3fs.
	p := filepath.Join(r.mnt, "from-cosmount")
	if err := os.WriteFile(p, []byte("hello s3fs"), 0o751); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o751)
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setxattr(p, "user.color", []byte("blue"), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	os.Symlink("from-cosmount", filepath.Join(r.mnt, "link-by-cosmount"))
	eventually(t, 10*time.Second, func() error {
		st, err := os.Stat(filepath.Join(s3, "from-cosmount"))
		if err != nil {
			return err
		}
		if st.Mode().Perm() != 0o751 || !st.ModTime().Equal(mt) {
			_, info := r.object("from-cosmount")
			return fmt.Errorf("s3fs sees mode %v mtime %v, want 0751 %v (object metadata %v)", st.Mode(), st.ModTime(), mt, info.Metadata)
		}
		buf := make([]byte, 64)
		n, err := syscall.Getxattr(filepath.Join(s3, "from-cosmount"), "user.color", buf)
		if err != nil {
			return fmt.Errorf("s3fs getxattr user.color: %v", err)
		}
		if string(buf[:n]) != "blue" {
			return fmt.Errorf("s3fs sees user.color %q", buf[:n])
		}
		if target, err := os.Readlink(filepath.Join(s3, "link-by-cosmount")); err != nil || target != "from-cosmount" {
			return fmt.Errorf("s3fs readlink: %q %v", target, err)
		}
		return nil
	})

	// Written by s3fs, read by cosmount.
	q := filepath.Join(s3, "from-s3fs")
	if err := os.WriteFile(q, []byte("hello cosmount"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(q, 0o640)
	if err := os.Chtimes(q, mt, mt); err != nil {
		t.Fatal(err)
	}
	os.Symlink("from-s3fs", filepath.Join(s3, "link-by-s3fs"))
	eventually(t, 10*time.Second, func() error {
		st, err := os.Stat(filepath.Join(r.mnt, "from-s3fs"))
		if err != nil {
			return err
		}
		if st.Mode().Perm() != 0o640 || !st.ModTime().Equal(mt) {
			return fmt.Errorf("cosmount sees mode %v mtime %v, want 0640 %v", st.Mode(), st.ModTime(), mt)
		}
		b, err := os.ReadFile(filepath.Join(r.mnt, "from-s3fs"))
		if err != nil || !bytes.Equal(b, []byte("hello cosmount")) {
			return fmt.Errorf("cosmount reads %q %v", b, err)
		}
		if target, err := os.Readlink(filepath.Join(r.mnt, "link-by-s3fs")); err != nil || target != "from-s3fs" {
			return fmt.Errorf("cosmount readlink: %q %v", target, err)
		}
		return nil
	})
}
