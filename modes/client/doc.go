// Package client is the client side of a qchat connection, shared by chat,
// recv and bench: dial (STARTTLS, and the server's key checked the ssh
// way against known_servers), login, requests matched to their replies by
// tag, the stream of events, keepalive and acknowledgements.
//
// It knows the protocol and nothing of terminals, history files or flags:
// callers decide what to show and when a message counts as shown or saved
// (and only then call Ack).
package client
