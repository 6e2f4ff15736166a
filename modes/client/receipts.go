package client

import (
	"errors"
	"fmt"
	"strconv"

	"qchat/protocol"
)

// ErrNoReceipts is what Read and Typing say to a server without receipts
// (its greeting does not say "receipts"): nothing is sent.
var ErrNoReceipts = errors.New("the server has no receipts or typing notifications (an older qchat serve)")

// Receipts and typing (PROTOCOL.md section 5.1): the lines a client sends
// (READ, TYPING: no reply) and the events it gets (RECEIPT, TYPING).

// Read tells the server that the user has read what peer (an id or a
// nickname) sent them up to msgid. It does not wait (no reply).
func (c *Client) Read(peer string, msgid int64) error {
	if !c.rcpts {
		return ErrNoReceipts
	}
	return c.send("READ", peer, strconv.FormatInt(msgid, 10))
}

// Typing tells the server that the user is typing a message to peer, or
// stopped. It does not wait (no reply).
func (c *Client) Typing(peer string, on bool) error {
	if !c.rcpts {
		return ErrNoReceipts
	}
	state := "off"
	if on {
		state = "on"
	}
	return c.send("TYPING", peer, state)
}

// Read is Client.Read on the connection of the moment; while the session
// is down it does nothing (a receipt is not durable).
func (s *Session) Read(peer string, msgid int64) error {
	if cl := s.current(); cl != nil {
		return cl.Read(peer, msgid)
	}
	return nil
}

// Typing is Client.Typing on the connection of the moment; while the
// session is down it does nothing.
func (s *Session) Typing(peer string, on bool) error {
	if cl := s.current(); cl != nil {
		return cl.Typing(peer, on)
	}
	return nil
}

// current is the connection of the moment, nil while down.
func (s *Session) current() *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cl
}

// Marks a message can have (Sent.Mark, Receipt.Mark).
const (
	MarkShown = "shown" // the recipient's client has shown it
	MarkRead  = "read"  // the recipient has read it
)

// Receipt is a RECEIPT event: Peer's client has shown (or Peer has read)
// every message I sent Peer up to UpTo.
type Receipt struct {
	Peer User
	Mark string // MarkShown or MarkRead
	UpTo int64
}

// ParseReceipt reads a RECEIPT event.
func ParseReceipt(l protocol.Line) (Receipt, error) {
	if l.Kind != "RECEIPT" || len(l.Args) != 4 {
		return Receipt{}, fmt.Errorf("not a RECEIPT event")
	}
	id, ok1 := protocol.ParseID(l.Args[0])
	upTo, ok2 := protocol.ParseID(l.Args[3])
	if !ok1 || !ok2 || (l.Args[2] != MarkShown && l.Args[2] != MarkRead) {
		return Receipt{}, fmt.Errorf("malformed RECEIPT event")
	}
	return Receipt{Peer: User{id, l.Args[1]}, Mark: l.Args[2], UpTo: upTo}, nil
}

// Typing is a TYPING event: From is typing a message to me, or stopped.
type Typing struct {
	From User
	On   bool
}

// ParseTyping reads a TYPING event.
func ParseTyping(l protocol.Line) (Typing, error) {
	if l.Kind != "TYPING" || len(l.Args) != 3 {
		return Typing{}, fmt.Errorf("not a TYPING event")
	}
	id, ok := protocol.ParseID(l.Args[0])
	if !ok || (l.Args[2] != "on" && l.Args[2] != "off") {
		return Typing{}, fmt.Errorf("malformed TYPING event")
	}
	return Typing{From: User{id, l.Args[1]}, On: l.Args[2] == "on"}, nil
}

// JSON objects of receipts and typing.
type (
	ReceiptRecord struct {
		Head            // "receipt"
		Peer     int64  `json:"peer"`
		PeerNick string `json:"peer_nick"`
		Mark     string `json:"mark"`  // "shown" or "read"
		UpTo     int64  `json:"up_to"` // every message sent to peer up to this id
	}
	TypingRecord struct {
		Head            // "typing"
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		State    string `json:"state"` // "on" or "off"
	}
)

// Receipt prints a receipt: "✓✓ bob (1001) read your messages up to 57".
func (p *Printer) Receipt(r Receipt) string {
	plain := fmt.Sprintf("✓✓ %s read your messages up to %d", Name(r.Peer.ID, r.Peer.Nick), r.UpTo)
	if r.Mark == MarkShown {
		plain = fmt.Sprintf("✓ %s was shown your messages up to %d", Name(r.Peer.ID, r.Peer.Nick), r.UpTo)
	}
	return p.Emit(&ReceiptRecord{Head: NewHead("receipt"), Peer: r.Peer.ID, PeerNick: r.Peer.Nick, Mark: r.Mark, UpTo: r.UpTo}, plain)
}

// Typing prints a typing notification: "* bob (1001) is typing…".
func (p *Printer) Typing(t Typing) string {
	state, plain := "off", fmt.Sprintf("* %s stopped typing", Name(t.From.ID, t.From.Nick))
	if t.On {
		state, plain = "on", fmt.Sprintf("* %s is typing…", Name(t.From.ID, t.From.Nick))
	}
	return p.Emit(&TypingRecord{Head: NewHead("typing"), From: t.From.ID, FromNick: t.From.Nick, State: state}, plain)
}
