//go:build !linux

package xfer

import (
	"context"
	"net"

	reuseport "github.com/libp2p/go-reuseport"
)

// dialTTL is a plain dial from our peer port where the first SYN's TTL
// is not set: the attempts where both sides dial at once still work.
func dialTTL(ctx context.Context, port int, raddr *net.TCPAddr, ttl int) (net.Conn, error) {
	d := net.Dialer{Control: reuseport.Control, LocalAddr: &net.TCPAddr{Port: port}}
	return d.DialContext(ctx, "tcp", raddr.String())
}
