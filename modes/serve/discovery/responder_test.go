package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"qchat/protocol"
)

// These tests run on loopback only: queries go to 127.255.255.255 (the
// loopback broadcast, which every socket bound to the port gets) or to
// 127.0.0.1, never to a real network. Real broadcast and multicast
// between hosts is the testscript discovery_lan's (network namespaces).

const (
	fpA = "SHA256:jBX8t1CCrVHvpHbWXrs59tdpla9U7kw221mQeSRpGss"
	fpB = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func start(t *testing.T, cfg Config) *Responder {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = quiet
	}
	if cfg.Proto == "" {
		cfg.Proto = "qchat/1"
	}
	r, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// asker is a client socket on loopback.
type asker struct {
	t *testing.T
	c *net.UDPConn
}

func newAsker(t *testing.T) *asker {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := c.SyscallConn()
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1) })
	t.Cleanup(func() { c.Close() })
	return &asker{t: t, c: c}
}

func (a *asker) send(b []byte, to string, port int) {
	a.t.Helper()
	if _, err := a.c.WriteTo(b, &net.UDPAddr{IP: net.ParseIP(to), Port: port}); err != nil {
		a.t.Fatal(err)
	}
}

func (a *asker) ask(nonce string, to string, port int) {
	a.send(protocol.AppendDiscoverRequest(nil, nonce), to, port)
}

// read returns the next answer and where it came from. The deadline only
// bounds a broken test: every call expects an answer that was sent.
func (a *asker) read() (protocol.Announcement, netip.AddrPort) {
	a.t.Helper()
	buf := make([]byte, 2048)
	a.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := a.c.ReadFromUDPAddrPort(buf)
	if err != nil {
		a.t.Fatalf("no answer: %v", err)
	}
	ann, err := protocol.ParseDiscoverAnswer(buf[:n])
	if err != nil {
		a.t.Fatalf("answer %q: %v", buf[:n], err)
	}
	return ann, from
}

// waitStats polls until the responder has handled n datagrams.
func waitStats(t *testing.T, r *Responder, n int64) Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := r.Stats()
		if s.Answered+s.Interface+s.Malformed+s.Short+s.Limited >= n {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %+v, want %d in all", s, n)
		}
		time.Sleep(time.Millisecond) // polling
	}
}

func TestAnswersOnLoopback(t *testing.T) {
	var fp atomic.Value
	fp.Store(fpA)
	r := start(t, Config{Listen: netip.MustParseAddrPort("127.0.0.1:4321"), Name: "lab host",
		Fingerprint: func() string { return fp.Load().(string) }})
	a := newAsker(t)
	a.ask("nonce0001", "127.255.255.255", r.Port())
	ann, from := a.read()
	if ann.Nonce != "nonce0001" || ann.Port != 4321 || ann.Proto != "qchat/1" || ann.Fingerprint != fpA || ann.Name != "lab host" {
		t.Fatalf("answer %+v", ann)
	}
	if from.Addr() != netip.MustParseAddr("127.0.0.1") || int(from.Port()) != r.Port() {
		t.Fatalf("answer from %s, want 127.0.0.1:%d", from, r.Port())
	}
	// A new key (SIGHUP) is announced at once; the instance stays.
	fp.Store(fpB)
	a.ask("nonce0002", "127.0.0.1", r.Port())
	ann2, _ := a.read()
	if ann2.Fingerprint != fpB || ann2.Instance != ann.Instance {
		t.Fatalf("after reload %+v (before %+v)", ann2, ann)
	}
}

func TestNoTLSAnnouncesNoKey(t *testing.T) {
	r := start(t, Config{Listen: netip.MustParseAddrPort("127.0.0.1:4000"), Name: "clear"})
	a := newAsker(t)
	a.ask("nonce0001", "127.255.255.255", r.Port())
	if ann, _ := a.read(); ann.Fingerprint != "" {
		t.Fatalf("fingerprint %q without TLS", ann.Fingerprint)
	}
}

// Two servers on one host share the port: a broadcast reaches both.
func TestTwoServersOnOneHostBothAnswer(t *testing.T) {
	r1 := start(t, Config{Listen: netip.MustParseAddrPort("127.0.0.1:5001"), Name: "one", Fingerprint: func() string { return fpA }})
	r2 := start(t, Config{Port: r1.Port(), Listen: netip.MustParseAddrPort("127.0.0.1:5002"), Name: "two", Fingerprint: func() string { return fpB }})
	a := newAsker(t)
	a.ask("nonce0001", "127.255.255.255", r1.Port())
	got := map[string]int{}
	for range 2 {
		ann, _ := a.read()
		got[ann.Name] = ann.Port
	}
	if got["one"] != 5001 || got["two"] != 5002 {
		t.Fatalf("answers %v", got)
	}
	_ = r2
}

