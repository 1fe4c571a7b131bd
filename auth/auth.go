// Package auth holds credentials, the sources they come from, and request
// signing: COS's q-sign-algorithm=sha1 and AWS Signature Version 4.
//
// Lock order: a Refresher's mu is the only lock in this package; it is never
// held while a source is called.
package auth

import (
	"context"
	"time"
)

// Credentials is one set of keys. Zero times mean permanent keys.
type Credentials struct {
	SecretID, SecretKey, SessionToken string
	// StartTime is the server's time when the keys were issued, when the
	// source says so; it anchors signature validity against a skewed clock.
	StartTime time.Time
	// ExpiredTime is when the keys stop working.
	ExpiredTime time.Time
}

// Permanent reports whether the credentials never expire.
func (c Credentials) Permanent() bool { return c.ExpiredTime.IsZero() }

// String never prints a secret.
func (c Credentials) String() string {
	return "Credentials{SecretID:" + redactID(c.SecretID) + "}"
}

// GoString never prints a secret either (%#v).
func (c Credentials) GoString() string { return c.String() }

func redactID(id string) string {
	if len(id) <= 8 {
		return "***"
	}
	return id[:4] + "***" + id[len(id)-4:]
}

// Provider hands out the credentials to sign the next request with.
type Provider interface {
	Retrieve(ctx context.Context) (Credentials, error)
}

// Invalidator is implemented by providers that can be told the server
// refused their current credentials; the next Retrieve then fetches new ones.
type Invalidator interface {
	Invalidate(refused Credentials)
}

// Static is a Provider for fixed keys.
type Static struct{ Creds Credentials }

// NewStatic returns a Provider that always answers c.
func NewStatic(c Credentials) *Static { return &Static{Creds: c} }

// Retrieve implements Provider.
func (s *Static) Retrieve(context.Context) (Credentials, error) { return s.Creds, nil }
