package xfer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
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

// connectBoth runs Connect on both sides at once and returns both
// outcomes.
func connectBoth(a, b *Peer, ta, tb Ticket, opts ConnectOptions) (la, lb *Link, ea, eb error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioWait)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); la, ea = a.Connect(ctx, ta, opts) }()
	go func() { defer wg.Done(); lb, eb = b.Connect(ctx, tb, opts) }()
	wg.Wait()
	for _, l := range []*Link{la, lb} {
		if l != nil {
			l.Close()
		}
	}
	return la, lb, ea, eb
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return ln.Addr().String()
}

// TestWrongKeyRefusedOnEveryPath: when the key the server named is not
// the key the other side holds, no link comes up, whichever side was told
// the wrong key and whichever path is taken.
func TestWrongKeyRefusedOnEveryPath(t *testing.T) {
	other := listen(t, 9) // its key is the wrong one
	relay := newFakeRelay(t)
	opts := ConnectOptions{Timeout: time.Second}
	for i, path := range []string{"offerer dials", "other side dials", "relay"} {
		for j, wrongAt := range []string{"offerer", "other side"} {
			t.Run(path+", wrong key at the "+wrongAt, func(t *testing.T) {
				t.Parallel()
				a, b := listen(t, 1), listen(t, 2)
				ta, tb := tickets(a, b, "wrongkey"+strconv.Itoa(2*i+j))
				o := opts
				switch path {
				case "other side dials":
					ta.PeerAddr = deadAddr(t)
				case "relay":
					o.ForceRelay, o.Server = true, relay.addr()
					ta.RelaySecret, tb.RelaySecret = "secretA", "secretB"
				}
				if wrongAt == "offerer" {
					ta.PeerKey = other.Fingerprint()
				} else {
					tb.PeerKey = other.Fingerprint()
				}
				la, lb, ea, eb := connectBoth(a, b, ta, tb, o)
				if la != nil || lb != nil {
					t.Fatalf("a link came up: A %v, B %v", la != nil, lb != nil)
				}
				// The side told the wrong key says so.
				checker := ea
				if wrongAt != "offerer" {
					checker = eb
				}
				if !errors.Is(checker, ErrPeerKey) {
					t.Errorf("the %s's error %v does not say the peer's key is wrong", wrongAt, checker)
				}
			})
		}
	}
}

// TestBothSpeakFirstPinsKeys: when both sides dialed (TCP simultaneous
// open makes one connection of the two) both speak HELLO first; the TLS
// roles come from the ticket, so the handshake works, and a wrong key
// still fails it.
func TestBothSpeakFirstPinsKeys(t *testing.T) {
	for _, wrong := range []bool{false, true} {
		a, b := listen(t, 1), listen(t, 2)
		ta, tb := tickets(a, b, "simultaneous")
		if wrong {
			tb.PeerKey = listen(t, 9).Fingerprint()
		}
		ca, cb := tcpPair(t)
		var la, lb *Link
		var ea, eb error
		var wg sync.WaitGroup
		wg.Add(2)
		both := func(p *Peer, c net.Conn, tk Ticket, l **Link, e *error) {
			defer wg.Done()
			h, err := p.hello(newLink(c, ioWait), tk)
			if err == nil {
				h, err = p.secure(context.Background(), h, tk, ioWait)
			}
			if err != nil {
				c.Close() // as dialPeer does: the other side's handshake ends too
			}
			*l, *e = h, err
		}
		go both(a, ca, ta, &la, &ea)
		go both(b, cb, tb, &lb, &eb)
		wg.Wait()
		if wrong {
			if ea == nil || !errors.Is(eb, ErrPeerKey) {
				t.Errorf("wrong key: A %v, B %v; want both to fail, B with ErrPeerKey", ea, eb)
			}
			continue
		}
		if ea != nil || eb != nil {
			t.Fatalf("A %v, B %v", ea, eb)
		}
		go la.send("PING", "inside")
		if v, r, err := lb.readLine(); err != nil || v != "PING" || r != "inside" {
			t.Errorf("B read %q %q %v", v, r, err)
		}
		la.Close()
		lb.Close()
	}
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2 := <-acc
	if c2 == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, c2
}

// TestImpostorGetsNoLink: someone who saw the ticket and the ids on the
// wire, but holds neither peer's key, gets through HELLO and then fails
// the TLS handshake, on either end: no link line, no data. The ticket
// still works for the real peers afterwards.
func TestImpostorGetsNoLink(t *testing.T) {
	a, b := listen(t, 1), listen(t, 2)
	eve := listen(t, 1) // claims to be user 1 (A), with a key of her own
	ta, tb := tickets(a, b, "stolen")
	b.Expect(tb)

	// Eve dials B as A.
	c, err := net.DialTimeout("tcp", addrOf(b), ioWait)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(ioWait))
	l := newLink(c, ioWait)
	if err := l.send("HELLO", "stolen", "1"); err != nil {
		t.Fatal(err)
	}
	if v, _, err := l.readLine(); err != nil || v != "HELLO" {
		t.Fatalf("B answered %q %v", v, err)
	}
	_, err = eve.secure(context.Background(), l, Ticket{ID: "stolen", Peer: 2, PeerKey: b.Fingerprint(), Offerer: true}, ioWait)
	if err == nil {
		t.Fatal("eve's handshake with B succeeded")
	}
	c.Close()
	waitFor(t, "B to refuse eve", func() bool { return b.Refused.Load() == 1 })

	// A dials Eve's endpoint, taking it for B's: Eve answers HELLO as B
	// and presents her own key. A sends nothing more than the handshake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioWait))
		l := newLink(c, ioWait)
		l.readLine()
		l.send("HELLO", "stolen", "2")
		tc := tls.Server(&bufferedConn{Conn: c, r: l.r}, &tls.Config{Certificates: []tls.Certificate{eve.id.cert}, ClientAuth: tls.RequireAnyClientCert})
		tc.Handshake()
		b, _ := io.ReadAll(tc) // whatever A would say inside
		got <- b
	}()
	fake := ta
	fake.PeerAddr = ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), ioWait)
	defer cancel()
	_, err = a.Connect(ctx, fake, ConnectOptions{Timeout: time.Second})
	if !errors.Is(err, ErrPeerKey) {
		t.Errorf("A connected to eve, or failed without naming the key: %v", err)
	}
	if b := <-got; len(b) != 0 {
		t.Errorf("eve read %q from A", b)
	}

	// The real peers still link on the ticket.
	connectPair(t, a, b, ta, tb, ConnectOptions{})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", ioWait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRelayCarriesNoPlaintext: a file and a direct chat line through a
