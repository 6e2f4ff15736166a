package xfer

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dialTTL's first SYN has the small TTL and the rest of the connection
// the normal one: a listener that drops packets with a TTL below
// primeTTL+1 (IP_MINTTL) drops the first SYN, takes the retransmitted
// one, and the connection then works both ways.
func TestDialTTLFirstSYNOnly(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MINTTL, primeTTL+1) })
		return err
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, err := Listen("")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dialTTL(ctx, p.Port(), ln.Addr().(*net.TCPAddr), primeTTL)
	if err != nil {
		t.Fatalf("dialTTL: %v", err)
	}
	defer conn.Close()
	if got := conn.LocalAddr().(*net.TCPAddr).Port; got != p.Port() {
		t.Errorf("dialed from port %d, want the peer port %d", got, p.Port())
	}
	var info *unix.TCPInfo
	var ttl int
	rc, _ := conn.(*net.TCPConn).SyscallConn()
	rc.Control(func(fd uintptr) {
		info, _ = unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO)
		ttl, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL)
	})
	if info == nil || info.Total_retrans == 0 {
		t.Errorf("the first SYN got through a listener that drops TTL < %d (tcp_info %+v)", primeTTL+1, info)
	}
	if ttl <= primeTTL {
		t.Errorf("after the first SYN the TTL is %d", ttl)
	}
	srv := <-accepted
	if srv == nil {
		t.Fatal("nothing accepted")
	}
	defer srv.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := srv.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("read %q, %v", b, err)
	}
}

// A refused dial says so, as net.Dial would.
func TestDialTTLRefused(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	_, err = dialTTL(context.Background(), 0, addr, primeTTL)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialTTL to a closed port: %v, want connection refused", err)
	}
}
