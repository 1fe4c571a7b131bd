package testrig

import (
	"context"
	"errors"
	"testing"

	"cosmount/auth"
)

// TestIAMAccounts: an account created through the admin API signs requests
// at once, and is refused at once after it is deleted.
func TestIAMAccounts(t *testing.T) {
	s := StartIAM(t)
	ctx := context.Background()
	bucket := s.Root().NewBucket(t)
	cred := auth.Credentials{SecretID: "user" + randHex(4), SecretKey: randHex(16)}
	if _, _, err := s.Probe(ctx, bucket, cred); !errors.Is(err, ErrRefused) {
		t.Fatalf("unknown keys: %v, want refused", err)
	}
	if err := s.CreateUser(ctx, cred.SecretID, cred.SecretKey, RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if st, code, err := s.Probe(ctx, bucket, cred); err != nil {
		t.Fatalf("new account: %d %s %v", st, code, err)
	}
	if err := s.DeleteUser(ctx, cred.SecretID); err != nil {
		t.Fatal(err)
	}
	st, code, err := s.Probe(ctx, bucket, cred)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("deleted account: %d %s %v, want refused", st, code, err)
	}
	t.Logf("deleted account refused: HTTP %d %s", st, code)
	if err := s.CreateUser(ctx, "x"+randHex(4), randHex(16), "nosuchrole"); err == nil {
		t.Error("a bad role was accepted")
	}
}
