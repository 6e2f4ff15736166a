package discover

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"qchat/protocol"
)

// Search limits.
const (
	// DefaultWait is how long a search listens for answers.
	DefaultWait = time.Second
	// rounds is how many times the request is sent within the search
	// (at 0, Wait/4 and Wait/2): a lost datagram costs nothing.
	rounds = 3
	// maxServers bounds what one search keeps, whatever floods it.
	maxServers = 64
)

// Config is what a search is told.
type Config struct {
	Port int           // the discovery port; 0 for protocol.DiscoveryPort
	Wait time.Duration // how long to listen for answers; 0 for DefaultWait
	// Targets are where requests go; nil for Targets(Port): every
	// interface of this host. Tests ask loopback only.
	Targets []netip.AddrPort
}

// Server is a server that answered, with every address it answered from.
type Server struct {
	Name        string // as announced: show it escaped (protocol.Escape)
	Proto       string // "qchat/1"
	Fingerprint string // the key it announced, a hint only; "" without TLS
	Instance    string
	Port        int
	Addrs       []netip.Addr // best first (link-local ones with their zone)
	Known       bool         // known_servers holds its announced key for Addrs[0] (set by Prefer)
}

// Addr is the address to dial: the best one, at its port.
func (s Server) Addr() string {
	return netip.AddrPortFrom(s.Addrs[0], uint16(s.Port)).String()
}

// Find asks the LAN and returns the servers that answered within the
// wait, sorted by name and address. None is not an error.
func Find(ctx context.Context, cfg Config) ([]Server, error) {
	if cfg.Port == 0 {
		cfg.Port = protocol.DiscoveryPort
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	targets := cfg.Targets
	if targets == nil {
		var err error
		if targets, err = Targets(cfg.Port); err != nil {
			return nil, err
		}
	}
	nonce := randomToken(16)
	req := protocol.AppendDiscoverRequest(nil, nonce)
	deadline := time.Now().Add(cfg.Wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// One socket per address family, each sending to the targets of its
	// family.
	socks := map[bool]*net.UDPConn{} // by "is IPv4"
	var errs []error
	for _, v4 := range []bool{true, false} {
		if !slices.ContainsFunc(targets, func(t netip.AddrPort) bool { return t.Addr().Unmap().Is4() == v4 }) {
			continue
		}
		c, err := listenBroadcast(v4)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		defer c.Close()
		c.SetReadDeadline(deadline)
		socks[v4] = c
	}
	if len(socks) == 0 {
		if len(errs) == 0 {
			return nil, errors.New("no network interface to ask on")
		}
		return nil, fmt.Errorf("discovery socket: %w", errors.Join(errs...))
	}
	stop := context.AfterFunc(ctx, func() {
		for _, c := range socks {
			c.SetReadDeadline(time.Now())
		}
	})
	defer stop()

	col := newCollector(nonce, cfg.Port)
	var wg sync.WaitGroup
	for _, c := range socks {
		wg.Go(func() { col.read(c) })
	}
	sent := 0
	for round := range rounds {
		if round > 0 {
			select {
			case <-time.After(cfg.Wait * time.Duration(round) / 4):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		for _, t := range targets {
			c := socks[t.Addr().Unmap().Is4()]
			if c == nil {
				continue
			}
			if _, err := c.WriteToUDPAddrPort(req, netip.AddrPortFrom(t.Addr().Unmap(), t.Port())); err == nil {
				sent++
			}
		}
	}
	wg.Wait()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil, ctx.Err()
	}
	// A deadline of the caller's that came first (recv --timeout) ends
	// the search: what answered by then is the result.
	if sent == 0 {
		return nil, errors.New("no discovery request could be sent (no network?)")
	}
	return col.servers(), nil
}

// listenBroadcast opens a socket on any port: IPv4, allowed to send to
// broadcast addresses, or IPv6.
func listenBroadcast(v4 bool) (*net.UDPConn, error) {
	network := "udp6"
	if v4 {
		network = "udp4"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if v4 {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), network, ":0")
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// collector gathers the answers to one request.
type collector struct {
	nonce string
	port  int
	mu    sync.Mutex
	byKey map[string]*Server
	order []string
}

func newCollector(nonce string, port int) *collector {
	return &collector{nonce: nonce, port: port, byKey: make(map[string]*Server)}
}

// read takes answers from c until its deadline.
func (col *collector) read(c *net.UDPConn) {
	buf := make([]byte, 2*protocol.MaxDiscoveryAnswer)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		col.take(buf[:n], from)
	}
}

// take keeps one datagram when it is an answer to our request from a
// discovery port; anything else is dropped without a word.
func (col *collector) take(b []byte, from netip.AddrPort) {
	if int(from.Port()) != col.port {
		return
	}
	a, err := protocol.ParseDiscoverAnswer(b)
	if err != nil || a.Nonce != col.nonce {
		return
	}
	ip := from.Addr().Unmap()
	if !ip.Is6() || !ip.IsLinkLocalUnicast() {
		ip = ip.WithZone("")
	}
	key := a.Instance + " " + a.Fingerprint + " " + fmt.Sprint(a.Port) + " " + a.Proto + " " + a.Name
	col.mu.Lock()
	defer col.mu.Unlock()
	s := col.byKey[key]
	if s == nil {
		if len(col.byKey) >= maxServers {
			return
		}
		s = &Server{Name: a.Name, Proto: a.Proto, Fingerprint: a.Fingerprint, Instance: a.Instance, Port: a.Port}
		col.byKey[key] = s
		col.order = append(col.order, key)
	}
	if !slices.Contains(s.Addrs, ip) && len(s.Addrs) < 16 {
		s.Addrs = append(s.Addrs, ip)
	}
}

// servers returns what was gathered: each server's addresses ranked, the
// servers sorted by name, then address.
func (col *collector) servers() []Server {
	col.mu.Lock()
	defer col.mu.Unlock()
	out := make([]Server, 0, len(col.order))
	for _, k := range col.order {
		s := *col.byKey[k]
		s.Addrs = slices.Clone(s.Addrs)
		slices.SortStableFunc(s.Addrs, func(a, b netip.Addr) int { return cmp.Compare(rank(a), rank(b)) })
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(a, b Server) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Addr(), b.Addr()))
	})
	return out
}

