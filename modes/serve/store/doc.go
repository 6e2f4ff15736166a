// Package store is what the server keeps across restarts: accounts,
// profiles, friendships and friend requests, blocks, groups with their
// members and invites, the durable events that wait for their recipients
// (the inbox, and group messages stored once with a cursor per member),
// the client ids of stored messages kept for a resend, and the high-water
// mark of message ids.
//
// It owns the Store interface the server writes through, the types that
// cross it, its sentinel errors, and the rules both implementations keep
// (the interface's doc comments): sqlite (the default, a file in the data
// folder) and postgres (a PostgreSQL database several nodes can share).
// storetest is one conformance suite that runs against both; a behaviour
// is part of the contract when that suite checks it.
//
// It must not know sessions, mailboxes, the wire protocol or reply codes:
// the server maps the sentinel errors to replies, and decides when a
// message is saved and when its row may go (the store only does it, in
// the order asked).
package store
