//go:build windows

package history

import (
	"os"

	"golang.org/x/sys/windows"
)

// lockFile takes LockFileEx on f, exclusive or shared; it blocks until
// granted. Windows locks are mandatory, so the locked byte lies far past any
// real end of file, where no reader or writer ever goes.
func lockFile(f *os.File, exclusive bool) error {
	var flags uint32
	if exclusive {
		flags = windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	ol := lockOverlapped()
	if err := windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, &ol); err != nil {
		return &os.PathError{Op: "LockFileEx", Path: f.Name(), Err: err}
	}
	return nil
}

func unlockFile(f *os.File) error {
	ol := lockOverlapped()
	if err := windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &ol); err != nil {
		return &os.PathError{Op: "UnlockFileEx", Path: f.Name(), Err: err}
	}
	return nil
}

func lockOverlapped() windows.Overlapped {
	return windows.Overlapped{Offset: 0xfffffffe, OffsetHigh: 0x7fffffff}
}
