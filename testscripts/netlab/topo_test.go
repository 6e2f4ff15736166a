package netlab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The lab's network (addresses from the documentation ranges):
//
//	server 203.0.113.10, 2001:db8:ff::10
//	   |  wire (delay, hops)
//	 [br0] the public bridge 203.0.113.0/24, 2001:db8:ff::/64
//	   |  wire                        |  wire
//	router A 203.0.113.1         router B 203.0.113.2
//	   |  LAN 10.1.0.0/24,           |  LAN 10.2.0.0/24,
//	   |  2001:db8:1::/64            |  2001:db8:2::/64
//	client A 10.1.0.2            client B 10.2.0.2
//
// A public client sits on the bridge itself (203.0.113.21 or .22). Every
// host is a namespace named qlab-<pid>-<case>-<role>.

// nat says how a router translates and filters.
type nat struct {
	Map    string // "preserve" (MASQUERADE keeps the port), "random" (--random-fully), "fixed" (the peer port to one other port, for every destination)
	Filter string // unsolicited packets from outside: "drop" them or, like a plain Linux router, answer "rst"
}

// side is where a client sits: behind a router (NAT set), or public.
type side struct {
	NAT *nat
	// Firewall6: in front of a client's global IPv6 address, a stateful
	// firewall ("drop" or "rst") without NAT. "" gives the client no IPv6.
	Firewall6 string
}

// Link delays and hops: the server close to the bridge, A and B further
// and unlike (the server cannot start them at once by writing to both at
// once), several routers on every path.
var (
	serverWire = wireSpec{5 * time.Millisecond, 2}
	clientWire = [2]wireSpec{{10 * time.Millisecond, 3}, {15 * time.Millisecond, 3}}
)

// host is a namespace with an address on the public bridge.
type host struct {
	ns, dev string
	octet   int // 203.0.113.<octet>, 2001:db8:ff::<octet in hex>, MAC 02:00:00:00:00:<octet>
}

type wireSpec struct {
	delay time.Duration
	hops  int
}

// peerPort is the peer port of clients behind a "fixed" router, which
// maps it to fixedPort for every destination.
const (
	peerPort  = 41000
	fixedPort = 52000
)

type lab struct {
	t      *testing.T
	hosts  []host // on the bridge
	prefix string
	dir    string
	nss    []string
	wires  []*wire
	server string // namespaces
	client [2]string
	srvIP  string
}

var labSeq atomic.Int32

