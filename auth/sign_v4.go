package auth

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	smithycreds "github.com/aws/smithy-go/aws-http-auth/credentials"
	"github.com/aws/smithy-go/aws-http-auth/sigv4"
	v4 "github.com/aws/smithy-go/aws-http-auth/v4"
)

// amzTokenHeader carries temporary credentials' token on S3 requests.
const amzTokenHeader = "X-Amz-Security-Token"

// SignV4 signs req with AWS Signature Version 4 for service "s3" in region,
// at time t (now when zero). payloadHash is the hex SHA-256 of the body, or
// UnsignedPayload; anything else is an error and leaves req unsigned.
//
// It sets x-amz-security-token when cred carries a token (and removes one
// left by an earlier signing when it does not), x-amz-date,
// x-amz-content-sha256 and Authorization. Signed headers: host, every
// x-amz-* header, and Content-MD5 and Content-Type when present.
//
// The path is signed as it goes on the wire, not escaped a second time (as
// S3 requires). So that this is the form S3 expects — every byte but
// A-Z a-z 0-9 - _ . ~ / percent-encoded — SignV4 sets req.URL.RawPath to
// that encoding of req.URL.Path; net/http then sends exactly what was signed,
// whatever characters the key holds.
func SignV4(req *http.Request, cred Credentials, region, payloadHash string, t time.Time) error {
	var hash []byte
	switch {
	case payloadHash == UnsignedPayload:
		hash = []byte(UnsignedPayload)
	case len(payloadHash) == hex.EncodedLen(32):
		var err error
		if hash, err = hex.DecodeString(payloadHash); err != nil {
			return fmt.Errorf("auth: SignV4: payload hash is not hex: %w", err)
		}
	default:
		return errors.New("auth: SignV4: payload hash must be a hex SHA-256 or UNSIGNED-PAYLOAD")
	}
	if region == "" {
		return errors.New("auth: SignV4: empty region")
	}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	if cred.SessionToken == "" {
		req.Header.Del(amzTokenHeader)
	}
	if req.URL.Opaque == "" && req.URL.Path != "" {
		req.URL.RawPath = s3EscapePath(req.URL.Path)
	}

	signer := sigv4.New(func(o *v4.SignerOptions) {
		o.HeaderRules = s3SignedHeaders{}
		o.DisableDoublePathEscape = true
		o.AddPayloadHashHeader = true
		o.DisableImplicitPayloadHashing = true
	})
	err := signer.SignRequest(&sigv4.SignRequestInput{
		Request:     req,
		PayloadHash: hash,
		Credentials: smithycreds.Credentials{
			AccessKeyID:     cred.SecretID,
			SecretAccessKey: cred.SecretKey,
			SessionToken:    cred.SessionToken,
			Expires:         cred.ExpiredTime,
		},
		Service: "s3",
		Region:  region,
		Time:    t,
	})
	if err != nil {
		return fmt.Errorf("auth: SignV4: %w", err)
	}
	return nil
}

// s3SignedHeaders chooses the headers SignV4 signs; names arrive lower-cased.
type s3SignedHeaders struct{}

func (s3SignedHeaders) IsSigned(h string) bool {
	return h == "host" || strings.HasPrefix(h, "x-amz-") || h == "content-md5" || h == "content-type"
}

// s3EscapePath percent-encodes every byte of p except A-Z a-z 0-9 - _ . ~ /
// with upper-case hex, the URI encoding SigV4 specifies for S3 paths.
func s3EscapePath(p string) string {
	n := 0
	for i := 0; i < len(p); i++ {
		if !cosUnreserved(p[i]) && p[i] != '/' {
			n++
		}
	}
	if n == 0 {
		return p
	}
	b := make([]byte, 0, len(p)+2*n)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if cosUnreserved(c) || c == '/' {
			b = append(b, c)
		} else {
			b = append(b, '%', signUpperHex[c>>4], signUpperHex[c&15])
		}
	}
	return string(b)
}
