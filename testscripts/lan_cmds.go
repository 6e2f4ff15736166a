package testscripts

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rogpeppe/go-internal/testscript"
)

// Custom command and condition for the discovery stories, which need
// broadcast and multicast between hosts (loopback has neither):
//
//	lan [-6] NAME...
//	    make a LAN of network namespaces: one per NAME, each with its
//	    loopback up and an interface eth0 on one bridge (in a namespace
//	    of its own, multicast snooping off). Host i (from 1) has
//	    10.77.0.i/24 and the IPv6 link-local fe80::i (no duplicate
//	    address detection, so it works at once); with -6, IPv6 only.
//	    No default route: discovery must not need one. Sets $NS_NAME to
//	    the namespace (run a program there with
//	    `exec ip netns exec $NS_NAME qchat ...`) and $IP_NAME to its
//	    address. Every namespace is removed when the script ends, also
//	    on failure; those of a killed run are removed by the next.
//	[netns]
//	    true when network namespaces can be made here (root, ip).
//
// Only inside these namespaces may a story use the well-known discovery
// port 4000: nothing there reaches the host's networks.
func init() {
	commands["lan"] = cmdLan
}

var lanSeq atomic.Int32

func cmdLan(ts *testscript.TestScript, neg bool, args []string) {
	v6only := len(args) > 0 && args[0] == "-6"
	if v6only {
		args = args[1:]
	}
	if neg || len(args) == 0 {
		ts.Fatalf("usage: lan [-6] NAME...")
	}
	if why := netnsUsable(); why != "" {
		ts.Fatalf("lan: %s (guard the story with [netns])", why)
	}
	prefix := fmt.Sprintf("qdisco-%d-%d", os.Getpid(), lanSeq.Add(1))
	var made []string
	ts.Defer(func() {
		for _, ns := range made {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	mk := func(ns string) {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			ts.Fatalf("lan: ip netns add %s: %v: %s", ns, err, out)
		}
		made = append(made, ns)
		ipBatch(ts, ns, "link set lo up")
	}
	br := prefix + "-br"
	mk(br)
	ipBatch(ts, br, "link add br0 type bridge mcast_snooping 0", "link set br0 up")
	for i, name := range args {
		n := i + 1
		ns := prefix + "-" + name
		mk(ns)
		port := fmt.Sprintf("p%d", n)
		ipBatch(ts, br,
			fmt.Sprintf("link add %s type veth peer name eth0 netns %s", port, ns),
			fmt.Sprintf("link set %s master br0", port),
			fmt.Sprintf("link set %s up", port))
		cmds := []string{
			"link set eth0 addrgenmode none",
			fmt.Sprintf("addr add fe80::%x/64 dev eth0 nodad", n),
		}
		if !v6only {
			cmds = append(cmds, fmt.Sprintf("addr add 10.77.0.%d/24 dev eth0", n))
		}
		ipBatch(ts, ns, append(cmds, "link set eth0 up")...)
		ts.Setenv("NS_"+name, ns)
		if v6only {
			ts.Setenv("IP_"+name, fmt.Sprintf("fe80::%x", n))
		} else {
			ts.Setenv("IP_"+name, fmt.Sprintf("10.77.0.%d", n))
		}
	}
}

// ipBatch runs `ip` commands in namespace ns.
func ipBatch(ts *testscript.TestScript, ns string, cmds ...string) {
	c := exec.Command("ip", "-n", ns, "-batch", "-")
	c.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := c.CombinedOutput(); err != nil {
		ts.Fatalf("lan: ip -n %s: %v: %s\n%s", ns, err, out, strings.Join(cmds, "\n"))
	}
}

var (
	netnsOnce sync.Once
	netnsWhy  string
)

// netnsUsable says why namespaces cannot be made here, or "". It removes
// the namespaces of earlier runs that were killed before their cleanup.
func netnsUsable() string {
	netnsOnce.Do(func() {
		if os.Geteuid() != 0 {
			netnsWhy = "network namespaces need root"
			return
		}
		if _, err := exec.LookPath("ip"); err != nil {
			netnsWhy = "network namespaces need ip (iproute2)"
			return
		}
		RemoveStaleNamespaces("qdisco")
		probe := fmt.Sprintf("qdisco-%d-probe", os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
			netnsWhy = fmt.Sprintf("cannot make a network namespace: %v: %s", err, bytes.TrimSpace(out))
			return
		}
		defer exec.Command("ip", "netns", "del", probe).Run()
		if out, err := exec.Command("ip", "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1").CombinedOutput(); err != nil {
			netnsWhy = fmt.Sprintf("cannot make a veth pair in a namespace: %v: %s", err, bytes.TrimSpace(out))
		}
	})
	return netnsWhy
}

// RemoveStaleNamespaces deletes the network namespaces named
// "<prefix>-<pid>-..." whose test process is gone (a run killed before
// its cleanups ran): the LAN stories' (qdisco) and netlab's (qlab).
func RemoveStaleNamespaces(prefix string) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range bytes.Split(out, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		rest, ok := strings.CutPrefix(string(f[0]), prefix+"-")
		pid, _, ok2 := strings.Cut(rest, "-")
		if !ok || !ok2 {
			continue
		}
		if n, err := strconv.Atoi(pid); err != nil {
			continue
		} else if _, err := os.Stat(fmt.Sprintf("/proc/%d", n)); err == nil {
			continue
		}
		exec.Command("ip", "netns", "del", string(f[0])).Run()
	}
}
