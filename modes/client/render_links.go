package client

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"qchat/protocol"
	"qchat/xfer"
)

// JSON records of direct links and files (PROTOCOL.md lists them).
type (
	OfferRecord struct {
		Type     string `json:"type"` // "offer"
		Ticket   string `json:"ticket"`
		Kind     string `json:"kind"` // "chat" or "file"
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Files    int    `json:"files,omitempty"`
		Size     int64  `json:"size,omitempty"`
		Name     string `json:"name,omitempty"`
		Time     string `json:"time"`
	}
	CancelRecord struct {
		Type   string `json:"type"` // "cancel"
		Ticket string `json:"ticket"`
		Reason string `json:"reason"` // "timeout" or "gone"
	}
	LinkRecord struct {
		Type string `json:"type"` // "link"
		Kind string `json:"kind"` // "chat" or "file"
		Peer int64  `json:"peer"`
		Path string `json:"path"` // "direct" or "relay"
		Via  string `json:"via"`
	}
	// FileRecord is one file received (type "file") or sent ("file_sent").
	FileRecord struct {
		Type     string `json:"type"`
		From     int64  `json:"from,omitempty"`
		FromNick string `json:"from_nick,omitempty"`
		To       int64  `json:"to,omitempty"`
		Name     string `json:"name"`
		Size     int64  `json:"size"`
		SHA256   string `json:"sha256"`
		Path     string `json:"path,omitempty"`
		Moved    int64  `json:"bytes"`        // bytes that crossed the link for it
		Resumed  int64  `json:"resumed_from"` // bytes that were already there
		Via      string `json:"via,omitempty"`
	}
	// FileErrorRecord is one file that did not get through.
	FileErrorRecord struct {
		Type  string `json:"type"` // "file_error"
		Peer  int64  `json:"peer"`
		Name  string `json:"name"`
		Error string `json:"error"`
	}
	DirectRecord struct {
		Type     string `json:"type"` // "direct"
		ID       int64  `json:"id"`
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Text     string `json:"text"`
		Time     string `json:"time"`
	}
)

// Offer prints an offer and how to answer it.
func (p *Printer) Offer(o OfferEvent) string {
	who := fmt.Sprintf("%s (%d)", protocol.Escape(o.FromNick), o.From)
	plain := fmt.Sprintf("* %s wants a direct chat: /accept %d or /reject %d", who, o.From, o.From)
	if o.Purpose == "file" {
		plain = fmt.Sprintf("* %s offers %s: /accept %d or /reject %d",
			who, OfferLabel(o.Count, o.Bytes, protocol.Escape(o.Name)), o.From, o.From)
	}
	return p.Emit(OfferRecord{Type: "offer", Ticket: o.Ticket, Kind: o.Purpose, From: o.From, FromNick: o.FromNick,
		Files: o.Count, Size: o.Bytes, Name: o.Name, Time: protocol.FormatTime(o.Time)}, plain)
}

// Cancel prints that an offer is gone.
func (p *Printer) Cancel(o OfferEvent, why string) string {
	what := "the direct chat request"
	if o.Purpose == "file" {
		what = "the offer of " + protocol.Escape(o.Name)
	}
	text := map[string]string{"timeout": "timed out", "gone": "was withdrawn (the sender left)"}[why]
	if text == "" {
		text = "ended: " + protocol.Escape(why)
	}
	return p.Emit(CancelRecord{Type: "cancel", Ticket: o.Ticket, Reason: why},
		fmt.Sprintf("* %s from %s (%d) %s", what, protocol.Escape(o.FromNick), o.From, text))
}

// Link prints which path a link took.
func (p *Printer) Link(kind string, peer string, l *xfer.Link) string {
	what := "direct chat with " + peer + " open"
	if kind == "file" {
		what = "file link to " + peer
	}
	return p.Emit(LinkRecord{Type: "link", Kind: kind, Peer: l.Peer, Path: l.Path, Via: l.Via},
		fmt.Sprintf("* %s: %s (%s)", what, l.Path, protocol.Escape(l.Via)))
}

