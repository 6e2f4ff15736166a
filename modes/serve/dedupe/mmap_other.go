//go:build !unix

package dedupe

import "os"

// mapFile is not available here: records are written with pwrite.
func mapFile(f *os.File, size int) []byte { return nil }

func unmap(mem []byte) {}
