//go:build !unix

package client

import "os"

// lockFile does nothing here: two clients making first contact at the
// same moment may both remember the key (the same line twice).
func lockFile(f *os.File) (unlock func()) { return func() {} }
