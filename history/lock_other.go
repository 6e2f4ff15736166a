//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris || windows)

package history

import "os"

// On these systems there is no file lock: appends from one process are still
// serialised and deduplicated, but two processes appending to one
// conversation at the same moment are not.
func lockFile(*os.File, bool) error { return nil }
func unlockFile(*os.File) error     { return nil }
