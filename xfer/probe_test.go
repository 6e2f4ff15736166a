package xfer

import "testing"

// Who sprays and who probes: only a port-changing side facing a peer whose
// NAT kept its port, and the reverse; never with both ports changed, both
// kept, or a peer that did not say its port.
func TestProbeRole(t *testing.T) {
	for _, tc := range []struct {
		addr         string
		peerPort     int
		mine         string
		spray, probe bool
	}{
		{"203.0.113.2:4000", 4000, NATPortChanged, true, false},   // the peer kept its port
		{"203.0.113.2:61234", 4000, NATPortKept, false, true},     // the peer's NAT changed it
		{"203.0.113.2:61234", 4000, NATPortChanged, false, false}, // both changed: nothing to aim at
		{"203.0.113.2:4000", 4000, NATPortKept, false, false},     // both kept: the plain attempts work
		{"203.0.113.2:61234", 4000, NATNone, false, false},        // no NAT here: the peer's SYNs come in
		{"203.0.113.2:61234", 0, NATPortKept, false, false},       // the peer did not say its port
		{"203.0.113.2:4000", 4000, NATUnknown, false, false},
		{"[2001:db8::2]:61234", 4000, NATPortKept, false, false}, // IPv6: no NAT to probe
		{"", 4000, NATPortKept, false, false},
	} {
		spray, probe := probeRole(Ticket{PeerAddr: tc.addr, PeerPort: tc.peerPort}, tc.mine)
		if spray != tc.spray || probe != tc.probe {
			t.Errorf("probeRole(%s, peer port %d, mine %s) = spray %v, probe %v; want %v, %v", tc.addr, tc.peerPort, tc.mine, spray, probe, tc.spray, tc.probe)
		}
	}
}

func TestProbeTargets(t *testing.T) {
	ports := probeTargets(probePorts, 4000)
	if len(ports) != probePorts {
		t.Fatalf("%d ports, want %d", len(ports), probePorts)
	}
	seen := make(map[int]bool)
	for _, p := range ports {
		if p < probeMinPort || p > 65535 || p == 4000 || seen[p] {
			t.Fatalf("port %d: out of range, the one to skip, or twice", p)
		}
		seen[p] = true
	}
}
