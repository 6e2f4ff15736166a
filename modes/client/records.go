package client

import (
	"time"

	"qchat/protocol"
)

// The JSON objects of --json (chat and recv), one per line. The README's
// "JSON output" section is their schema, and a test holds every object
// the end-to-end stories print to it. The rules:
//
//   - every object has "type" and "time" (RFC 3339 UTC with milliseconds:
//     the server's time of a message, else when it was printed);
//   - a result (the answer to a command) also has "command": the command
//     line as typed;
//   - a peer is an id and a nickname side by side: "from" and "from_nick",
//     "to" and "to_nick", "peer" and "peer_nick", "id" and "nick";
//   - errors are {"type":"error","code":...,"message":...}, on stdout.

// Head is what every object has. The Printer fills in Time when it is
// empty (the moment the object is printed).
type Head struct {
	Type string `json:"type"`
	Time string `json:"time"`
}

func (h *Head) head() *Head { return h }

// header is implemented by every record that embeds Head.
type header interface{ head() *Head }

// Result is the head of an answer to a command.
type Result struct {
	Head
	Command string `json:"command"` // the command line as typed
}

func (r *Result) result() *Result { return r }

// resulter is implemented by every record that embeds Result.
type resulter interface{ result() *Result }

// SetCommand puts the command line that obj answers into it, when obj is
// a result (embeds Result).
func SetCommand(obj any, line string) {
	if r, ok := obj.(resulter); ok {
		r.result().Command = line
	}
}

// NewHead is a head of this type, timed now (filled in when printed).
func NewHead(typ string) Head { return Head{Type: typ} }

// NewHeadAt is a head of this type at a time of the server's.
func NewHeadAt(typ string, t time.Time) Head {
	return Head{Type: typ, Time: protocol.FormatTime(t)}
}

// NewResult is the head of a result of this type.
func NewResult(typ string) Result { return Result{Head: Head{Type: typ}} }

// Error codes of error objects (besides the server's three-digit reply
// codes, given as a string: "550").
const (
	CodeFailed      = "failed"      // the command failed on this side (the message says why)
	CodeUsage       = "usage"       // the command was typed wrong
	CodeUnknown     = "unknown"     // no such command
	CodeLoginFirst  = "login-first" // the command needs a login
	CodeUnreachable = "unreachable" // no connection to the server could be made
	CodeServerKey   = "server-key"  // the server's key is not the one pinned, or not known
	CodeTLS         = "tls"         // the server refused STARTTLS, or bytes came in clear after it
	CodeConnection  = "connection"  // the connection to the server was lost
	CodeTimeout     = "timeout"     // no answer in time
	CodeHistory     = "history"     // the local history files failed
	CodeInput       = "input"       // reading the input failed
)

