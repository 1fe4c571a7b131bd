package auth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// STSFile reads temporary keys from a file in cosfs' STS format:
//
//	COSAccessKeyId=AKID...
//	COSSecretKey=...
//	COSAccessToken=...
//	COSAccessTokenExpire=2017-08-29T20:30:00
//
// COSAccessTokenExpire is in GMT, in the format of the example (an RFC 3339
// time with a zone, such as 2017-08-29T20:30:00Z, is accepted too). Blank
// lines, lines starting with '#', and " #" comments after a value are
// ignored, as are other keys. Without COSAccessToken and
// COSAccessTokenExpire the keys are permanent. The file must not be
// accessible to group or others.
//
// The file is read on every Retrieve; wrapped in a Refresher it is re-read
// when the keys near their expiry, or when the server refuses them, so a
// job that rewrites the file keeps the mount working.
type STSFile struct {
	Path string
	Now  func() time.Time // nil means time.Now
}

func (s *STSFile) rereadEvery() time.Duration { return 0 }

// Retrieve implements Provider.
func (s *STSFile) Retrieve(context.Context) (Credentials, error) {
	data, err := readPrivateFile(s.Path, "STS file")
	if err != nil {
		return Credentials{}, err
	}
	return parseSTSFile(s.Path, data, nowOr(s.Now)())
}

// stsFileTime is the layout of COSAccessTokenExpire, in GMT.
const stsFileTime = "2006-01-02T15:04:05"

var stsFileKeys = []string{"COSAccessKeyId", "COSSecretKey", "COSAccessToken", "COSAccessTokenExpire"}

// looksLikeSTSFile reports whether data has a COSAccessKeyId= line.
func looksLikeSTSFile(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		k, _, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.TrimSpace(k) == "COSAccessKeyId" {
			return true
		}
	}
	return false
}

func parseSTSFile(path string, data []byte, now time.Time) (Credentials, error) {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxCredFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return Credentials{}, fmt.Errorf("STS file %s, line %d: want KEY=VALUE", path, n)
		}
		if i := strings.Index(v, " #"); i >= 0 {
			v = v[:i]
		}
		if i := strings.Index(v, "\t#"); i >= 0 {
			v = v[:i]
		}
		vals[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return Credentials{}, fmt.Errorf("STS file %s: line too long", path)
	}
	for _, k := range stsFileKeys[:2] {
		if vals[k] == "" {
			return Credentials{}, fmt.Errorf("STS file %s: missing %s=", path, k)
		}
	}
	c := Credentials{SecretID: vals["COSAccessKeyId"], SecretKey: vals["COSSecretKey"], SessionToken: vals["COSAccessToken"]}
	exp := vals["COSAccessTokenExpire"]
	switch {
	case exp == "" && c.SessionToken == "":
		return c, nil
	case exp == "":
		return Credentials{}, fmt.Errorf("STS file %s: COSAccessToken= without COSAccessTokenExpire=", path)
	}
	t, err := parseSTSFileTime(exp)
	if err != nil {
		return Credentials{}, fmt.Errorf("STS file %s: %w", path, err)
	}
	c.ExpiredTime = t
	if !now.Before(t) {
		return Credentials{}, fmt.Errorf("STS file %s: COSAccessTokenExpire %s GMT has passed (%s ago); has the job that rewrites the file stopped?",
			path, t.UTC().Format(stsFileTime), now.Sub(t).Round(time.Second))
	}
	return c, nil
}

func parseSTSFileTime(s string) (time.Time, error) {
	for _, layout := range []string{stsFileTime, time.RFC3339, "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("COSAccessTokenExpire is not a GMT time such as 2017-08-29T20:30:00")
}
