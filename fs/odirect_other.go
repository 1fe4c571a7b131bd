//go:build !linux

package fs

// oDirect is the open flag of direct I/O; macOS has none (F_NOCACHE is
// set on the descriptor instead), so no open asks for it.
const oDirect = 0
