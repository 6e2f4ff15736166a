//go:build !linux

package xfer

// renameNoReplace renames from to to in folder d, failing with
// fs.ErrExist when to exists.
func renameNoReplace(d *folder, from, to string) error {
	return linkNoReplace(d.root, from, to)
}