// Hostile requests get no answer and leave the responder answering.
func TestHostileRequests(t *testing.T) {
	r := start(t, Config{Listen: netip.MustParseAddrPort("127.0.0.1:4000"), Name: "x", Fingerprint: func() string { return fpA }})
	a := newAsker(t)
	good := protocol.AppendDiscoverRequest(nil, "goodnonce1")
	for _, bad := range [][]byte{
		[]byte("QCHAT-DISCOVER 1 shortnonce\n"), // not padded: its answer would be bigger (amplification)
		good[:protocol.DiscoveryRequestSize-1],
		append(protocol.AppendDiscoverRequest(nil, "bignonce01"), bytes.Repeat([]byte("."), 2000)...), // oversized
		bytes.Repeat([]byte{0xff}, 600),
		append([]byte("QCHAT-DISCOVER 1 \x1b[2J\x1b]0;x\x07\n"), bytes.Repeat([]byte("."), 600)...),
		[]byte("QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 - spoof\n"), // an answer is not a request
		{},
	} {
		a.send(bad, "127.0.0.1", r.Port())
	}
	a.send(good, "127.0.0.1", r.Port())
	ann, _ := a.read()
	if ann.Nonce != "goodnonce1" {
		t.Fatalf("first answer is to %q", ann.Nonce)
	}
	s := waitStats(t, r, 8)
	if s.Answered != 1 || s.Short != 2 || s.Malformed != 5 {
		t.Fatalf("stats %+v", s)
	}
}

// Answers are rated per source: a flood of requests (with a forged
// source, a reflection attempt) gets the burst, then the rate.
func TestRatePerSource(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	r := start(t, Config{Listen: netip.MustParseAddrPort("127.0.0.1:4000"), Name: "x", Now: clock.Now})
	a := newAsker(t)
	for range perSourceBurst + 5 {
		a.ask("nonce0001", "127.0.0.1", r.Port())
	}
	s := waitStats(t, r, perSourceBurst+5)
	if s.Answered != perSourceBurst || s.Limited != 5 {
		t.Fatalf("stats %+v, want %d answered and 5 limited", s, perSourceBurst)
	}
	for range perSourceBurst {
		a.read()
	}
	clock.Add(time.Second) // two tokens back
	for range 3 {
		a.ask("nonce0002", "127.0.0.1", r.Port())
	}
	s = waitStats(t, r, perSourceBurst+8)
	if s.Answered != perSourceBurst+2 || s.Limited != 6 {
		t.Fatalf("after a second: %+v", s)
	}
	if ann, _ := a.read(); ann.Nonce != "nonce0002" {
		t.Fatalf("answer to %q", ann.Nonce)
	}
}

func TestRaterTotalAndSweep(t *testing.T) {
	rt := newRater()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	answered := 0
	for i := range 1000 {
		src := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if rt.allow(src, now) == "" {
			answered++
		}
	}
	if answered != totalBurst {
		t.Fatalf("%d answered at once from 1000 sources, want the server's burst %d", answered, totalBurst)
	}
	// Hosts of one link share fe80::/64 but count alone; hosts of one
	// global /64 count as one.
	rt = newRater()
	for i := range perSourceBurst {
		for _, src := range []string{fmt.Sprintf("fe80::%x%%eth0", i+1), fmt.Sprintf("fe80::%x", 100+i)} {
			if why := rt.allow(netip.MustParseAddr(src), now); why != "" {
				t.Fatalf("link-local %s limited (%s)", src, why)
			}
		}
	}
	limited := 0
	for i := range perSourceBurst + 1 {
		if rt.allow(netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i+1)), now) != "" {
			limited++
		}
	}
	if limited != 1 {
		t.Fatalf("one /64 of global addresses: %d limited, want 1", limited)
	}
	rt.sweep(now.Add(time.Hour))
	if len(rt.sources) != 0 {
		t.Fatalf("%d sources kept after an hour", len(rt.sources))
	}
}

