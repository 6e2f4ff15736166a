package serve

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tcpRTT reads the minimum round trip of a TCP connection from TCP_INFO.
func tcpRTT(c net.Conn) time.Duration {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var rtt time.Duration
	raw.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO)
		if err != nil {
			return
		}
		us := info.Min_rtt
		if us == 0 || us == ^uint32(0) {
			us = info.Rtt
		}
		rtt = time.Duration(us) * time.Microsecond
	})
	return rtt
}
