//go:build unix

package client

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on f (flock), waiting for it, and
// returns its release. Without a lock (a file system that has none) the
// caller goes on unlocked.
func lockFile(f *os.File) (unlock func()) {
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX) != nil {
		return func() {}
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
}