// A server that listens on one address answers only on the interface
// that holds it, and only to sources on that interface's network.
func TestAnswersOnlyWhereItListens(t *testing.T) {
	lo := loopbackIndex(t)
	ifs := func() ([]Iface, error) {
		return []Iface{
			{Index: lo, Name: "lo", Flags: net.FlagUp | net.FlagLoopback, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
			{Index: 9999, Name: "eth9", Flags: net.FlagUp | net.FlagBroadcast | net.FlagMulticast, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.9.9.9/24")}},
		}, nil
	}
	elsewhere := start(t, Config{Listen: netip.MustParseAddrPort("10.9.9.9:4000"), Name: "eth9 only", Ifaces: ifs})
	here := start(t, Config{Port: elsewhere.Port(), Listen: netip.MustParseAddrPort("127.0.0.1:4000"), Name: "loopback", Ifaces: ifs})
	everywhere := start(t, Config{Port: elsewhere.Port(), Listen: netip.MustParseAddrPort("[::]:4000"), Name: "all", Ifaces: ifs})
	a := newAsker(t)
	a.ask("nonce0001", "127.255.255.255", elsewhere.Port())
	names := map[string]bool{}
	for range 2 {
		ann, _ := a.read()
		names[ann.Name] = true
	}
	if !names["loopback"] || !names["all"] {
		t.Fatalf("answers from %v", names)
	}
	if s := waitStats(t, elsewhere, 1); s.Interface != 1 || s.Answered != 0 {
		t.Fatalf("the eth9 server: %+v", s)
	}
	_, _ = here, everywhere
}

func TestViewAllows(t *testing.T) {
	lo := Iface{Index: 1, Name: "lo", Flags: net.FlagUp | net.FlagLoopback, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")}}
	eth := Iface{Index: 2, Name: "eth0", Flags: net.FlagUp | net.FlagBroadcast | net.FlagMulticast,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.1.5/24"), netip.MustParsePrefix("fd00:1::5/64")}}
	wlan := Iface{Index: 3, Name: "wlan0", Flags: net.FlagUp | net.FlagBroadcast | net.FlagMulticast, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.7/16")}}
	ifs := []Iface{lo, eth, wlan}
	for _, tc := range []struct {
		listen string
		index  int
		src    string
		want   bool
	}{
		{"::", 2, "192.168.1.20", true},
		{"::", 2, "192.168.2.20", false}, // off the interface's network: a forged or routed source
		{"::", 2, "fe80::1%eth0", true},
		{"::", 2, "fd00:1::9", true},
		{"::", 2, "2001:db8::1", false},
		{"::", 3, "10.0.200.1", true},
		{"::", 1, "127.0.0.1", true},
		{"::", 2, "127.0.0.1", false}, // loopback sources only on loopback
		{"::", 7, "192.168.1.20", false},
		{"0.0.0.0", 2, "192.168.1.20", true},
		{"127.0.0.1", 1, "127.0.0.1", true},
		{"127.0.0.1", 2, "192.168.1.20", false},
		{"192.168.1.5", 2, "192.168.1.20", true},
		{"192.168.1.5", 3, "10.0.0.1", false},
		{"192.168.1.5", 1, "127.0.0.1", false},
		{"fd00:1::5", 2, "fe80::1", true},
		{"fd00:1::5", 3, "fe80::1", false},
	} {
		v := newView(ifs, netip.MustParseAddr(tc.listen))
		if got := v.allows(tc.index, netip.MustParseAddr(tc.src)); got != tc.want {
			t.Errorf("listen %s, if %d, from %s: %v, want %v", tc.listen, tc.index, tc.src, got, tc.want)
		}
	}
	if got := strings.Join(newView(ifs, netip.MustParseAddr("192.168.1.5")).names(), ","); got != "eth0" {
		t.Errorf("names = %s", got)
	}
	if got := len(newView(ifs, netip.MustParseAddr("::")).multicast()); got != 2 {
		t.Errorf("%d multicast interfaces, want 2", got)
	}
}

func TestSourcePortBelow1024IsIgnored(t *testing.T) {
	r := start(t, Config{Listen: netip.MustParseAddrPort("127.0.0.1:4000"), Name: "x"})
	b := r.handle(nil, protocol.AppendDiscoverRequest(nil, "nonce0001"), loopbackIndex(t), netip.MustParseAddrPort("127.0.0.1:53"))
	if b != nil {
		t.Fatalf("answered a request from port 53: %q", b)
	}
}

func loopbackIndex(t *testing.T) int {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 && ifi.Flags&net.FlagUp != 0 {
			return ifi.Index
		}
	}
	t.Skip("no loopback interface up")
	return 0
}

func TestStartFailsWithoutSockets(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // bound without SO_REUSEADDR: the port cannot be shared
	_, err = Start(Config{Port: c.LocalAddr().(*net.UDPAddr).Port, Listen: netip.MustParseAddrPort("127.0.0.1:4000"), Log: quiet})
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("err = %v, want address in use", err)
	}
}