// relay that records every byte it carries: both arrive, and the
// recording holds neither the file's bytes, its name, nor the line.
func TestRelayCarriesNoPlaintext(t *testing.T) {
	relay := newFakeRelay(t)
	src, dst := t.TempDir(), t.TempDir()
	data := randomBytes(1<<20 + 5)
	writeFile(t, filepath.Join(src, "secret-plans.pdf"), data)
	o, err := NewOffer(filepath.Join(src, "secret-plans.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := listen(t, 1), listen(t, 2)
	opts := ConnectOptions{ForceRelay: true, Server: relay.addr()}

	ta, tb := tickets(a, b, "relayfile")
	ta.RelaySecret, tb.RelaySecret = "secretA1", "secretB1"
	la, lb := connectPair(t, a, b, ta, tb, opts)
	if la.Path != "relay" || lb.Path != "relay" {
		t.Fatalf("paths %s/%s", la.Path, lb.Path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioWait)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Receive(ctx, lb, ReceiveOptions{Dir: dst}, nil)
		done <- err
	}()
	if res, err := Send(ctx, la, o, nil); err != nil || res.Files[0].Err != nil {
		t.Fatalf("send: %v %+v", err, res.Files)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "secret-plans.pdf")); !bytes.Equal(got, data) {
		t.Fatal("the file arrived different")
	}

	ta, tb = tickets(a, b, "relaychat")
	ta.RelaySecret, tb.RelaySecret = "secretA2", "secretB2"
	la, lb = connectPair(t, a, b, ta, tb, opts)
	msgs := make(chan DirectMessage, 1)
	cb := StartChat(lb, func(m DirectMessage) { msgs <- m }, nil)
	ca := StartChat(la, func(DirectMessage) {}, nil)
	const line = "meet me at the old mill at midnight"
	if err := ca.Send(-1, time.Now(), line); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if m.Text != line {
			t.Fatalf("got %q", m.Text)
		}
	case <-time.After(ioWait):
		t.Fatal("the chat line did not arrive")
	}
	ca.Close()
	cb.Close()

	rec := relay.recorded()
	// The relay saw the tickets and each side's secret, as it must.
	for _, want := range []string{"RELAY relayfile secretA1", "RELAY relayfile secretB1", "RELAY relaychat secretA2"} {
		if !bytes.Contains(rec, []byte(want)) {
			t.Errorf("the relay did not get %q", want)
		}
	}
	if len(rec) < len(data) {
		t.Fatalf("the relay carried %d bytes, less than the file", len(rec))
	}
	// Whole lines, not bare words: three random bytes of ciphertext spell
	// "USE" about once in every 16 MiB.
	for _, secret := range [][]byte{[]byte(line), []byte("secret-plans"), []byte("\nFILES "), []byte("\nUSE\n")} {
		if bytes.Contains(rec, secret) {
			t.Errorf("the relay carried %q in clear", secret)
		}
	}
	for off := 0; off+32 <= len(data); off += 16 << 10 {
		if bytes.Contains(rec, data[off:off+32]) {
			t.Fatalf("the relay carried the file's bytes at %d in clear", off)
		}
	}
}

// fakeRelay is a server that only relays: it greets, takes RELAY
// <ticket> <secret> from two connections of one ticket, answers both 200
// and copies between them, recording every byte it reads.
type fakeRelay struct {
	ln      net.Listener
	mu      sync.Mutex
	waiting map[string]net.Conn
	rec     bytes.Buffer
	wg      sync.WaitGroup
}

func newFakeRelay(t *testing.T) *fakeRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRelay{ln: ln, waiting: make(map[string]net.Conn)}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	return r
}

func (r *fakeRelay) addr() string { return r.ln.Addr().String() }

func (r *fakeRelay) recorded() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.rec.Bytes())
}

func (r *fakeRelay) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec.Write(b)
}

func (r *fakeRelay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.serve(c)
	}
}

func (r *fakeRelay) serve(c net.Conn) {
	c.Write([]byte("220 fake qchat/1 ready\n"))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		c.Close()
		return
	}
	r.Write([]byte(line))
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "RELAY" {
		c.Write([]byte("501 usage: RELAY <ticket> <secret>\n"))
		c.Close()
		return
	}
	from := &bufferedConn{Conn: c, r: br}
	r.mu.Lock()
	other := r.waiting[f[1]]
	if other == nil {
		r.waiting[f[1]] = from
		r.mu.Unlock()
		return
	}
	delete(r.waiting, f[1])
	r.mu.Unlock()
	c.Write([]byte("200 relay open\n"))
	other.Write([]byte("200 relay open\n"))
	go func() {
		io.Copy(other, io.TeeReader(from, r))
		other.Close()
	}()
	io.Copy(from, io.TeeReader(other, r))
	c.Close()
}
