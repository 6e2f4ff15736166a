// Package discovery lets clients on the LAN find `qchat serve` without
// an address (PROTOCOL.md section 10), as IP Messenger's broadcast and
// croc --local do: it answers each discovery request with the server's
// name, port, protocol and key fingerprint.
//
// It owns:
//
//   - the discovery sockets: UDP on the well-known port (4000), IPv4
//     broadcast and the IPv6 link-local group ff02::7163:6874, joined on
//     every interface it answers on, again when interfaces come and go;
//   - which interfaces it answers on: those the server's TCP listener is
//     on (all for a wildcard address, the loopback interface for
//     127.0.0.1, the interface holding a given address), and only to
//     sources on that interface's own network;
//   - the limits that keep it from being an amplifier or a reflector: a
//     request shorter than its answer is not answered, and answers are
//     rated per source (IPv4 address, IPv6 /64 or link-local address)
//     and in all.
//
// It must not know sessions, accounts, the store, TLS or the rest of the
// protocol: the server tells it its name, its port, and a function that
// returns the fingerprint of its key of the moment (a SIGHUP may change
// it). The answer is only a hint: clients check the key when they connect
// (modes/client, pin.go), so nothing here needs to be secret or true.
package discovery
