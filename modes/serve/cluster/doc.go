// Package cluster is the NATS side of `qchat serve --cluster`: several
// nodes on one PostgreSQL store act as one server. It owns, per node:
//
//   - the deployment's subject prefix (Prefix: a hash of the store's
//     database and schema, so two deployments on one NATS never mix);
//   - heartbeats, and noticing a node that stopped (SIGKILL, a cut
//     network) within --node-timeout: its users go offline for everyone as
//     one batch;
//   - cluster-wide presence: which user is online on which other node, in
//     what state. A node's own changes go out batched, at most one publish
//     per BatchEvery (20 ms), as the presence package's BATCH text; a node
//     that appears (or comes back) is asked for its whole list once;
//   - the requests between nodes: "let go of this user" (a login on
//     another node takes over, as one server's double-login policy says),
//     "mail waits for these users" (something was stored for a user online
//     on another node: that node merges it), "this account or the social
//     rows changed" (the other nodes reload them), client ids, events
//     (nudges, typing, receipts), direct-link offers, and the messages a
//     node forwards to the recipient's node with their answers (Forward).
//
// It carries what the server hands it and checks the form of what it
// reads; what the bytes mean (and what must be in PostgreSQL before a
// sender hears "sent") is the server's. See modes/serve/SCALING.md for
// what it costs.
//
// It must not know sessions, sockets, mailboxes or the store's tables: the
// server hands it hooks (Hooks) and asks it questions (Where, Online).
// Every message read from NATS is checked and a bad one is logged and
// dropped, never trusted: a node name is a token, a user id a number.
package cluster
