package xfer

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// A partial file is qchat's when it carries this extended attribute, set
// when the receiver creates it: a NAME.part that is someone's own file is
// never resumed, truncated or renamed. File systems without user xattrs
// cannot tell: there every NAME.part is taken for a partial.
const partAttr = "user.qchat.part"

// markPart marks a new partial file as qchat's.
func markPart(f *os.File) {
	unix.Fsetxattr(int(f.Fd()), partAttr, []byte("1"), 0)
}

// isPart reports whether f may be taken for a partial download of qchat's.
func isPart(f *os.File) bool {
	_, err := unix.Fgetxattr(int(f.Fd()), partAttr, nil)
	return err == nil || !errors.Is(err, unix.ENODATA)
}

// lockPart takes the partial file for this transfer (exclusive) or for a
// look (shared), without waiting: another transfer, in this process or
// another, holds it otherwise. The lock goes with the file's close.
func lockPart(f *os.File, exclusive bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// unlockPart gives a shared look back.
func unlockPart(f *os.File) { unix.Flock(int(f.Fd()), unix.LOCK_UN) }
