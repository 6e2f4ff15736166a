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

// Offer prints an offer and how to answer it.
func (p *Printer) Offer(o OfferEvent) string {
	who := Name(o.From, o.FromNick)
	plain := fmt.Sprintf("* %s wants a direct chat: /accept %d or /reject %d", who, o.From, o.From)
	if o.Purpose == "file" {
		plain = fmt.Sprintf("* %s offers %s: /accept %d or /reject %d",
			who, OfferLabel(o.Count, o.Bytes, protocol.Escape(o.Name)), o.From, o.From)
	}
	return p.Emit(&OfferRecord{Head: NewHeadAt("offer", o.Time), Ticket: o.Ticket, Kind: o.Purpose, From: o.From, FromNick: o.FromNick,
		Files: o.Count, Size: o.Bytes, Name: o.Name}, plain)
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
	return p.Emit(&CancelRecord{Head: NewHead("cancel"), Ticket: o.Ticket, Kind: o.Purpose, From: o.From, FromNick: o.FromNick, Reason: why},
		fmt.Sprintf("* %s from %s %s", what, Name(o.From, o.FromNick), text))
}

// Link prints which path a link to peer took, and how; nat is this
// side's NAT kind (Client.NAT).
func (p *Printer) Link(kind string, peer User, l *xfer.Link, nat string) string {
	what := "direct chat with " + Name(peer.ID, peer.Nick) + " open"
	if kind == "file" {
		what = "file link to " + Name(peer.ID, peer.Nick)
	}
	r := l.Route()
	return p.Emit(&LinkRecord{Head: NewHead("link"), Kind: kind, Peer: l.Peer, PeerNick: peer.Nick, Path: r.Path, Via: r.Via, How: r.How, NAT: nat},
		fmt.Sprintf("* %s: %s (%s)", what, r.Path, protocol.Escape(routeText(r, nat))))
}

// Moved prints that a link to peer moved while in use (from the relay to
// a direct connection): "now direct".
func (p *Printer) Moved(kind string, peer User, r xfer.Route, nat string) string {
	what := "direct chat with " + Name(peer.ID, peer.Nick)
	if kind == "file" {
		what = "file link to " + Name(peer.ID, peer.Nick)
	}
	return p.Emit(&LinkRecord{Head: NewHead("link"), Kind: kind, Peer: peer.ID, PeerNick: peer.Nick, Path: r.Path, Via: r.Via, How: r.How, NAT: nat, Moved: true},
		fmt.Sprintf("* %s: now %s (%s)", what, r.Path, protocol.Escape(routeText(r, nat))))
}

// routeText says how a route was made: "dialed 10.0.0.5:4000",
// "primed: dialed 203.0.113.2:4000; NAT here: port-preserving".
func routeText(r xfer.Route, nat string) string {
	s := r.Text()
	if nat != "" && nat != xfer.NATUnknown {
		s += "; NAT here: " + nat
	}
	return s
}

// FileReceived prints one file received into dir.
func (p *Printer) FileReceived(from User, f xfer.FileResult, dir string, via string) string {
	abs := filepath.Join(dir, filepath.FromSlash(f.Path))
	if a, err := filepath.Abs(abs); err == nil {
		abs = a
	}
	plain := fmt.Sprintf("received %s (%s) from %s -> %s blake3 %s", protocol.Escape(f.Name), FormatBytes(f.Size),
		Name(from.ID, from.Nick), protocol.Escape(abs), f.Hash)
	if f.Resumed > 0 {
		plain += fmt.Sprintf(" (resumed at %s, %s this time)", FormatBytes(f.Resumed), FormatBytes(f.Moved))
	}
	return p.Emit(&FileRecord{Head: NewHead("file"), From: from.ID, FromNick: from.Nick, Name: f.Name, Size: f.Size, BLAKE3: f.Hash,
		Path: abs, Moved: f.Moved, Resumed: f.Resumed, Via: via}, plain)
}

// FileSent prints one file sent.
func (p *Printer) FileSent(to User, f xfer.FileResult, via string) string {
	plain := fmt.Sprintf("sent %s (%s) to %s blake3 %s", protocol.Escape(f.Name), FormatBytes(f.Size),
		Name(to.ID, to.Nick), f.Hash)
	if f.Resumed > 0 {
		plain += fmt.Sprintf(" (resumed at %s, %s this time)", FormatBytes(f.Resumed), FormatBytes(f.Moved))
	}
	return p.Emit(&FileRecord{Head: NewHead("file_sent"), To: to.ID, ToNick: to.Nick, Name: f.Name, Size: f.Size, BLAKE3: f.Hash,
		Path: f.Path, Moved: f.Moved, Resumed: f.Resumed, Via: via}, plain)
}

// FileFailed prints a file that did not get through.
func (p *Printer) FileFailed(peer User, name string, err error) string {
	return p.Emit(&FileErrorRecord{Head: NewHead("file_error"), Peer: peer.ID, PeerNick: peer.Nick, Name: name, Message: err.Error()},
		fmt.Sprintf("! %s: %s", protocol.Escape(name), protocol.Escape(err.Error())))
}

// Direct prints a message that came over a direct chat.
func (p *Printer) Direct(from User, m xfer.DirectMessage) string {
	return p.Emit(&DirectRecord{Head: NewHeadAt("direct", m.Time), ID: m.ID, From: from.ID, FromNick: from.Nick, Text: m.Text},
		fmt.Sprintf("%s %s [direct]: %s", p.Stamp(m.Time), Name(from.ID, from.Nick), protocol.Escape(m.Text)))
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
