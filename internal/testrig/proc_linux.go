package testrig

import "syscall"

// childAttr makes the server die with the test binary.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
