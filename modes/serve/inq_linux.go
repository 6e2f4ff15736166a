package serve

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// unreadBytes is what the kernel holds of c's input that nobody has read
// yet (SIOCINQ); 0 when it cannot tell.
func unreadBytes(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	rc.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	return n
}
