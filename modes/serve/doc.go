// Package serve is `qchat serve`: the listener, one session per
// connection, the command table and its handlers, who is online (hub),
// delivery (the post office: mailboxes, acknowledgements, fan-out) and
// the SQLite store. Its rooms (limits/, dedupe/, presence/, resume/,
// offline/) know nothing of sessions; it knows nothing of terminals or
// of the client side.
//
// # The hot path
//
// What a message costs, from the sender's line to the recipient's
// acknowledgement, and why (nats-server's readLoop/flushOutbound is the
// model; the figures are in modes/bench/compare.sh's output):
//
//   - One goroutine reads a connection and runs each command inline
//     (session.run): no hop to another goroutine per message. It reads
//     what the socket has (LineReader: 512 bytes idle, 64 KiB busy) and
//     handles every whole line of it before it reads again: a burst.
//
//   - Parsing allocates nothing: protocol.ParseCommandTo fills the
//     session's one Command, its strings parts of the session's arena
//     (arena.go), which also gives the burst's entries, items, event
//     lines and resend records, carved from chunks that are never
//     rewritten. A session holds an arena only during a burst; an idle
//     connection holds none.
//
//   - Routing (postOffice.postID): the recipient's mailbox is locked, the
//     message takes its id, its event line is built once (no
//     fmt, no time.Format: appendWireTime caches the second), the entry
//     goes on the mailbox's queue (a slice in id order; no map, no timer),
//     and the queue is pushed to the recipient's outbox up to its window.
//     A group message is one item and one line for all its copies; a burst
//     of posts to a group reaches each member in one write (msgGroup holds
//     the copies until the burst ends).
//
//   - Writing (protocol.Outbox): a line is appended to the connection's
//     buffer and never blocks; a flusher goroutine writes everything
//     queued in one write per wake-up, lingers 50 ms for more (parked, not
//     re-created), and ends when the connection is quiet: an idle
//     connection holds no goroutine and no buffer. A peer that does not
//     read is closed as a slow consumer at --max-outbound.
//
//   - Acknowledging: ACK ..<msgid> (or a list) is parsed in place; the
//     mailbox drops what it covers (binary search, or the pushed prefix of
//     the queue), each sender hears "250 ... delivered" built on the
//     stack, and the queue's freed room is reused. qchat's clients send
//     one ACK ..<id> per burst they read.
//
//   - Disk only for what is late: an entry is written to the store only
//     when its recipient is offline, or is silent past its own ack grace
//     (srtt + 4*rttvar of its measured acknowledgement times, as TCP times
//     a retransmission, at least --ack-grace, at most 500 ms; time the
//     server itself lost to starvation does not count). One saver
//     goroutine and one timer check the watched mailboxes (online, with
//     entries in memory only); the store's writer commits whatever has
//     queued in one transaction (group commit). A group message is stored
//     once, with a cursor per member (store_group.go).
//
//   - A client id (MSG id=<cid>, which qchat's clients always send) is
//     recorded before anyone can see its message, so that a resend after
//     a SIGKILL is recognised: a copy of 128 bytes into the journal's ring,
//     a file mapped into memory (dedupe.Journal): no system call, no
//     fsync, and at most the ring's 4 MiB a write-back period on disk.
//
//   - History (--history-days, archive.go) is off by default and then
//     costs one nil check per message. On, a message also goes on the
//     archiver's queue (one append) and its id through the archive's
//     watermark (one more mutex); the archiver hands each batch to the
//     store's group commit, and the sender's 250 waits for that commit.
//
// # Idle connections and logins
//
// What ten thousand idle logged-in connections cost, and what a storm of
// logins costs (issue 11 item 4; figures in the README's bench section):
//
//   - An idle session has no goroutine (park.go): the sweeper asks one
//     silent for a second to park, its line reader gives back its buffer,
//     its socket goes into one epoll set (park_linux.go) and its goroutine
//     ends. Readiness or a close starts a new one where it stopped. What
//     is left is the session's structs, its TLS state (crypto/tls: about
//     3.5 KiB, the floor with TLS) and the kernel's socket.
//   - One timer wheel holds every session's next check (wheel.go): the
//     login deadline, the keepalive PING (--ping-interval, a minute) and
//     the ask to park. An idle session is visited once a minute; the
//     kernel's TCP keepalive watches the line meanwhile without waking us.
//   - Presence is coalesced (announce.go, presence/): the changes of an
//     interval go out as one batch, as lines or one summary per watcher,
//     so a restart with N users logging back in costs each watcher a line
//     every few seconds, not N lines.
//   - A reconnecting client logs in with a resumption token (tokens.go,
//     resume/): one HMAC instead of bcrypt.
//   - The memory returner (memory.go) gives the heap of a storm back to
//     the system once it is over.
//
// Lock order: postOffice.mu, then mailbox.mu (several at once only in user
// id order), then postOffice.smu, the id allocator's and an outbox's lock
// last; srv.mu before a session's mu, which comes before an outbox's. No
// lock is held across store I/O or a socket write.
package serve
