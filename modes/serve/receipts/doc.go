// Package receipts owns the marks of delivery and read receipts (XEP-0184,
// XEP-0333) on their way from the server to the people who sent the
// messages: "the reader's client has shown, or the reader has read, what
// you sent them up to msgid", one mark per conversation and kind,
// cumulative as XEP-0333's markers are.
//
// Why: a mark per message would cost a line per message, and a burst of a
// thousand messages a thousand lines. Marks are "up to", so the newest one
// of a conversation says all that the ones before it said: a lone mark
// after a quiet interval goes at once, and the marks that come sooner are
// merged into one, sent when the interval is over (Coalescer). A burst
// costs one RECEIPT per interval, a trickle one per message.
//
// It owns:
//
//   - Mark and Kind: who read (or whose client showed) what whom sent,
//     up to which msgid.
//   - Coalescer: the marks of each conversation and kind, at most one
//     sent per interval, the latest winning; never one that says less
//     than one sent before.
//   - Waiting: the marks whose sender was offline, kept (bounded, in
//     memory) for the sender's next login.
//
// It must not know sessions, sockets, the wire, the store, settings or
// blocks: the server decides which marks exist and whether they may go,
// and writes them. No goroutines, no timers: Note says when Take is due
// and the server arranges to call it then. Every call takes the time as an
// argument, so tests use a fake clock.
//
// Typing notifications are not here: they are not merged (each is relayed
// at once or dropped, never kept) and the server limits them per session.
package receipts
