//go:build !linux

package xfer

import "os"

// Elsewhere partial files are neither marked nor locked: every NAME.part
// is taken for a partial, and concurrent transfers of one name are not
// kept apart.

func markPart(*os.File)             {}
func isPart(*os.File) bool          { return true }
func lockPart(*os.File, bool) error { return nil }
func unlockPart(*os.File)           {}
