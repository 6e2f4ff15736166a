package xfer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// dialTTL dials raddr from our peer port with a first SYN that has the
// given TTL (IPv6: hop limit), and everything after it the normal TTL:
// the first SYN makes our NAT's mapping and dies on the way; the
// retransmissions, and the SYN-ACK of a simultaneous open when the
// peer's SYN comes in through that mapping, go all the way. The SYN
// leaves inside connect(2), so the TTL is raised right after it, on the
// same socket (a second socket would start with another sequence number,
// which the NATs' connection tracking would not take for the same
// connection). It returns when the connection is up, refused, or ctx
// ends.
func dialTTL(ctx context.Context, port int, raddr *net.TCPAddr, ttl int) (net.Conn, error) {
	family, level, opt := unix.AF_INET, unix.IPPROTO_IP, unix.IP_TTL
	var sa, local unix.Sockaddr
	if ip4 := raddr.IP.To4(); ip4 != nil {
		sa, local = &unix.SockaddrInet4{Port: raddr.Port, Addr: [4]byte(ip4)}, &unix.SockaddrInet4{Port: port}
	} else {
		family, level, opt = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS
		sa, local = &unix.SockaddrInet6{Port: raddr.Port, Addr: [16]byte(raddr.IP.To16())}, &unix.SockaddrInet6{Port: port}
	}
	opErr := func(call string, err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: raddr, Err: os.NewSyscallError(call, err)}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, opErr("socket", err)
	}
	f := os.NewFile(uintptr(fd), "peer") // non-blocking: the runtime poller waits on it
	defer f.Close()
	normal, err := unix.GetsockoptInt(fd, level, opt)
	if err == nil {
		// As every socket on the peer port: SO_REUSEADDR, SO_REUSEPORT.
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	if err == nil {
		err = unix.SetsockoptInt(fd, level, opt, ttl)
	}
	if err != nil {
		return nil, opErr("setsockopt", err)
	}
	if err := unix.Bind(fd, local); err != nil {
		return nil, opErr("bind", err)
	}
	if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return nil, opErr("connect", err)
	}
	if err := unix.SetsockoptInt(fd, level, opt, normal); err != nil {
		return nil, opErr("setsockopt", err)
	}

	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	var connErr error
	err = rc.Write(func(fd uintptr) bool {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO)
		if err != nil {
			connErr = err
			return true
		}
		switch info.State {
		case unix.BPF_TCP_ESTABLISHED:
			return true
		case unix.BPF_TCP_SYN_SENT, unix.BPF_TCP_SYN_RECV: // SYN_RECV: a simultaneous open under way
			return false // wait until writable
		}
		if v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v != 0 {
			connErr = unix.Errno(v)
		} else {
			connErr = fmt.Errorf("connection in state %d", info.State)
		}
		return true
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if connErr != nil {
		return nil, opErr("connect", connErr)
	}
	return net.FileConn(f)
}
