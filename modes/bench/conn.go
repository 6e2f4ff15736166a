package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"qchat/modes/client"
	"qchat/protocol"
)

// conn is one raw, logged-in connection. The bench speaks the wire itself
// rather than through modes/client: a load tool must cost the shared CPU
// as little as it can, so that what it measures is the server. Lines are
// built and parsed with the protocol package except on the hot paths (the
// MSG and GMSG events and the 250 reply), which are read by hand.
//
// One goroutine reads; writes go through w under mu.
type conn struct {
	nc      net.Conn // TLS over TCP, or TCP with --no-tls
	addr    string   // the server (node) it is connected to
	r       *bufio.Reader
	mu      sync.Mutex
	w       *bufio.Writer
	id      int64
	nick    string
	token   string // a resumption token of its login ("" when the server gives none)
	greeted bool   // the greeting was read
	ackTo   bool   // the server takes ACK ..<msgid> (its greeting says ackto)
}

// errLogin is a login refused by the server (wrong password, bad nick).
var errLogin = errors.New("login refused")

// exemptHint says why a server's abuse limits refuse a bench, and what to do.
const exemptHint = " (the server's abuse limits: run it with --limits-exempt for the bench host, e.g. --limits-exempt 127.0.0.0/8)"

// dial connects, reads the greeting and logs in as nick, registering the
// account first if it does not exist yet (REG, USER and PASS go in one
// write; the server answers them in order). bufSize sizes the read buffer:
// big for traffic, small for idle connections. With keys, the connection
// is upgraded to TLS first (STARTTLS) and the server's key checked.
func dial(ctx context.Context, addr, nick, password string, bufSize int, timeout time.Duration, keys *client.ServerKeys) (*conn, error) {
	return dialAs(ctx, addr, nick, password, "", bufSize, timeout, keys)
}

// dialAs is dial, logging in with the resumption token when there is one
// (RESUME instead of REG, USER and PASS).
func dialAs(ctx context.Context, addr, nick, password, token string, bufSize int, timeout time.Duration, keys *client.ServerKeys) (*conn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, r: bufio.NewReaderSize(nc, bufSize), nick: nick, addr: addr}
	if keys != nil {
		if err := c.startTLS(ctx, addr, keys, timeout); err != nil {
			nc.Close()
			return nil, fmt.Errorf("%s: %w", nick, err)
		}
	}
	c.w = bufio.NewWriterSize(c.nc, bufSize)
	if err := c.login(password, token, timeout); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", nick, err)
	}
	return c, nil
}

