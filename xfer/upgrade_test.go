package xfer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate is a TCP forwarder to target that takes connections at once but
// passes no byte until opened: a direct path that is slow to come up.
type gate struct {
	ln     net.Listener
	target string
	open   chan struct{}
	once   sync.Once
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, open: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() { g.opened(); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				<-g.open
				d, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer d.Close()
				go func() { io.Copy(d, c); d.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, d)
			}()
		}
	}()
	return g
}

func (g *gate) addr() string { return g.ln.Addr().String() }
func (g *gate) opened()      { g.once.Do(func() { close(g.open) }) }

// meterFunc calls its function on every Bytes.
type meterFunc func(int)

func (meterFunc) Begin(int, int64, int64) {}
func (m meterFunc) Bytes(n int)           { m(n) }
func (meterFunc) FileDone(FileResult)     {}

// TestRelayedLinkMovesToDirect: the relay comes up first and a file
// starts over it; the direct path comes up in the middle of the file and
// the link moves to it. The file arrives whole, both sides hear of the
// move, and the relay did not carry all of the file.
func TestRelayedLinkMovesToDirect(t *testing.T) {
	a, b := listen(t, 1), listen(t, 2)
	relay := newFakeRelay(t)
	g := newGate(t, addrOf(b))
	ta, tb := tickets(a, b, "moveticket1")
	ta.PeerAddr = g.addr()    // A reaches B through the gate
	tb.PeerAddr = deadAddr(t) // B cannot reach A
	ta.RelaySecret, tb.RelaySecret = "secretA", "secretB"
	la, lb := connectPair(t, a, b, ta, tb, ConnectOptions{Server: relay.addr()})
	if la.Path != "relay" || lb.Path != "relay" {
		t.Fatalf("paths %s/%s, want the relay first", la.Path, lb.Path)
	}
	if la.Moves() == nil || lb.Moves() == nil {
		t.Fatal("a relayed link with a direct path to try cannot move")
	}

	src, dst := t.TempDir(), t.TempDir()
	const size = 6 << 20
	data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz!"), size/37+1)[:size]
	if err := os.WriteFile(filepath.Join(src, "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := NewOffer(filepath.Join(src, "f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	la.SetRate(4 << 20)             // a second and a half: the move comes in the middle
	before := len(relay.recorded()) // the handshakes, before any of the file
	ctx, cancel := context.WithTimeout(context.Background(), ioWait)
	defer cancel()
	var sendErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, sendErr = Send(ctx, la, o, meterFunc(func(int) { g.opened() }))
	}()
	res, err := Receive(ctx, lb, ReceiveOptions{Dir: dst}, nil)
	<-done
	if err != nil || sendErr != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("receive %v %+v, send %v", err, res, sendErr)
	}
	got, err := os.ReadFile(filepath.Join(dst, "f.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file arrived changed (%d of %d bytes, %v)", len(got), size, err)
	}
	for name, l := range map[string]*Link{"offerer": la, "other side": lb} {
		r, ok := <-l.Moves()
		if !ok || r.Path != "direct" || l.Route() != r {
			t.Errorf("%s: move %+v (%v), route %+v, want direct", name, r, ok, l.Route())
		}
		if _, more := <-l.Moves(); more {
			t.Errorf("%s: a second move", name)
		}
	}
	// The gate opens once the first bytes of the file went out over the
	// relay: it carried some of the file, never all of it.
	if n := len(relay.recorded()); n >= size || n <= before+1<<10 {
		t.Errorf("the relay carried %d bytes of the link (%d before the file), want part of the %d of the file", n, before, size)
	}
}

// noRelayServer answers every RELAY like `serve --no-relay`.
func noRelayServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("220 test qchat/1 ready\n"))
				bufio.NewReader(c).ReadString('\n')
				c.Write([]byte("502 this server does not relay (serve --no-relay)\n"))
			}()
		}
	}()
	return ln.Addr().String()
}

// TestNoPathNoRelay: with no direct path and a server that does not
// relay, Connect gives up once every kind of direct attempt had its
// turn, well before the connect timeout, and says both.
func TestNoPathNoRelay(t *testing.T) {
	a, b := listen(t, 1), listen(t, 2)
	ta, tb := tickets(a, b, "norelay1")
	ta.PeerAddr, tb.PeerAddr = deadAddr(t), deadAddr(t)
	ta.RelaySecret, tb.RelaySecret = "secretA", "secretB"
	opts := ConnectOptions{Server: noRelayServer(t), Timeout: time.Hour, NAT: NATPortChanged}
	la, lb, ea, eb := connectBoth(a, b, ta, tb, opts)
	if la != nil || lb != nil {
		t.Fatal("a link came up")
	}
	for _, err := range []error{ea, eb} {
		if !errors.Is(err, ErrNoPath) || !errors.Is(err, ErrNoRelay) || !errors.Is(err, ErrRelayRefused) {
			t.Errorf("error %v, want no path and no relay", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "no direct path") || !strings.Contains(msg, "NAT here: port-changing") ||
			!strings.Contains(msg, "will not relay: 502 this server does not relay") {
			t.Errorf("error %q does not say what happened", msg)
		}
	}
}

// TestRelayedChatMovesToDirect: a direct chat on the relay moves to a
// direct connection while both sides write; every message arrives once,
// in order, and the chat goes on after the move.
func TestRelayedChatMovesToDirect(t *testing.T) {
	a, b := listen(t, 1), listen(t, 2)
	relay := newFakeRelay(t)
	g := newGate(t, addrOf(b))
	ta, tb := tickets(a, b, "movechat1")
	ta.Purpose, tb.Purpose = "chat", "chat"
	ta.PeerAddr, tb.PeerAddr = g.addr(), deadAddr(t)
	ta.RelaySecret, tb.RelaySecret = "secretA", "secretB"
	la, lb := connectPair(t, a, b, ta, tb, ConnectOptions{Server: relay.addr()})
	if la.Path != "relay" || lb.Path != "relay" {
		t.Fatalf("paths %s/%s, want the relay first", la.Path, lb.Path)
	}
	const n = 200
	got := [2]chan DirectMessage{make(chan DirectMessage, 2*n), make(chan DirectMessage, 2*n)}
	ca := StartChat(la, func(m DirectMessage) { got[0] <- m }, nil)
	cb := StartChat(lb, func(m DirectMessage) { got[1] <- m }, nil)
	defer ca.Close()
	defer cb.Close()
	var wg sync.WaitGroup
	for side, c := range []*Chat{ca, cb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= n; i++ {
				if i == n/2 && side == 0 {
					g.opened() // the direct path comes up half-way through
					<-la.Moves()
				}
				if err := c.Send(-int64(i), time.Now(), "line "+strconv.Itoa(i)); err != nil {
					t.Errorf("side %d: send %d: %v", side, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for side := range got {
		for i := 1; i <= n; i++ {
			m := <-got[1-side]
			if m.ID != -int64(i) || m.Text != "line "+strconv.Itoa(i) {
				t.Fatalf("side %d got %d %q, want line %d", 1-side, m.ID, m.Text, i)
			}
		}
	}
	if r := lb.Route(); r.Path != "direct" {
		t.Errorf("the other side is on %+v, want direct", r)
	}
	if err := ca.Send(-1000, time.Now(), "after"); err != nil {
		t.Fatal(err)
	}
	if m := <-got[1]; m.Text != "after" {
		t.Errorf("got %q after the move", m.Text)
	}
}
