// Package xfer owns the peer links of direct chats and files: the peer
// listener and this run's link key, making a link for a ticket (hole
// punching through NATs, simultaneous open, the server's relay, and
// moving a relayed link to a direct one while in use), the
// HELLO exchange and the TLS 1.3 that every link runs with both link keys
// pinned, the direct chat's lines, and file transfer (offers, resume,
// BLAKE3 verification, safe names, writing only inside the receiving
// folder).
//
// It must not know the server protocol beyond the relay's greeting and
// RELAY line, nor accounts, history or terminals: the tickets, keys and
// relay secrets come from the caller (modes/client), which got them from
// the server.
package xfer
