package discover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"qchat/protocol"
)

// The tests ask loopback only (127.255.255.255, which every socket bound
// to the port gets), on a port the kernel picked: fake servers answer
// there. Real broadcast and multicast between hosts is the testscript
// discovery_lan's (network namespaces).

const (
	fpA = "SHA256:jBX8t1CCrVHvpHbWXrs59tdpla9U7kw221mQeSRpGss"
	fpB = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
)

// testWait is the search's own listening time: loopback answers come
// within microseconds, and the search asks three times.
const testWait = 300 * time.Millisecond

// lab is a discovery port on loopback with fake servers on it.
type lab struct {
	t    *testing.T
	port int
}

func newLab(t *testing.T) *lab {
	c := bindReuse(t, "0.0.0.0:0")
	l := &lab{t: t, port: c.LocalAddr().(*net.UDPAddr).Port}
	c.Close()
	return l
}

func (l *lab) config() Config {
	return Config{Port: l.port, Wait: testWait, Targets: []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.255.255.255"), uint16(l.port))}}
}

func bindReuse(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

// serve runs a fake server on the lab's port: answer returns the
// datagrams to send to a request (with its nonce), each from the socket
// of the given source ("" for the port on 0.0.0.0).
func (l *lab) serve(answer func(nonce string) []reply) {
	c := bindReuse(l.t, fmt.Sprintf("0.0.0.0:%d", l.port))
	from := map[string]*net.UDPConn{"": c}
	// Sockets for other sources are bound before the first request.
	for _, r := range answer("probe0000") {
		if from[r.from] == nil {
			from[r.from] = bindReuse(l.t, r.from)
		}
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			nonce, err := protocol.ParseDiscoverRequest(buf[:n])
			if err != nil {
				continue
			}
			for _, r := range answer(nonce) {
				from[r.from].WriteToUDPAddrPort(r.b, src)
			}
		}
	}()
}

type reply struct {
	from string // "127.0.0.2:PORT", or "" for 0.0.0.0:PORT
	b    []byte
}

func announce(nonce, instance string, port int, fp, name string) []byte {
	b, err := protocol.AppendDiscoverAnswer(nil, protocol.Announcement{Nonce: nonce, Instance: instance, Port: port,
		Proto: protocol.ProtocolName, Fingerprint: fp, Name: name})
	if err != nil {
		panic(err)
	}
	return b
}

// server is a fake server that answers every request honestly.
func (l *lab) server(instance string, port int, fp, name string) {
	l.serve(func(nonce string) []reply { return []reply{{b: announce(nonce, instance, port, fp, name)}} })
}

func TestFindOneServer(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.server("instance1", 4100, fpA, "lab")
	found, err := Find(context.Background(), l.config())
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("found %+v", found)
	}
	s := found[0]
	// Asked three times, answered three times: one server, one address.
	if s.Name != "lab" || s.Port != 4100 || s.Fingerprint != fpA || s.Proto != "qchat/1" || s.Addr() != "127.0.0.1:4100" || len(s.Addrs) != 1 {
		t.Fatalf("server %+v (%s)", s, s.Addr())
	}
}

// One server answers on each of its paths: one entry, every address;
// the one known_servers holds for its key comes first.
func TestFindMergesOneServersPaths(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	second := fmt.Sprintf("127.0.0.2:%d", l.port)
	l.serve(func(nonce string) []reply {
		a := announce(nonce, "instance1", 4100, fpA, "lab")
		return []reply{{b: a}, {from: second, b: a}}
	})
	found, err := Find(context.Background(), l.config())
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || len(found[0].Addrs) != 2 {
		t.Fatalf("found %+v", found)
	}
	Prefer(found, func(fp string) []string {
		if fp == fpA {
			return []string{"10.1.1.1:4100", "127.0.0.2:4100"}
		}
		return nil
	})
	if s := found[0]; s.Addr() != "127.0.0.2:4100" || !s.Known || len(s.Addrs) != 2 {
		t.Fatalf("preferred %+v", s)
	}
}

// What is not an answer to this search is dropped: a stale or forged
// nonce, a malformed or oversized datagram, one from another port. A
// name with control characters is taken and shown escaped.
func TestFindHostileAnswers(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	other := bindReuse(t, "127.0.0.1:0")
	l.serve(func(nonce string) []reply {
		return []reply{
			{b: announce("stalenonce1", "instance9", 4999, fpB, "stale")},
			{b: []byte("QCHAT-SERVER 1 " + nonce + " instance9 4999 qchat/1 - two\nlines\n")},
			{b: append(announce(nonce, "instance9", 4999, "", "big"), bytes.Repeat([]byte("x"), 600)...)},
			{b: bytes.Repeat([]byte{0}, 100)},
			{b: []byte("QCHAT-SERVER 1 " + nonce + " instance2 4101 qchat/1 - \x1b]0;pwned\x07\x1b[2J\u202eevil\n")},
		}
	})
	// An answer from a port that is not the discovery port.
	l.serve(func(nonce string) []reply {
		return []reply{{from: other.LocalAddr().String(), b: announce(nonce, "instance8", 4888, "", "not from the port")}}
	})
	found, err := Find(context.Background(), l.config())
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Port != 4101 {
		t.Fatalf("found %+v", found)
	}
	shown := List(found)
	if strings.ContainsAny(shown, "\x1b\x07\u202e") || !strings.Contains(shown, `\x1b]0;pwned\x07\x1b[2J\u202eevil`) {
		t.Fatalf("list not escaped: %q", shown)
	}
}

// A flood of answers keeps at most maxServers servers.
func TestFindBoundsAFlood(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.serve(func(nonce string) []reply {
		var out []reply
		for i := range 200 {
			out = append(out, reply{b: announce(nonce, fmt.Sprintf("flood%05d", i), 4000+i, "", "flood")})
		}
		return out
	})
	found, err := Find(context.Background(), l.config())
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != maxServers {
		t.Fatalf("kept %d servers, want %d", len(found), maxServers)
	}
}

func TestFindNothing(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	found, err := Find(context.Background(), l.config())
	if err != nil || len(found) != 0 {
		t.Fatalf("found %+v, %v", found, err)
	}
}

func TestFindCancelled(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Find(ctx, l.config()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestRank(t *testing.T) {
	t.Parallel()
	found := (&collector{byKey: map[string]*Server{"k": {Port: 1, Addrs: []netip.Addr{
		netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("fd00::1"), netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("127.0.0.1"),
	}}}, order: []string{"k"}}).servers()
	var got []string
	for _, a := range found[0].Addrs {
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != "127.0.0.1 10.0.0.5 fd00::1 fe80::1%eth0" {
		t.Fatalf("ranked %v", got)
	}
	if a := (Server{Port: 4000, Addrs: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}}).Addr(); a != "[fe80::1%eth0]:4000" {
		t.Fatalf("link-local address %q", a)
	}
}
