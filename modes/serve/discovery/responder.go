package discovery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"qchat/protocol"
)

// Config is what the server tells its responder.
type Config struct {
	Port        int            // UDP port; 0 picks a free one (tests)
	Listen      netip.AddrPort // the server's TCP listener: the interfaces answered on, and the port announced
	Name        string         // the server's name
	Proto       string         // what its greeting says it speaks: "qchat/1"
	Fingerprint func() string  // its key of the moment; nil or "" when it has no TLS
	Log         *slog.Logger
	Now         func() time.Time // the rate limits' clock; nil for time.Now

	// Ifaces lists the interfaces that are up; nil for SystemIfaces.
	Ifaces func() ([]Iface, error)
	// Refresh is how often the interfaces are read again (new ones are
	// joined, gone ones forgotten); 0 for 10 seconds.
	Refresh time.Duration
}

// Stats counts what the responder did with the requests it read.
type Stats struct {
	Answered  int64
	Interface int64 // not on an interface it answers on, or from a source off that interface's network
	Malformed int64 // not a request, or oversized
	Short     int64 // shorter than the answer would be (not padded)
	Limited   int64 // over the rate of its source, or of the server
}

// Responder answers discovery requests until Close.
type Responder struct {
	cfg      Config
	log      *slog.Logger
	instance string
	listen   netip.Addr // the listener's address; unspecified for all
	port     int
	c4       net.PacketConn // nil when the server does not listen on IPv4
	p4       *ipv4.PacketConn
	c6       net.PacketConn // nil when the server does not listen on IPv6
	p6       *ipv6.PacketConn
	rate     *rater
	view     atomic.Pointer[view]

	refreshMu   sync.Mutex
	lastRefresh time.Time
	joined      map[int]bool // interfaces whose IPv6 group membership is on

	answered, iface, malformed, short, limited atomic.Int64

	done chan struct{}
	wg   sync.WaitGroup
}

// Start opens the discovery sockets for the address families the server
// listens on and answers in the background. It fails only when no socket
// could be opened.
func Start(cfg Config) (*Responder, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Ifaces == nil {
		cfg.Ifaces = SystemIfaces
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 10 * time.Second
	}
	r := &Responder{cfg: cfg, log: cfg.Log, instance: randomToken(12), listen: cfg.Listen.Addr().Unmap().WithZone(""),
		port: cfg.Port, rate: newRater(), joined: make(map[int]bool), done: make(chan struct{})}
	if err := r.refresh(); err != nil {
		return nil, fmt.Errorf("discovery: interfaces: %w", err)
	}
	any6 := r.listen.IsUnspecified() && r.listen.Is6()
	var errs []error
	if r.listen.Is4() || any6 {
		if err := r.open4(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.listen.Is6() {
		if err := r.open6(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.c4 == nil && r.c6 == nil {
		return nil, fmt.Errorf("discovery: %w", errors.Join(errs...))
	}
	for _, err := range errs {
		r.log.Warn("discovery: one address family is off", "err", err)
	}
	r.join()
	r.log.Info("discovery: answering on the LAN", "udp_port", r.port, "interfaces", r.view.Load().names())
	r.wg.Add(1)
	go r.refreshLoop()
	if r.c4 != nil {
		r.wg.Add(1)
		go r.serve4()
	}
	if r.c6 != nil {
		r.wg.Add(1)
		go r.serve6()
	}
	return r, nil
}

// Port is the UDP port the responder answers on.
func (r *Responder) Port() int { return r.port }

// Stats says what the responder did so far.
func (r *Responder) Stats() Stats {
	return Stats{Answered: r.answered.Load(), Interface: r.iface.Load(), Malformed: r.malformed.Load(),
		Short: r.short.Load(), Limited: r.limited.Load()}
}

// Close stops answering and closes the sockets.
func (r *Responder) Close() error {
	close(r.done)
	if r.c4 != nil {
		r.c4.Close()
	}
	if r.c6 != nil {
		r.c6.Close()
	}
	r.wg.Wait()
	return nil
}

// listenUDP binds network on addr with SO_REUSEADDR: every server on a
// host gets the broadcasts and the group's datagrams.
func listenUDP(network, addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
		return errors.Join(err, serr)
	}}
	return lc.ListenPacket(context.Background(), network, addr)
}

func (r *Responder) open4() error {
	c, err := listenUDP("udp4", fmt.Sprintf("0.0.0.0:%d", r.port))
	if err != nil {
		return fmt.Errorf("udp4 port %d: %w", r.port, err)
	}
	p := ipv4.NewPacketConn(c)
	if err := p.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
		c.Close()
		return fmt.Errorf("udp4: interface of each datagram: %w", err)
	}
	r.c4, r.p4 = c, p
	r.port = c.LocalAddr().(*net.UDPAddr).Port
	return nil
}

func (r *Responder) open6() error {
	c, err := listenUDP("udp6", fmt.Sprintf("[::]:%d", r.port))
	if err != nil {
		return fmt.Errorf("udp6 port %d: %w", r.port, err)
	}
	p := ipv6.NewPacketConn(c)
	if err := p.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true); err != nil {
		c.Close()
		return fmt.Errorf("udp6: interface of each datagram: %w", err)
	}
	r.c6, r.p6 = c, p
	r.port = c.LocalAddr().(*net.UDPAddr).Port
	return nil
}

