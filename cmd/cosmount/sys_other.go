//go:build !linux

package main

import "log/slog"

// raiseReadahead is Linux's (a bdi's read_ahead_kb): elsewhere the
// system's default stays.
func raiseReadahead(mountpoint string, logger *slog.Logger) {}

// lockCode is Linux's (/proc/self/maps and mlock): elsewhere nothing is
// locked.
func lockCode(logger *slog.Logger) {}
