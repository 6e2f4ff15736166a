// Package history keeps the client's local message history: one
// append-only text file per conversation under the user's data folder
// ($XDG_DATA_HOME/qchat/<server>/<user>/<conv>.log), mode 0600 in folders
// mode 0700.
//
// The package owns the file format, the folder layout, the escaping that
// makes any message text safe to cat or grep, deduplication by server
// message id (within a process and across processes, by flock), and the
// recovery of a line torn by a killed process.
//
// A line holds one record, tab-separated:
//
//	2026-11-22T10:00:01.123Z<TAB>17<TAB>in<TAB>1000<TAB>alice<TAB>hello world
//
// that is: UTC time with milliseconds, message id, "in" or "out", sender id,
// escaped nickname, escaped text. Escapes are \\ \t \n \r, \xNN for any other
// C0 control, DEL and each byte of invalid UTF-8, and \uNNNN for C1 controls
// and the bidirectional formatting characters. Nothing else is escaped, so
// Chinese and emoji stay readable in less.
//
// Records fetched later from a server's archive (qchat chat --sync) are
// merged in at their place in time order (Merge), so a file reads in
// order and holds no id twice whatever order its records came in; a mark
// (Mark, SetMark: a file .<name>.mark beside the conversations) keeps how
// far the last sync got.
//
// The package must not know anything about the network, the protocol or the
// terminal: it stores what the client hands it and gives it back unchanged.
// Showing a record safely on a screen is the caller's business.
package history
