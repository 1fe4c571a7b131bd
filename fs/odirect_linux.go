package fs

import "syscall"

// oDirect is the open flag of direct I/O.
const oDirect = syscall.O_DIRECT
