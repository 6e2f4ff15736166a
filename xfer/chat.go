package xfer

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// A direct chat runs over a chat link. Each side writes
//
//	MSG <id> <time-ms> <text>    a message: its id (for history), the
//	                             sender's clock in Unix milliseconds, text
//	PING / PONG                  keepalive while nobody talks
//	BYE                          the chat is over
//
// The server sees none of it.

// MaxChatText is the longest direct message, as on the server.
const MaxChatText = 4096

// DirectMessage is one message that arrived over a direct chat.
type DirectMessage struct {
	ID   int64
	Time time.Time
	Text string
}

// Chat is an open direct chat. Send and Close are safe for concurrent use.
type Chat struct {
	l    *Link
	Peer int64

	mu     sync.Mutex // writes
	closed bool
	done   chan struct{}
	err    error // why it ended, once done is closed
}

// StartChat runs the chat on l: onMsg hears every message (on the chat's
// reader goroutine, in order), onEnd once why it ended (nil for BYE).
func StartChat(l *Link, onMsg func(DirectMessage), onEnd func(error)) *Chat {
	c := &Chat{l: l, Peer: l.Peer, done: make(chan struct{})}
	go c.readLoop(onMsg, onEnd)
	go c.keepalive()
	return c
}

// Link is the chat's link (path, peer).
func (c *Chat) Link() *Link { return c.l }

// Done is closed when the chat has ended.
func (c *Chat) Done() <-chan struct{} { return c.done }

// CheckChatText checks a direct message before it is sent: the text goes
// on one line, so it must be UTF-8 without control characters.
func CheckChatText(text string) error {
	switch {
	case text == "":
		return errors.New("empty message")
	case len(text) > MaxChatText:
		return fmt.Errorf("text too long (%d bytes, limit %d)", len(text), MaxChatText)
	case !utf8.ValidString(text):
		return errors.New("text is not valid UTF-8")
	}
	for i := 0; i < len(text); i++ {
		if text[i] < 0x20 || text[i] == 0x7f {
			return errors.New("a direct message cannot hold control characters")
		}
	}
	return nil
}

// Send writes one message.
func (c *Chat) Send(id int64, t time.Time, text string) error {
	if err := CheckChatText(text); err != nil {
		return err
	}
	return c.write("MSG", strconv.FormatInt(id, 10), strconv.FormatInt(t.UnixMilli(), 10), text)
}

func (c *Chat) write(words ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("the direct chat is closed")
	}
	return c.l.send(words...)
}

// Close says BYE and closes the link.
func (c *Chat) Close() error {
	c.write("BYE")
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.l.Close()
	<-c.done
	return nil
}

func (c *Chat) readLoop(onMsg func(DirectMessage), onEnd func(error)) {
	var err error
	defer func() {
		c.mu.Lock()
		c.closed = true
		c.err = err
		c.mu.Unlock()
		c.l.Close()
		close(c.done)
		if onEnd != nil {
			onEnd(err)
		}
	}()
	for {
		var verb, rest string
		verb, rest, err = c.l.readLine()
		if err != nil {
			c.mu.Lock()
			if c.closed {
				err = nil // we closed it
			}
			c.mu.Unlock()
			return
		}
		switch verb {
		case "MSG":
			a, ferr := fields(rest, 3, true)
			if ferr != nil {
				err = ferr
				return
			}
			id, err1 := strconv.ParseInt(a[0], 10, 64)
			ms, err2 := strconv.ParseInt(a[1], 10, 64)
			if err1 != nil || err2 != nil || id >= 0 || len(a[2]) > MaxChatText {
				err = protoErr("bad MSG line")
				return
			}
			onMsg(DirectMessage{ID: id, Time: time.UnixMilli(ms), Text: a[2]})
		case "PING":
			c.write("PONG")
		case "PONG":
		case "BYE":
			return
		default:
			err = protoErr("unknown line %q", clipText(verb))
			return
		}
	}
}

// keepalive pings while the chat is quiet, so that the peer's idle timeout
// only fires for a link that is really gone.
func (c *Chat) keepalive() {
	every := c.l.idle / 3
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if c.write("PING") != nil {
				return
			}
		}
	}
}
