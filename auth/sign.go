package auth

import (
	"net/http"
	"time"
)

// SignCOS signs req with COS's q-sign-algorithm=sha1 scheme. It sets
// x-cos-security-token when cred carries a token, then Authorization, signing
// host plus every header present in req.Header and every query parameter,
// valid from start to end.
func SignCOS(req *http.Request, cred Credentials, start, end time.Time) {
	panic("TODO")
}

// UnsignedPayload is the SigV4 payload hash for bodies that are not hashed.
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// SignV4 signs req with AWS Signature Version 4 for service "s3" in region,
// at time t. payloadHash is the hex SHA-256 of the body, or UnsignedPayload.
// It sets x-amz-security-token when cred carries a token, x-amz-date,
// x-amz-content-sha256 and Authorization.
func SignV4(req *http.Request, cred Credentials, region, payloadHash string, t time.Time) error {
	panic("TODO")
}

// EmptyPayloadHash is the hex SHA-256 of an empty body.
const EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
