// Package protocol is the qchat wire: the line syntax of commands, replies
// and events, their status codes and limits, and the two pieces of line I/O
// every endpoint needs (a bounded line reader and a byte-bounded outbox).
//
// PROTOCOL.md in this folder is the normative specification; this package is
// its executable form. The package must not know anything about accounts,
// sessions, storage or terminals: it decides what a line means, never what to
// do about it. It imports nothing of the project.
package protocol
