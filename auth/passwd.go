package auth

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// maxCredFile bounds what is read from any credentials file.
const maxCredFile = 1 << 20

// PasswdFile reads keys from a passwd file in cosfs' (and s3fs') format, one
// entry a line:
//
//	bucket:SecretId:SecretKey   keys for that bucket
//	SecretId:SecretKey          keys for every other bucket
//
// A line for the bucket wins over a line for every bucket; blank lines and
// lines starting with '#' are ignored. The file is refused when group or
// others have any permission on it (chmod 600). A file in cosfs' STS format
// (COSAccessKeyId=... lines, see STSFile) is read as an STS file, as cosfs
// does with -ocam_role=sts. The file is read on every Retrieve; wrapped in a
// Refresher, that means once for permanent keys, and again whenever the
// server refuses them (the keys in the file may have been rotated).
type PasswdFile struct {
	Path   string
	Bucket string
	Now    func() time.Time // for the STS format; nil means time.Now
}

func (p *PasswdFile) rereadEvery() time.Duration { return 0 }

// Retrieve implements Provider.
func (p *PasswdFile) Retrieve(context.Context) (Credentials, error) {
	data, err := readPrivateFile(p.Path, "passwd file")
	if err != nil {
		return Credentials{}, err
	}
	if looksLikeSTSFile(data) {
		return parseSTSFile(p.Path, data, nowOr(p.Now)())
	}
	return parsePasswd(p.Path, data, p.Bucket)
}

func parsePasswd(path string, data []byte, bucket string) (Credentials, error) {
	var def, forBucket *Credentials
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxCredFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		switch {
		case len(f) == 2 && f[0] != "" && f[1] != "":
			if def == nil {
				def = &Credentials{SecretID: f[0], SecretKey: f[1]}
			}
		case len(f) == 3 && f[0] != "" && f[1] != "" && f[2] != "":
			if f[0] == bucket && forBucket == nil {
				forBucket = &Credentials{SecretID: f[1], SecretKey: f[2]}
			}
		default:
			return Credentials{}, fmt.Errorf("passwd file %s, line %d: want SecretId:SecretKey or bucket:SecretId:SecretKey", path, n)
		}
	}
	if err := sc.Err(); err != nil {
		return Credentials{}, fmt.Errorf("passwd file %s: line too long", path)
	}
	if forBucket != nil {
		return *forBucket, nil
	}
	if def != nil {
		return *def, nil
	}
	return Credentials{}, fmt.Errorf("passwd file %s has no line for bucket %q and no SecretId:SecretKey line for every bucket", path, bucket)
}

// readPrivateFile reads a credentials file that must not be accessible to
// group or others.
func readPrivateFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s %s is accessible to group or others (mode %04o); run: chmod 600 %s", what, path, perm, path)
	}
	return readCapped(f, path, what)
}

// readPublicFile reads a file that holds one value (a key, a token, a
// header), trimmed of surrounding white space. Its mode is not checked:
// Kubernetes mounts secrets 0644 by default.
func readPublicFile(path, what string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	data, err := readCapped(f, path, what)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

func readCapped(r io.Reader, path, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxCredFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(data) > maxCredFile {
		return nil, fmt.Errorf("%s %s is larger than %d bytes", what, path, maxCredFile)
	}
	return data, nil
}

func nowOr(f func() time.Time) func() time.Time {
	if f == nil {
		return time.Now
	}
	return f
}