// ErrorRecord is an error, on stdout under --json. Command is the command
// line that failed, when a command did.
type ErrorRecord struct {
	Head
	Command string `json:"command,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// NewError is an error object.
func NewError(command, code, message string) *ErrorRecord {
	return &ErrorRecord{Head: NewHead("error"), Command: command, Code: code, Message: message}
}

// Events from the server.
type (
	MsgRecord struct {
		Head            // "msg", or "gmsg" for a group message
		ID       int64  `json:"id"`
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		To       int64  `json:"to,omitempty"`
		ToNick   string `json:"to_nick,omitempty"`
		Group    string `json:"group,omitempty"` // "#name", for "gmsg"
		Text     string `json:"text"`
	}
	RequestRecord struct {
		Head            // "request"
		ID       int64  `json:"id"`
		Kind     string `json:"kind"` // "friend" or "invite"
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Group    string `json:"group,omitempty"` // for "invite"
	}
	NoticeRecord struct {
		Head            // "notice"
		ID       int64  `json:"id"`
		What     string `json:"what"` // friend-accepted, friend-rejected, friend-removed, invite-accepted, invite-rejected, kicked, offline-taken, offline-refused, offline-expired
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Group    string `json:"group,omitempty"`
		FileID   int64  `json:"file_id,omitempty"` // offline-*: the file left on the server
		Name     string `json:"name,omitempty"`
	}
	// OfflineRecord is a file waiting for me on the server (an OFFLINE
	// event).
	OfflineRecord struct {
		Head // "offline"
		OfflineItem
	}
	// OfflineItem is one offline file.
	OfflineItem struct {
		FileID   int64  `json:"file_id"`
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Name     string `json:"name"`
		Size     int64  `json:"size"`
		Left     string `json:"left"` // when it was left (RFC 3339 UTC, milliseconds)
	}
	// OfflineListRecord is /files.
	OfflineListRecord struct {
		Result               // "offline_files"
		Files  []OfflineItem `json:"files"`
	}
	NudgeRecord struct {
		Head            // "nudge"
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
	}
	PresenceRecord struct {
		Head          // "presence"
		ID     int64  `json:"id"`
		Nick   string `json:"nick"`
		State  string `json:"state"`
		Status string `json:"status,omitempty"`
	}
	// UserItem is a user in a list (list, friends, found).
	UserItem struct {
		ID     int64  `json:"id"`
		Nick   string `json:"nick"`
		State  string `json:"state"`
		Status string `json:"status,omitempty"`
	}
	// NoteRecord is a line for people about what is going on (a retry of
	// a transfer); scripts need not read it.
	NoteRecord struct {
		Head        // "note"
		Text string `json:"text"` // escaped for a terminal
	}
	ServerRecord struct {
		Head        // "server"
		Code int    `json:"code"`
		Text string `json:"text"`
	}
	ByeRecord struct {
		Head          // "bye"
		Reason string `json:"reason"`
		Text   string `json:"text"`
	}
)

// Records of direct links and files.
type (
	OfferRecord struct {
		Head            // "offer"
		Ticket   string `json:"ticket"`
		Kind     string `json:"kind"` // "chat" or "file"
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Files    int    `json:"files,omitempty"`
		Size     int64  `json:"size,omitempty"`
		Name     string `json:"name,omitempty"`
	}
	CancelRecord struct {
		Head            // "cancel"
		Ticket   string `json:"ticket"`
		Kind     string `json:"kind"` // "chat" or "file"
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Reason   string `json:"reason"` // "timeout" or "gone"
	}
	LinkRecord struct {
		Head            // "link"
		Kind     string `json:"kind"` // "chat" or "file"
		Peer     int64  `json:"peer"`
		PeerNick string `json:"peer_nick"`
		Path     string `json:"path"` // "direct" or "relay"
		Via      string `json:"via"`
		How      string `json:"how"`             // xfer.HowDialed, ...
		NAT      string `json:"nat"`             // this side's NAT: xfer.NATNone, ...
		Moved    bool   `json:"moved,omitempty"` // the link moved to this path while in use
	}
	// FileRecord is one file received (type "file") or sent ("file_sent").
	FileRecord struct {
		Head
		From     int64  `json:"from,omitempty"`
		FromNick string `json:"from_nick,omitempty"`
		To       int64  `json:"to,omitempty"`
		ToNick   string `json:"to_nick,omitempty"`
		Name     string `json:"name"`
		Size     int64  `json:"size"`
		BLAKE3   string `json:"blake3"` // the file hash, hex (as b3sum prints it)
		Path     string `json:"path,omitempty"`
		Moved    int64  `json:"bytes"`        // bytes that crossed the link for it
		Resumed  int64  `json:"resumed_from"` // bytes that were already there
		Via      string `json:"via,omitempty"`
	}
	// FileErrorRecord is one file that did not get through.
	FileErrorRecord struct {
		Head            // "file_error"
		Peer     int64  `json:"peer"`
		PeerNick string `json:"peer_nick"`
		Name     string `json:"name"`
		Message  string `json:"message"`
	}
	DirectRecord struct {
		Head            // "direct"
		ID       int64  `json:"id"`
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Text     string `json:"text"`
	}
)
