package client

import (
	"context"
	"testing"
	"time"

	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
)

// dialFake connects a Client to a fake server and returns both ends.
func dialFake(t testing.TB) (*Client, *fakeserver.Conn) {
	t.Helper()
	s := fakeserver.New(t, fakeserver.Greeting)
	ctx, cancel := context.WithTimeout(context.Background(), fakeserver.Guard)
	defer cancel()
	c, err := Dial(ctx, s.Addr(), Options{NoTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, s.Accept(t)
}

// loginFake logs c in as 1000 alice, the server's side played on sc.
func loginFake(t testing.TB, c *Client, sc *fakeserver.Conn) {
	t.Helper()
	done := fakeserver.Async(func() error { _, err := c.Login(context.Background(), "alice", "pw"); return err })
	sc.Login(t, 1000, "alice")
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
}

// nextEvent returns the next line on the client's event stream.
func nextEvent(t testing.TB, c *Client) protocol.Line {
	t.Helper()
	select {
	case l, ok := <-c.Events():
		if !ok {
			t.Fatalf("event stream closed: %v", c.Err())
		}
		return l
	case <-time.After(fakeserver.Guard):
		t.Fatal("no event")
		return protocol.Line{}
	}
}

// line parses a wire line the server could send; it must be valid.
func line(t testing.TB, wire string) protocol.Line {
	t.Helper()
	l, err := protocol.ParseLine([]byte(wire))
	if err != nil {
		t.Fatalf("ParseLine(%q): %v", wire, err)
	}
	return l
}
