//go:build !linux

package testrig

import "syscall"

// childAttr: only Linux can tie the server's life to the test binary's.
func childAttr() *syscall.SysProcAttr { return nil }