// FileReceived prints one file received into dir.
func (p *Printer) FileReceived(from User, f xfer.FileResult, dir string, via string) string {
	abs := filepath.Join(dir, filepath.FromSlash(f.Path))
	if a, err := filepath.Abs(abs); err == nil {
		abs = a
	}
	plain := fmt.Sprintf("received %s (%s) from %s (%d) -> %s sha256 %s", protocol.Escape(f.Name), FormatBytes(f.Size),
		protocol.Escape(from.Nick), from.ID, protocol.Escape(abs), f.SHA256)
	if f.Resumed > 0 {
		plain += fmt.Sprintf(" (resumed at %s, %s this time)", FormatBytes(f.Resumed), FormatBytes(f.Moved))
	}
	return p.Emit(FileRecord{Type: "file", From: from.ID, FromNick: from.Nick, Name: f.Name, Size: f.Size, SHA256: f.SHA256,
		Path: abs, Moved: f.Moved, Resumed: f.Resumed, Via: via}, plain)
}

// FileSent prints one file sent.
func (p *Printer) FileSent(to User, f xfer.FileResult, via string) string {
	plain := fmt.Sprintf("sent %s (%s) to %s (%d) sha256 %s", protocol.Escape(f.Name), FormatBytes(f.Size),
		protocol.Escape(to.Nick), to.ID, f.SHA256)
	if f.Resumed > 0 {
		plain += fmt.Sprintf(" (resumed at %s, %s this time)", FormatBytes(f.Resumed), FormatBytes(f.Moved))
	}
	return p.Emit(FileRecord{Type: "file_sent", To: to.ID, Name: f.Name, Size: f.Size, SHA256: f.SHA256,
		Path: f.Path, Moved: f.Moved, Resumed: f.Resumed, Via: via}, plain)
}

// FileFailed prints a file that did not get through.
func (p *Printer) FileFailed(peer int64, name string, err error) string {
	return p.Emit(FileErrorRecord{Type: "file_error", Peer: peer, Name: name, Error: err.Error()},
		fmt.Sprintf("! %s: %s", protocol.Escape(name), protocol.Escape(err.Error())))
}

// Direct prints a message that came over a direct chat.
func (p *Printer) Direct(from User, m xfer.DirectMessage) string {
	return p.Emit(DirectRecord{Type: "direct", ID: m.ID, From: from.ID, FromNick: from.Nick, Text: m.Text, Time: protocol.FormatTime(m.Time.UTC())},
		fmt.Sprintf("%s %s (%d) [direct]: %s", p.Stamp(m.Time), protocol.Escape(from.Nick), from.ID, protocol.Escape(m.Text)))
}

// OfferLabel describes an offer: "report.pdf (1 file, 1.2 MiB)",
// "album/ (12 files, 30.0 MiB)", or "3 files (4.8 MiB)". name must be safe
// to show already.
func OfferLabel(count int, bytes int64, name string) string {
	if name == Plural(count, "file") {
		return name + " (" + FormatBytes(bytes) + ")"
	}
	return name + " (" + Plural(count, "file") + ", " + FormatBytes(bytes) + ")"
}

// FormatBytes writes a size for people: 0 B, 999 B, 1.5 KiB, 3.2 MiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	// Move up a unit also when rounding to one decimal would reach 1024
	// (1048575 bytes is "1.0 MiB", not "1024.0 KiB").
	for float64(n)/float64(div) >= unit-0.05 && exp < 5 {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Plural writes "1 file", "3 files".
func Plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// DirectID returns an id for a message of a direct chat: negative (server
// ids are positive) and made of the clock, so unique across runs, so that
// history keeps both kinds apart and never holds one twice.
func DirectID() int64 {
	for {
		last := lastDirect.Load()
		id := -time.Now().UnixNano()
		if id >= last {
			id = last - 1
		}
		if lastDirect.CompareAndSwap(last, id) {
			return id
		}
	}
}

var lastDirect atomic.Int64
