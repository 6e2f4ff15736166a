// Package limits holds the server's abuse limits and fairness shares: who
// may do how much of what, per session, per source address, per account
// and for the whole server. It answers "may this happen now, and if not,
// how long until it may?"; the server decides what the client is told.
//
// It owns:
//
//   - Pacer: a session's budget of costly commands, ergo's "fakelag": a
//     token bucket lets a burst through, then the session's next command
//     waits until its tokens are back, so a fast sender is slowed to the
//     rate rather than cut off; only one that stays over the rate for a
//     whole flood period is told to go (Take reports flood).
//   - Logins: failed passwords per source address and account, and per
//     source address: past a free number of failures each attempt waits
//     (exponentially longer, and attempts from parallel connections queue
//     one behind the other), and past a lockout number in a window the
//     address is refused for that account (or for every account).
//   - Registrations: new accounts per source address and for the server.
//   - Conns: connections not yet logged in, per source address and in all.
//   - Shares: how many of one recipient's waiting items come from each
//     sender, so that no sender fills a queue that others need.
//   - Coalescer and Every: at most one event per key per interval, the
//     ones in between merged into one that carries the latest state
//     (presence) or dropped (log lines of refused connections).
//   - Exempt and AddrKey: which addresses no limit applies to, and the key
//     a source address counts under (IPv4 /32, IPv6 /64).
//
// It must not know sockets, sessions, the wire protocol, reply codes or
// the store: no I/O, no goroutines, no timers. Every decision takes the
// time as an argument (now), so tests drive it with a fake clock and
// never sleep; the server passes time.Now() and does any waiting itself,
// on the goroutine of the session that must wait (a session's read loop),
// so that waiting never holds up another session.
//
// Concurrency: Logins, Registrations, Conns, Coalescer and Every are shared
// by all sessions and take their own mutex, held for map look-ups only.
// Pacer belongs to one session's read loop and Shares to one mailbox
// (under the mailbox's lock): neither locks. Maps keyed by address or
// account are pruned by Sweep (the server calls it from its sweeper), so
// memory is bounded by the activity of one window, not by history.
package limits
