package main

import (
	"os"
	"os/exec"
	"testing"
)

// TestBuildsForDarwin: the command builds for macOS (macFUSE), where
// Stat_t.Dev is an int32 and Linux's /sys and /proc are not there.
func TestBuildsForDarwin(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the command")
	}
	c := exec.Command("go", "build", "-o", os.DevNull, ".")
	c.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=darwin GOARCH=arm64 go build: %v\n%s", err, out)
	}
}
