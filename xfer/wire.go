package xfer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The peer link speaks lines like the server protocol: a word, arguments
// separated by one space, a trailing free-text argument where the verb has
// one, LF at the end, at most maxLinkLine bytes. File data travels raw
// after a DATA line that gives its length. PROTOCOL.md ("Peer links") is
// the specification.
const maxLinkLine = 4096

// ErrLinkProtocol is wrapped by every error about what a peer sent.
var ErrLinkProtocol = errors.New("peer link protocol error")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrLinkProtocol, fmt.Sprintf(format, args...))
}

// Link is an established, authenticated peer link (direct or relayed).
// One goroutine reads, one writes; Close may come from any.
type Link struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	idle time.Duration // every read and write must progress within this
	rate int64         // bytes per second of file data sent, 0 for no limit
	// Path, Via and How are the route the link was made on; it may move
	// later (Route, Moves).
	Path    string // "direct" or "relay"
	Via     string // "dialed 10.0.0.5:40123", "accepted from ...", "relayed by the server"
	How     string // HowDialed, HowAccepted, HowPrimed, HowSimultaneous, HowProbed or HowRelayed
	Peer    int64  // the other user
	Ticket  string
	Offerer bool // I asked for the link (sent CHAT or FILE)

	mv        *movable   // the stream under conn while the link may move
	moves     chan Route // a move, then closed when none can come any more
	routeMu   sync.Mutex
	moved     *Route
	movesDone bool
}

// How a link was made.
const (
	HowDialed       = "dialed"       // our SYN reached the peer's listener: no NAT stood in the way
	HowAccepted     = "accepted"     // the peer's SYN reached our listener
	HowPrimed       = "primed"       // through the offerer's NAT, opened by its small-TTL SYN (punch.go)
	HowSimultaneous = "simultaneous" // both SYNs crossed in flight (TCP simultaneous open)
	HowProbed       = "probed"       // one side's NAT changes ports: its mapping was found by probing (punch.go)
	HowRelayed      = "relayed"      // through the server
)

// Route is a path a link takes.
type Route struct {
	Path, Via, How string
}

// Text says how the route was made: "dialed 10.0.0.5:4000", or for a
// hole punched through NATs "primed: dialed 203.0.113.2:4000".
func (r Route) Text() string {
	switch r.How {
	case HowPrimed, HowSimultaneous, HowProbed:
		return r.How + ": " + r.Via
	}
	return r.Via
}

// Route is the path the link takes now.
func (l *Link) Route() Route {
	l.routeMu.Lock()
	defer l.routeMu.Unlock()
	if l.moved != nil {
		return *l.moved
	}
	return Route{l.Path, l.Via, l.How}
}

// Moves tells where the link moved to while in use (from the relay to a
// direct connection): at most one Route, then the channel is closed once
// no move can come any more. Nil for a link that cannot move.
func (l *Link) Moves() <-chan Route { return l.moves }

func newLink(conn net.Conn, idle time.Duration) *Link {
	return newLinkReader(conn, bufio.NewReaderSize(conn, 64<<10), idle)
}

// newLinkReader makes a link that reads through r, which may hold bytes
// of the link read already.
func newLinkReader(conn net.Conn, r *bufio.Reader, idle time.Duration) *Link {
	return &Link{conn: conn, r: r, w: bufio.NewWriterSize(conn, 64<<10), idle: idle}
}

// Close closes the connection.
func (l *Link) Close() error { return l.conn.Close() }

// SetRate limits the file data this side sends to bytes per second (0:
// no limit), like scp -l or curl --limit-rate.
func (l *Link) SetRate(bytesPerSecond int64) { l.rate = bytesPerSecond }

// SetIdle changes the idle timeout for later reads and writes.
func (l *Link) SetIdle(d time.Duration) { l.idle = d }

func (l *Link) readDeadline() {
	if l.idle > 0 {
		l.conn.SetReadDeadline(time.Now().Add(l.idle))
	}
}

func (l *Link) writeDeadline() {
	if l.idle > 0 {
		l.conn.SetWriteDeadline(time.Now().Add(l.idle))
	}
}

// readLine returns the next line split into its verb and the rest, both
// checked: valid UTF-8, no control characters, at most maxLinkLine bytes.
// It must come within the idle timeout.
func (l *Link) readLine() (verb, rest string, err error) {
	l.readDeadline()
	return l.readLineNow()
}

// readLineNow is readLine under whatever read deadline is set.
func (l *Link) readLineNow() (verb, rest string, err error) {
	b, err := l.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(b) > maxLinkLine {
		return "", "", protoErr("line too long")
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", "", err
	}
	b = bytes.TrimSuffix(b[:len(b)-1], []byte{'\r'})
	if !utf8.Valid(b) {
		return "", "", protoErr("line is not UTF-8")
	}
	for _, r := range string(b) {
		if unsafeRune(r) {
			return "", "", protoErr("control or formatting character in a line")
		}
	}
	verb, rest, _ = strings.Cut(string(b), " ")
	return verb, rest, nil
}

// expect reads a line and fails unless its verb is one of verbs.
func (l *Link) expect(verbs ...string) (verb, rest string, err error) {
	verb, rest, err = l.readLine()
	if err != nil {
		return "", "", err
	}
	for _, v := range verbs {
		if verb == v {
			return verb, rest, nil
		}
	}
	if verb == "ERR" {
		return "", "", fmt.Errorf("peer: %s", clipText(rest))
	}
	return "", "", protoErr("expected %s, got %q", strings.Join(verbs, " or "), clipText(verb))
}

// writeLine queues one line built from words; the last may hold spaces.
// Nothing is sent until flush.
func (l *Link) writeLine(words ...string) error {
	for i, w := range words {
		if i > 0 {
			l.w.WriteByte(' ')
		}
		l.w.WriteString(w)
	}
	return l.w.WriteByte('\n')
}

// flush sends what is queued.
func (l *Link) flush() error {
	l.writeDeadline()
	return l.w.Flush()
}

// send queues one line and sends it.
func (l *Link) send(words ...string) error {
	if err := l.writeLine(words...); err != nil {
		return err
	}
	return l.flush()
}

// fields splits rest into exactly n words, the last one taking the rest of
// the line when trailing is set.
func fields(rest string, n int, trailing bool) ([]string, error) {
	var out []string
	for len(out) < n {
		if trailing && len(out) == n-1 {
			if rest == "" {
				break
			}
			out = append(out, rest)
			rest = ""
			break
		}
		w, r, _ := strings.Cut(rest, " ")
		if w == "" {
			break
		}
		out = append(out, w)
		rest = r
	}
	if len(out) != n || rest != "" {
		return nil, protoErr("want %d arguments", n)
	}
	return out, nil
}

// parseCount reads a non-negative decimal number up to max.
func parseCount(s string, max int64) (int64, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, protoErr("bad number %q", clipText(s))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > max {
		return 0, protoErr("bad number %q", clipText(s))
	}
	return n, nil
}

func clipText(s string) string {
	if len(s) <= 60 {
		return s
	}
	n := 60
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// escapeName writes a file name for a link line: '%', control and
// formatting characters and bytes of invalid UTF-8 become %XX (each byte),
// so any name the sender's file system holds can be told (the receiver
// then makes it safe: SafePath).
func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '%' || unsafeRune(r) || (r == utf8.RuneError && size == 1) {
			for _, c := range []byte(s[i : i+size]) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// unescapeName undoes escapeName; a '%' not followed by two hex digits
// stays as it is.
func unescapeName(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}
