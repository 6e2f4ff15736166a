package xfer

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames from to to, both plain names in folder d,
// failing with fs.ErrExist when to exists: renameat2(RENAME_NOREPLACE) on
// the folder's descriptor, one step (a name without '/' relative to a
// folder's descriptor cannot lead out of it). File systems without it get
// linkNoReplace.
func renameNoReplace(d *folder, from, to string) error {
	if strings.ContainsRune(from, '/') || strings.ContainsRune(to, '/') {
		return fmt.Errorf("rename %s: not a name in the folder", to)
	}
	fd := int(d.f.Fd())
	err := unix.Renameat2(fd, from, fd, to, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return fs.ErrExist
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP):
		return linkNoReplace(d.root, from, to)
	}
	return &fs.PathError{Op: "rename", Path: to, Err: err}
}
