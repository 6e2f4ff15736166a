//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris

package history

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes flock(2) on f, exclusive or shared; it blocks until granted.
// The lock belongs to the open file, so two Logs in one process exclude each
// other just as two processes do.
func lockFile(f *os.File, exclusive bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	return flock(f, how)
}

func unlockFile(f *os.File) error { return flock(f, unix.LOCK_UN) }

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if ferr != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	if ferr != nil {
		return &os.PathError{Op: "flock", Path: f.Name(), Err: ferr}
	}
	return nil
}
