// Package discover finds a qchat server on the LAN for chat and recv when
// they are given no address (PROTOCOL.md section 10), as IP Messenger and
// croc --local find their peers.
//
// It owns:
//
//   - asking: one padded UDP request, three times within the search, to
//     the broadcast address of every IPv4 network of every interface (the
//     loopback's 127.255.255.255 too) and to the IPv6 link-local group on
//     every multicast interface;
//   - the answers: matched to the request by its nonce, taken only from
//     the discovery port, merged per server (one server answers on every
//     path it has), bounded in number, each address ranked (one that
//     known_servers holds for the announced key first, then loopback,
//     IPv4, IPv6);
//   - choosing: one server is taken; among several a person at a terminal
//     picks one, piped the list is an error;
//   - the first-contact rule for a server it found
//     (client.ServerKeys.FirstContact, Trust): an answer is a hint anyone
//     on the LAN can forge, so the key the server presents must be the
//     one it announced and must already be known (under any address), or
//     pinned with --server-fingerprint, or accepted by the person at the
//     terminal. A fake server that answers first gets no password.
//
// It must not know sessions, history or the rest of the protocol, and it
// parses no flags (its messages only name the ones a person can use). It
// never connects to a server: the session does, and checks the key as
// for any address (modes/client, pin.go).
package discover
