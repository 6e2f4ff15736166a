// Package netlab is the network lab of qchat's direct links: its tests
// build small networks out of Linux network namespaces (NAT routers made
// with iptables, a "public" bridge, links with delay and router hops),
// run the real qchat binary inside them and check which path a direct
// link takes and that the bytes arrive. Loopback cannot show any of
// this: no NAT, no delay, no router that answers a stray SYN.
//
// The package holds only tests. They need root, `ip` (iproute2),
// iptables and /dev/net/tun, and skip with the reason when any is
// missing. Nothing leaves the namespaces; every namespace is removed at
// the end of its case, and namespaces left by a killed run are removed
// by the next.
//
// It must not know qchat's internals: it drives the binary as a user
// would and reads what the binary prints.
package netlab
