package serve

import (
	"net/netip"
	"strconv"
	"strings"

	"qchat/protocol"
)

// maxEndpoints bounds the endpoints one client announces.
const maxEndpoints = 4

// ENDPOINTS [port=<peer-port>] [<endpoint>...]
//
// After login: more endpoints where this client takes direct links, its
// global IPv6 addresses with its peer port ([2001:db8::5]:40123). Its
// peers get them with their tickets, after the endpoint this server
// observed, and dial them first. port=<peer-port> is the port its peer
// listener has on its own host: a peer that compares it with the
// endpoint observed here learns whether a NAT changed the port (and so
// whether to probe for the other side's mapping, punch.go in xfer). The
// reply tells the client what this server observes of its connection
// (the address and port after any NAT), from which it can tell its NAT:
// "200 <observed> [port=<peer-port>] [<endpoint>...]". Sent again, it
// replaces the list; sent without endpoints, it only asks.
//
// Only global unicast IPv6 addresses are taken: a private or link-local
// address means nothing on the peer's network, and IPv4 goes through the
// endpoint the server observes.
func (s *session) cmdEndpoints(c *protocol.Command) error {
	var eps []string
	args := c.Args
	if len(args) > 0 && strings.HasPrefix(args[0], "port=") {
		tok, ok := peerPortToken(args[0])
		if !ok {
			return protocol.Errorf(protocol.CodeSyntax, "ENDPOINTS port= takes a port (1 to 65535), not %q", protocol.Clip(args[0], 60))
		}
		eps = append(eps, tok)
		args = args[1:]
	}
	if len(args) > maxEndpoints {
		return protocol.Errorf(protocol.CodeSyntax, "ENDPOINTS takes at most %d endpoints", maxEndpoints)
	}
	for _, a := range args {
		ap, err := netip.ParseAddrPort(a)
		ip := ap.Addr()
		if err != nil || ap.Port() == 0 || !ip.Is6() || ip.Is4In6() || !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.Zone() != "" {
			return protocol.Errorf(protocol.CodeSyntax, "ENDPOINTS takes global IPv6 endpoints ([2001:db8::5]:40123), not %q", protocol.Clip(a, 60))
		}
		eps = append(eps, ap.String())
	}
	of := s.srv.offers
	of.mu.Lock()
	if len(eps) == 0 {
		delete(of.endpoints, s)
	} else {
		of.endpoints[s] = eps
	}
	of.mu.Unlock()
	s.replyf(c.Tag, protocol.CodeOK, "%s", strings.Join(append([]string{s.remote}, eps...), " "))
	return nil
}

// moreEndpoints is " [port=<peer-port>] <endpoint>..." for a 260 reply:
// what s announced.
// Called with offers.mu held.
func (of *offers) moreEndpoints(s *session) string {
	eps := of.endpoints[s]
	if len(eps) == 0 {
		return ""
	}
	return " " + strings.Join(eps, " ")
}

// peerPortToken checks "port=<peer-port>" (1 to 65535) and writes it
// again in its plain form.
func peerPortToken(a string) (string, bool) {
	port, err := strconv.ParseUint(strings.TrimPrefix(a, "port="), 10, 16)
	if !strings.HasPrefix(a, "port=") || err != nil || port == 0 {
		return "", false
	}
	return "port=" + strconv.FormatUint(port, 10), true
}
