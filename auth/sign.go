package auth

// Request signing. Two schemes share this file's constants:
//
//   - SignCOS (sign_cos.go): COS's q-sign-algorithm=sha1, as described on
//     COS's "Request Signature" page.
//   - SignV4 (sign_v4.go): AWS Signature Version 4 for S3-compatible stores.
//
// Both are pure functions of their arguments: no state is kept between
// calls, so they are safe to call from any number of goroutines on
// different requests.

// UnsignedPayload is the SigV4 payload hash for bodies that are not hashed.
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// EmptyPayloadHash is the hex SHA-256 of an empty body.
const EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
