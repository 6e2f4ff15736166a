//go:build unix

package dedupe

import (
	"os"
	"syscall"
)

// mapFile maps the first size bytes of f, shared (stores reach the page
// cache, and through it the file); nil when it cannot.
func mapFile(f *os.File, size int) []byte {
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	return mem
}

func unmap(mem []byte) { syscall.Munmap(mem) }