// rank orders the addresses of one server: the same host first, then
// IPv4, IPv6, IPv6 link-local (its zone names this host's interface).
func rank(a netip.Addr) int {
	switch {
	case a.IsLoopback():
		return 0
	case a.Is4():
		return 1
	case !a.IsLinkLocalUnicast():
		return 2
	}
	return 3
}

// Prefer puts first, in each server, an address that known_servers
// holds for the key it announced (knownAt lists the addresses that hold
// a key), and marks the server Known. Between a real server and a fake
// one that copies its announcement, the address already trusted wins.
func Prefer(servers []Server, knownAt func(fp string) []string) {
	for i := range servers {
		s := &servers[i]
		if s.Fingerprint == "" || knownAt == nil {
			continue
		}
		known := knownAt(s.Fingerprint)
		for j, a := range s.Addrs {
			addr := netip.AddrPortFrom(a, uint16(s.Port)).String()
			if slices.ContainsFunc(known, func(k string) bool { return equalFoldASCII(k, addr) }) {
				s.Addrs = append([]netip.Addr{a}, slices.Delete(slices.Clone(s.Addrs), j, j+1)...)
				s.Known = true
				break
			}
		}
	}
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Targets lists where a search sends its request on this host: the
// broadcast address of each IPv4 network of each interface that is up
// (127.255.255.255 on the loopback), the IPv6 group on each multicast
// interface, and ::1 (the loopback has no multicast).
func Targets(port int) ([]netip.AddrPort, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("network interfaces: %w", err)
	}
	var out []netip.AddrPort
	add := func(a netip.Addr) {
		ap := netip.AddrPortFrom(a, uint16(port))
		if !slices.Contains(out, ap) {
			out = append(out, ap)
		}
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp == 0 {
			continue
		}
		loop := ifi.Flags&net.FlagLoopback != 0
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip4 := ipn.IP.To4(); ip4 != nil && len(ipn.Mask) >= 4 {
				ones, bits := ipn.Mask.Size()
				if !loop && (ifi.Flags&net.FlagBroadcast == 0 || bits-ones < 2) {
					continue // point to point, or a /31 or /32: no broadcast
				}
				m := ipn.Mask[len(ipn.Mask)-4:]
				var b [4]byte
				for i := range b {
					b[i] = ip4[i] | ^m[i]
				}
				add(netip.AddrFrom4(b))
			} else if loop && ipn.IP.Equal(net.IPv6loopback) {
				add(netip.IPv6Loopback())
			}
		}
		if !loop && ifi.Flags&net.FlagMulticast != 0 {
			add(protocol.DiscoveryGroup.WithZone(ifi.Name))
		}
	}
	return out, nil
}

// randomToken is n letters and digits from crypto/rand.
func randomToken(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
