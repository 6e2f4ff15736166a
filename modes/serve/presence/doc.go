// Package presence owns coalesced presence: the changes of who is online
// noted during one interval become one Batch, and a Log of recent batches
// answers "what changed since version v" (LIST <version>).
//
// Why: in LAN mode everyone hears everyone, so telling each login to each
// online user one line at a time costs N lines per login, N² for a
// restart with N users reconnecting (ten thousand logins, fifty million
// lines). Batched, the cost is one write per watcher per interval
// whatever the number of changes: a watcher gets the changes of a batch as
// PRESENCE lines when they are few, and one PRESENCES summary (counts and
// the version to ask LIST for) when they are many. That is XMPP's roster
// push turned into a pull past a size, and ergo's MONITOR inverted: a
// client that wants the details asks for them.
//
// It owns:
//
//   - Coalescer: the ordered set of users whose presence changed since the
//     last batch, and when the next batch may go: at once after a quiet
//     interval (a lone login is seen without delay), otherwise when the
//     interval is over, so batches go out at most once per interval.
//   - Batch and Change: one interval's changes, at most one per user (the
//     state of the moment the batch is taken: the latest wins). A batch is
//     the unit that will cross between cluster nodes (issue 13): a node
//     publishes each batch it takes (AppendBatch, ParseBatch: the same
//     PRESENCE lines clients read), and every node hands the batches of all
//     nodes to its own watchers exactly as its own; a node that dies is one
//     batch of its users going offline.
//   - Log: the versions of recent batches and who changed in each, bounded.
//
// It must not know sessions, sockets, the store or who may see whom
// (friends mode): the server resolves states, picks the watchers and
// writes. No goroutines, no timers: Note says when the next batch is due
// and the server arranges to call Take then. Every call takes the time as
// an argument, so tests use a fake clock.
package presence
