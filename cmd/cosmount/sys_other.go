//go:build !linux

package main

import "log/slog"

// raiseReadahead is Linux's (a bdi's read_ahead_kb): elsewhere the
// system's default stays.
func raiseReadahead(mountpoint string, logger *slog.Logger) {}

// lockCode is Linux's (/proc/self/maps and mlock): elsewhere nothing is
// locked.
func lockCode(logger *slog.Logger) {}

// fuseDevice is Linux's /dev/fuse; macFUSE has devices of its own.
const fuseDevice = ""

// checkFuseDevice is Linux's: elsewhere the mount says what is missing.
func checkFuseDevice(path string, euid int) error { return nil }