func (c *conn) login(password, token string, timeout time.Duration) error {
	c.nc.SetDeadline(time.Now().Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	var b []byte
	var err error
	// The PING after PASS makes the login complete only once the server
	// has finished handling it (noted it for the next presence batch,
	// and sent the first batch at once after a quiet interval), so that a
	// run of logins is timed, and an idle connection measured, only after
	// the server's work is done. TOKEN asks for a resumption token (a
	// server without them answers 500 or 502, which is ignored).
	cmds := [][]string{{"r", "REG", c.nick, password}, {"u", "USER", c.nick}, {"p", "PASS", password}, {"t", "TOKEN"}, {"k", "PING", "login"}}
	if token != "" {
		cmds = [][]string{{"p", "RESUME", token}, {"t", "TOKEN"}, {"k", "PING", "login"}}
	}
	for _, cmd := range cmds {
		if b, err = protocol.AppendCommand(b, cmd[0], cmd[1], cmd[2:]...); err != nil {
			return err
		}
	}
	if _, err := c.nc.Write(b); err != nil {
		return err
	}
	for {
		raw, err := c.readLine()
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		l, err := protocol.ParseLine(raw)
		if err != nil {
			continue
		}
		switch {
		case !c.greeted && l.Code != 0:
			if l.Code == protocol.CodeUnavailable {
				return fmt.Errorf("refused: %s%s", protocol.Clip(l.Text, 80), exemptHint)
			}
			if l.Code != protocol.CodeGreeting {
				return fmt.Errorf("not a qchat server: %s", protocol.Clip(string(raw), 60))
			}
			c.greeted = true
			c.ackTo = slices.Contains(strings.Fields(l.Text), "ackto")
		case l.Tag == "r" && l.Code == protocol.CodeRateLimit:
			return fmt.Errorf("%w: REG: %d %s%s", errLogin, l.Code, l.Text, exemptHint)
		case l.Tag == "r" && l.Code != protocol.CodeRegistered && l.Code != protocol.CodeNameTaken:
			return fmt.Errorf("%w: REG: %d %s", errLogin, l.Code, l.Text)
		case l.Tag == "p" && l.Code == protocol.CodeLoggedIn:
			id, _, _ := strings.Cut(l.Text, " ")
			var ok bool
			if c.id, ok = protocol.ParseID(id); !ok {
				return fmt.Errorf("login: unexpected reply %q", l.Text)
			}
		case l.Tag == "p":
			return fmt.Errorf("%w: %d %s", errLogin, l.Code, l.Text)
		case l.Tag == "t" && l.Code == protocol.CodeToken:
			c.token, _, _ = strings.Cut(l.Text, " ")
		case l.Tag == "k" && c.id != 0:
			return nil
		case l.IsEvent() && l.Kind == "BYE":
			return fmt.Errorf("closed by server: %s", strings.Join(l.Args, " "))
		}
	}
}

// readLine returns the next line without its line end, valid until the
// next call. Lines longer than the buffer are skipped.
func (c *conn) readLine() ([]byte, error) {
	for {
		line, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = c.r.ReadSlice('\n')
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		return line, nil
	}
}

// write queues b and, with flush, sends everything queued.
func (c *conn) write(b []byte, flush bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	if flush {
		return c.w.Flush()
	}
	return nil
}

// pong answers the server's keepalive.
func (c *conn) pong(l []byte) {
	tok := bytes.TrimPrefix(l, []byte("PING "))
	b, err := protocol.AppendCommand(nil, "", "PONG", string(tok))
	if err == nil {
		c.write(b, true)
	}
}

// ack acknowledges ids (comma separated, no trailing comma).
func (c *conn) ack(ids []byte) error {
	b := make([]byte, 0, len(ids)+5)
	b = append(b, "ACK "...)
	b = append(b, ids...)
	b = append(b, '\n')
	return c.write(b, true)
}

// ackUpTo acknowledges every message up to id: ACK ..<id>.
func (c *conn) ackUpTo(id []byte) error {
	b := make([]byte, 0, len(id)+8)
	b = append(b, "ACK .."...)
	b = append(b, id...)
	b = append(b, '\n')
	return c.write(b, true)
}

func (c *conn) close() { c.nc.Close() }

// msgEvent is the part of a MSG event the bench needs.
type msgEvent struct {
	id   []byte // message id, as on the wire
	text []byte
}

// parseMsg reads "MSG <msgid> <from> <from_nick> <time> <text>" by hand;
// ok is false for any other line.
func parseMsg(l []byte) (ev msgEvent, ok bool) { return parseDurable(l, "MSG ", 4) }

// parseGMsg reads "GMSG <msgid> <from> <from_nick> <time> #<group> <text>"
// by hand; ok is false for any other line.
func parseGMsg(l []byte) (ev msgEvent, ok bool) { return parseDurable(l, "GMSG ", 5) }

// parseDurable reads an event "<kind><msgid> <arg>... <text>" with fields
// words before the text, the first of them the msgid.
func parseDurable(l []byte, kind string, fields int) (ev msgEvent, ok bool) {
	rest, ok := bytes.CutPrefix(l, []byte(kind))
	if !ok {
		return ev, false
	}
	for i := range fields {
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			return msgEvent{}, false
		}
		if i == 0 {
			ev.id = rest[:j]
		}
		rest = rest[j+1:]
	}
	ev.text = rest
	return ev, true
}

// reply is a tagged reply line as the sender reads it.
type reply struct {
	tag  []byte
	code int
	text []byte
}

// parseReply reads "@tag CODE text"; ok is false for untagged lines.
func parseReply(l []byte) (r reply, ok bool) {
	if len(l) < 6 || l[0] != '@' {
		return r, false
	}
	i := bytes.IndexByte(l, ' ')
	if i < 0 || len(l) < i+4 {
		return r, false
	}
	r.tag = l[1:i]
	c := l[i+1 : i+4]
	for _, d := range c {
		if d < '0' || d > '9' {
			return r, false
		}
		r.code = r.code*10 + int(d-'0')
	}
	if len(l) > i+5 {
		r.text = l[i+5:]
	}
	return r, true
}