// refresh reads the interfaces again.
func (r *Responder) refresh() error {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	ifs, err := r.cfg.Ifaces()
	if err != nil {
		return err
	}
	r.view.Store(newView(ifs, r.listen))
	r.lastRefresh = r.cfg.Now()
	return nil
}

// join joins the IPv6 group on the interfaces answered on that have not
// joined it yet, and forgets those that are gone (the kernel drops their
// membership with them).
func (r *Responder) join() {
	if r.p6 == nil {
		return
	}
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	v := r.view.Load()
	for idx := range r.joined {
		if !v.knows(idx) {
			delete(r.joined, idx)
		}
	}
	group := &net.UDPAddr{IP: protocol.DiscoveryGroup.AsSlice()}
	for _, ifi := range v.multicast() {
		if r.joined[ifi.Index] {
			continue
		}
		nif := &net.Interface{Index: ifi.Index, Name: ifi.Name, Flags: ifi.Flags}
		if err := r.p6.JoinGroup(nif, group); err != nil && !errors.Is(err, syscall.EADDRINUSE) {
			r.log.Warn("discovery: cannot join the IPv6 group", "interface", ifi.Name, "err", err)
			continue
		}
		r.joined[ifi.Index] = true
	}
}

func (r *Responder) refreshLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		if err := r.refresh(); err != nil {
			r.log.Warn("discovery: interfaces", "err", err)
			continue
		}
		r.join()
		r.rate.sweep(r.cfg.Now())
	}
}

// serve4 answers on the IPv4 socket.
func (r *Responder) serve4() {
	r.serve(func(b []byte) (int, int, net.Addr, error) {
		n, cm, src, err := r.p4.ReadFrom(b)
		if cm == nil {
			return n, -1, src, err
		}
		return n, cm.IfIndex, src, err
	}, func(ans []byte, ifIndex int, to net.Addr) error {
		wcm := &ipv4.ControlMessage{IfIndex: ifIndex}
		if !r.listen.IsUnspecified() {
			wcm.Src = r.listen.AsSlice()
		}
		_, err := r.p4.WriteTo(ans, wcm, to)
		return err
	})
}