// newLab builds the network for one case; t.Cleanup removes it. With
// adjacent, the client wires have no routers: the two NATs are next to
// each other, as on the bridge alone.
func newLab(t *testing.T, name string, sides [2]side, adjacent bool) *lab {
	l := &lab{t: t, prefix: fmt.Sprintf("qlab-%d-%d%s", os.Getpid(), labSeq.Add(1), name), dir: t.TempDir(), srvIP: "203.0.113.10"}
	t.Cleanup(l.remove)
	pub := l.ns("pub")
	l.server = l.ns("srv")
	l.ip(pub, "link add br0 type bridge", "link set br0 up")
	l.plug(pub, "s", host{l.server, "eth0", 10}, serverWire)
	l.ip(l.server,
		"route add 2001:db8:1::/64 via 2001:db8:ff::1",
		"route add 2001:db8:2::/64 via 2001:db8:ff::2")
	for i, s := range sides {
		n := i + 1
		spec := clientWire[i]
		if adjacent {
			spec.hops = 0
		}
		l.client[i] = l.ns(fmt.Sprintf("c%d", n))
		if s.NAT == nil {
			l.plug(pub, fmt.Sprintf("c%d", n), host{l.client[i], "eth0", 20 + n}, spec)
			continue
		}
		r := l.ns(fmt.Sprintf("r%d", n))
		l.plug(pub, fmt.Sprintf("r%d", n), host{r, "wan", n}, spec)
		l.ip(r,
			fmt.Sprintf("link add lan type veth peer name eth0 netns %s", l.client[i]),
			fmt.Sprintf("addr add 10.%d.0.1/24 dev lan", n),
			"link set lan up")
		l.ip(l.client[i],
			fmt.Sprintf("addr add 10.%d.0.2/24 dev eth0", n),
			"link set eth0 up",
			fmt.Sprintf("route add default via 10.%d.0.1", n))
		l.sh(r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		l.restore(r, "iptables-restore", routerRules(*s.NAT, n))
		if s.Firewall6 != "" {
			l.sh(r, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
			other := 3 - n
			l.ip(r,
				fmt.Sprintf("addr add 2001:db8:%d::1/64 dev lan nodad", n),
				fmt.Sprintf("route add 2001:db8:%d::/64 via 2001:db8:ff::%d", other, other))
			l.ip(l.client[i],
				fmt.Sprintf("addr add 2001:db8:%d::2/64 dev eth0 nodad", n),
				fmt.Sprintf("route add default via 2001:db8:%d::1", n))
			l.restore(r, "ip6tables-restore", firewall6Rules(s.Firewall6))
		}
	}
	// Every host on the bridge knows the others' MAC addresses, as a
	// router knows its ISP's: no ARP delays the first SYN of a case.
	for _, h := range l.hosts {
		var cmds []string
		for _, o := range l.hosts {
			if o != h {
				cmds = append(cmds,
					fmt.Sprintf("neigh replace 203.0.113.%d lladdr %s dev %s nud permanent", o.octet, o.mac(), h.dev),
					fmt.Sprintf("neigh replace 2001:db8:ff::%x lladdr %s dev %s nud permanent", o.octet, o.mac(), h.dev))
			}
		}
		l.ip(h.ns, cmds...)
	}
	return l
}

func (h host) mac() string { return fmt.Sprintf("02:00:00:00:00:%02x", h.octet) }

// routerRules are a NAT router's iptables rules for LAN n.
func routerRules(k nat, n int) string {
	var b strings.Builder
	lan := fmt.Sprintf("10.%d.0.0/24", n)
	b.WriteString("*nat\n")
	switch k.Map {
	case "preserve":
		fmt.Fprintf(&b, "-A POSTROUTING -o wan -s %s -j MASQUERADE\n", lan)
	case "random":
		fmt.Fprintf(&b, "-A POSTROUTING -o wan -s %s -j MASQUERADE --random-fully\n", lan)
	case "fixed":
		fmt.Fprintf(&b, "-A POSTROUTING -o wan -s %s -p tcp --sport %d -j SNAT --to-source 203.0.113.%d:%d\n", lan, peerPort, n, fixedPort)
		fmt.Fprintf(&b, "-A POSTROUTING -o wan -s %s -j MASQUERADE\n", lan)
	default:
		panic("nat map " + k.Map)
	}
	b.WriteString("COMMIT\n*filter\n")
	if k.Filter == "drop" {
		// A home router that ignores what nobody inside asked for. (A
		// plain Linux router, "rst", has no rules: the kernel answers a
		// SYN to a port nobody mapped with RST.)
		b.WriteString("-A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n")
		b.WriteString("-A INPUT -i wan -j DROP\n")
		b.WriteString("-A FORWARD -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n")
		b.WriteString("-A FORWARD -i wan -j DROP\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// firewall6Rules let into the LAN only what answers a packet from inside.
func firewall6Rules(kind string) string {
	reject := "-j DROP"
	if kind == "rst" {
		reject = "-p tcp -j REJECT --reject-with tcp-reset"
	}
	return "*filter\n" +
		"-A FORWARD -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n" +
		"-A FORWARD -i wan -p ipv6-icmp -j ACCEPT\n" +
		"-A FORWARD -i wan " + reject + "\n" +
		"-A FORWARD -i wan -j DROP\n" +
		"COMMIT\n"
}

// ns makes a namespace with its loopback up.
func (l *lab) ns(role string) string {
	name := l.prefix + "-" + role
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		l.t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	l.nss = append(l.nss, name)
	l.ip(name, "link set lo up")
	return name
}

// plug joins the bridge of namespace pub (as port) and host h with a
// wire, and gives h its addresses on the bridge.
func (l *lab) plug(pub, port string, h host, spec wireSpec) {
	a, err := openTAP(pub, port)
	if err != nil {
		l.t.Fatalf("tap %s in %s: %v", port, pub, err)
	}
	b, err := openTAP(h.ns, h.dev)
	if err != nil {
		a.Close()
		l.t.Fatalf("tap %s in %s: %v", h.dev, h.ns, err)
	}
	l.wires = append(l.wires, newWire(a, b, spec.delay, spec.hops))
	l.hosts = append(l.hosts, h)
	l.ip(pub, "link set "+port+" master br0", "link set "+port+" up")
	l.ip(h.ns,
		fmt.Sprintf("link set %s address %s", h.dev, h.mac()),
		fmt.Sprintf("addr add 203.0.113.%d/24 dev %s", h.octet, h.dev),
		fmt.Sprintf("addr add 2001:db8:ff::%x/64 dev %s nodad", h.octet, h.dev),
		"link set "+h.dev+" up")
}

// ip runs `ip` commands in namespace ns, in one batch.
func (l *lab) ip(ns string, cmds ...string) {
	l.t.Helper()
	c := exec.Command("ip", "-n", ns, "-batch", "-")
	c.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := c.CombinedOutput(); err != nil {
		l.t.Fatalf("ip -n %s: %v: %s\n%s", ns, err, out, strings.Join(cmds, "\n"))
	}
}

// sh runs a command in namespace ns.
func (l *lab) sh(ns string, argv ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s in %s: %v: %s", strings.Join(argv, " "), ns, err, out)
	}
}

// restore loads iptables rules into namespace ns.
func (l *lab) restore(ns, tool, rules string) {
	l.t.Helper()
	c := exec.Command("ip", "netns", "exec", ns, tool)
	c.Stdin = strings.NewReader(rules)
	if out, err := c.CombinedOutput(); err != nil {
		l.t.Fatalf("%s in %s: %v: %s\n%s", tool, ns, err, out, rules)
	}
}

// remove takes the network down: wires, then namespaces. The processes in
// them were ended by their own cleanups (registered later, run earlier).
func (l *lab) remove() {
	for _, w := range l.wires {
		w.close()
	}
	for _, ns := range l.nss {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	}
}

// labUsable says why the lab cannot run here, or "".
func labUsable() string {
	if os.Geteuid() != 0 {
		return "the network lab needs root (network namespaces, iptables)"
	}
	for _, tool := range []string{"ip", "iptables-restore", "ip6tables-restore", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "the network lab needs " + tool + " (apt-get install iproute2 iptables procps)"
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "the network lab needs /dev/net/tun"
	}
	name := fmt.Sprintf("qlab-%d-probe", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Sprintf("cannot make a network namespace: %v: %s", err, bytes.TrimSpace(out))
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	c := exec.Command("ip", "netns", "exec", name, "iptables-restore")
	c.Stdin = strings.NewReader("*nat\n-A POSTROUTING -j MASQUERADE --random-fully\nCOMMIT\n")
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Sprintf("iptables cannot NAT in a namespace: %v: %s", err, bytes.TrimSpace(out))
	}
	tap, err := openTAP(name, "probe0")
	if err != nil {
		return "cannot make a TAP device in a namespace: " + err.Error()
	}
	tap.Close()
	return ""
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(deadline time.Time, cond func() bool) bool {
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}