// serve6 answers on the IPv6 socket.
func (r *Responder) serve6() {
	r.serve(func(b []byte) (int, int, net.Addr, error) {
		n, cm, src, err := r.p6.ReadFrom(b)
		if cm == nil {
			return n, -1, src, err
		}
		return n, cm.IfIndex, src, err
	}, func(ans []byte, ifIndex int, to net.Addr) error {
		wcm := &ipv6.ControlMessage{IfIndex: ifIndex}
		if !r.listen.IsUnspecified() {
			wcm.Src = r.listen.AsSlice()
		}
		_, err := r.p6.WriteTo(ans, wcm, to)
		return err
	})
}

// serve is one socket's loop: read a request with the interface it came
// in on (ifIndex -1: unknown, dropped), answer it on that interface.
func (r *Responder) serve(read func([]byte) (n, ifIndex int, src net.Addr, err error), write func(ans []byte, ifIndex int, to net.Addr) error) {
	defer r.wg.Done()
	buf := make([]byte, 2*protocol.MaxDiscoveryRequest)
	out := make([]byte, 0, protocol.MaxDiscoveryAnswer)
	for {
		n, ifIndex, src, err := read(buf)
		if err != nil {
			if r.closed(err) {
				return
			}
			continue
		}
		ua, ok := src.(*net.UDPAddr)
		if !ok || ifIndex < 0 {
			continue
		}
		ans := r.handle(out[:0], buf[:n], ifIndex, ua.AddrPort())
		if ans == nil {
			continue
		}
		if err := write(ans, ifIndex, src); err != nil {
			r.log.Debug("discovery: answer not sent", "to", src.String(), "err", err)
		}
	}
}

// closed reports whether a read error means the responder is closing; it
// logs any other.
func (r *Responder) closed(err error) bool {
	select {
	case <-r.done:
		return true
	default:
	}
	if errors.Is(err, net.ErrClosed) {
		return true
	}
	r.log.Debug("discovery: read", "err", err)
	return false
}

// handle decides about one datagram that came in on interface index from
// src, and returns the answer to send (appended to out), or nil.
func (r *Responder) handle(out, b []byte, index int, src netip.AddrPort) []byte {
	now := r.cfg.Now()
	v := r.view.Load()
	if !v.knows(index) && now.Sub(r.lastRefreshed()) > time.Second {
		// An interface that came up since the last look: look again (at
		// most once a second, whatever arrives).
		if err := r.refresh(); err == nil {
			r.join()
			v = r.view.Load()
		}
	}
	ip := src.Addr()
	if src.Port() < 1024 {
		// Clients ask from ephemeral ports: an answer to a service port
		// (echo, DNS) could only serve someone who forged the source.
		r.malformed.Add(1)
		return nil
	}
	if !v.allows(index, ip) {
		r.iface.Add(1)
		r.log.Debug("discovery: request ignored: not on an interface the server listens on", "from", src.String(), "if", index)
		return nil
	}
	nonce, err := protocol.ParseDiscoverRequest(b)
	if err != nil {
		if errors.Is(err, protocol.ErrDiscoveryShort) {
			r.short.Add(1)
		} else {
			r.malformed.Add(1)
		}
		r.log.Debug("discovery: request ignored", "from", src.String(), "err", err)
		return nil
	}
	if why := r.rate.allow(ip, now); why != "" {
		r.limited.Add(1)
		r.log.Debug("discovery: request ignored: rate limit", "from", src.String(), "limit", why)
		return nil
	}
	fp := ""
	if r.cfg.Fingerprint != nil {
		fp = r.cfg.Fingerprint()
	}
	ans, err := protocol.AppendDiscoverAnswer(out, protocol.Announcement{Nonce: nonce, Instance: r.instance,
		Port: int(r.cfg.Listen.Port()), Proto: r.cfg.Proto, Fingerprint: fp, Name: r.cfg.Name})
	if err != nil {
		r.log.Warn("discovery: cannot answer", "err", err)
		return nil
	}
	r.answered.Add(1)
	return ans
}

func (r *Responder) lastRefreshed() time.Time {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	return r.lastRefresh
}

// randomToken is n letters and digits from crypto/rand.
func randomToken(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
