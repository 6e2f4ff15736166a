package serve

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"qchat/modes/serve/dedupe"
	"qchat/modes/serve/limits"
	"qchat/modes/serve/store"
	"qchat/modes/serve/store/sqlite"
	"qchat/protocol"
)

// Benchmarks of the server's hot paths, beside the load tool (qchat bench)
// that measures the whole:
//
//	go test -run '^$' -bench . -benchmem ./modes/serve/
//
// The durable store alone (what an unacknowledged message costs) is
// storetest.Bench, run by BenchmarkStore in store/sqlite and
// store/postgres. BenchmarkRoute is the in-memory path of a message to an
// online recipient who acknowledges it (post, push, ACK, answer),
// BenchmarkGroupFanout the same for a group message to many members, and
// BenchmarkRelay a private message through real connections on loopback.

// TestWireFormatsMatchProtocol pins the hand-built hot-path lines to the
// protocol package's builders, which are the reference.
func TestWireFormatsMatchProtocol(t *testing.T) {
	times := []time.Time{
		time.Date(2025, 1, 2, 3, 4, 5, 678_999_999, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999_000_000, time.FixedZone("x", 8*3600)),
		time.Date(2030, 6, 7, 8, 9, 10, 0, time.UTC),
		time.Now(),
	}
	for i, tm := range times {
		it := store.Item{Recipient: 1001, ID: int64(1e6 + i), Kind: "MSG", Sender: 1000, Nick: "小明", Time: tm, Body: "hi  there\r\nx\x00y"}
		want := protocol.AppendEvent(nil, "MSG", idStr(it.ID), idStr(it.Sender), it.Nick, protocol.FormatTime(it.Time), it.Body)
		if got := formatItem(nil, &it); string(got) != string(want) {
			t.Errorf("formatItem:\n got %q\nwant %q", got, want)
		}
		for _, tag := range []string{"", "a.1-_Z"} {
			want := protocol.AppendReply(nil, tag, protocol.CodeSent, false,
				fmt.Sprintf("%d %s %d %s", it.ID, "delivered", it.Recipient, protocol.FormatTime(it.Time)))
			if got := appendSent(nil, tag, it.ID, "delivered", it.Recipient, it.Time); string(got) != string(want) {
				t.Errorf("appendSent:\n got %q\nwant %q", got, want)
			}
		}
	}
}

func benchStore(b *testing.B, sync string) store.Store {
	b.Helper()
	st, err := sqlite.Open(b.TempDir(), sync, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// benchPostOffice is a post office on a fresh benchStore, with the
// default config (returned), closed at the end of the benchmark.
func benchPostOffice(b *testing.B, sync string) (*postOffice, Config) {
	b.Helper()
	ctx := context.Background()
	st := benchStore(b, sync)
	ids, err := newIDAlloc(ctx, st, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	cfg := Defaults()
	po, err := newPostOffice(ctx, st, ids, slog.New(slog.DiscardHandler), cfg.AckGrace, cfg.MaxQueue, 1024, cfg.MaxOutbound/2)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(po.close)
	return po, cfg
}

// discardConn is a connection that swallows writes and never reads.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }

// benchSession is a logged-in session whose output is thrown away.
func benchSession(srv *Server, user int64, nick string) *session {
	s := &session{srv: srv, conn: discardConn{}, user: user, nick: nick, start: time.Now()}
	s.out = protocol.NewOutbox(io.Discard, 1<<30, time.Second, nil)
	return s
}

// BenchmarkRoute is one message between two online users, in memory:
// post (id, event line, push to the recipient's outbox), the recipient's
// ACK, and the "delivered" answer to the sender.
func BenchmarkRoute(b *testing.B) {
	ctx := context.Background()
	po, cfg := benchPostOffice(b, "full")
	srv := &Server{cfg: cfg}
	alice, bob := benchSession(srv, 1000, "alice"), benchSession(srv, 1001, "bob")
	po.attach(ctx, alice)
	po.attach(ctx, bob)
	text := strings.Repeat("x", 64)
	mb := po.box(bob.user)
	alice.takeArena() // as while its read loop handles a burst of input
	defer alice.releaseArena()
	b.ReportAllocs()
	ack := make([]int64, 1)
	for b.Loop() {
		if err := po.post(alice, "t1", bob.user, text); err != nil {
			b.Fatal(err)
		}
		mb.mu.Lock()
		ack[0] = mb.queue[len(mb.queue)-1].id
		mb.mu.Unlock()
		po.ack(bob.user, ack)
	}
}

// BenchmarkRouteUnbatched is BenchmarkRoute as a person's client makes
// it: each MSG parsed from its own line (one read each, the arena taken
// and given back around it, as the read loop does), routed, encoded,
// pushed, and acknowledged by ACK ..<id>, parsed too.
func BenchmarkRouteUnbatched(b *testing.B) {
	ctx := context.Background()
	po, cfg := benchPostOffice(b, "full")
	srv := &Server{cfg: cfg, po: po}
	alice, bob := benchSession(srv, 1000, "alice"), benchSession(srv, 1001, "bob")
	alice.text, bob.text = alice.str, bob.str
	po.attach(ctx, alice)
	po.attach(ctx, bob)
	msg := []byte("@t1 MSG 1001 " + strings.Repeat("x", 64))
	var ack []byte
	mb := po.box(bob.user)
	b.ReportAllocs()
	for b.Loop() {
		alice.takeArena()
		if err := protocol.ParseCommandTo(&alice.cmd, msg, alice.text); err != nil {
			b.Fatal(err)
		}
		if err := po.post(alice, alice.cmd.Tag, bob.user, alice.cmd.Args[1]); err != nil {
			b.Fatal(err)
		}
		alice.releaseArena()
		mb.mu.Lock()
		id := mb.queue[len(mb.queue)-1].id
		mb.mu.Unlock()
		bob.takeArena()
		ack = strconv.AppendInt(append(ack[:0], "ACK .."...), id, 10)
		if err := protocol.ParseCommandTo(&bob.cmd, ack, bob.text); err != nil {
			b.Fatal(err)
		}
		if err := bob.cmdAck(&bob.cmd); err != nil {
			b.Fatal(err)
		}
		bob.releaseArena()
	}
}

// BenchmarkRelay is one message through a real server on loopback: one
// sender pipelining MSGs (at most 256 waiting for their reply), one
// receiver acknowledging each read's worth of messages at once. The
// client side runs in the same process, so the profile shows both.
func BenchmarkRelay(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := Defaults()
	cfg.Listen, cfg.Data, cfg.HashCost = "127.0.0.1:0", b.TempDir(), 4
	cfg.Log = slog.New(slog.DiscardHandler)
	cfg.Limits.Exempt, _ = limits.ParseExempt([]string{"127.0.0.0/8"}) // a load test is no flood
	srv, err := Start(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	addr := srv.Addr().String()
	snd, _ := benchLogin(b, addr, "sender")
	rcv, rcvID := benchLogin(b, addr, "receiver")
	defer snd.Close()
	defer rcv.Close()

	text := strings.Repeat("x", 64)
	n := b.N
	window := make(chan struct{}, 256)
	got := make(chan error, 2)
	go func() { // receiver: ACK what each read brought
		r := bufio.NewReaderSize(rcv, 64<<10)
		var acks []byte
		for seen := 0; seen < n; {
			l, err := r.ReadSlice('\n')
			if err != nil {
				got <- err
				return
			}
			id, ok := benchMsgID(l)
			if !ok {
				continue
			}
			seen++
			if len(acks) > 0 {
				acks = append(acks, ',')
			}
			acks = append(acks, id...)
			if r.Buffered() == 0 || len(acks) > 8000 {
				if _, err := rcv.Write(append(append([]byte("ACK "), acks...), '\n')); err != nil {
					got <- err
					return
				}
				acks = acks[:0]
			}
		}
		got <- nil
	}()
	go func() { // the sender's replies
		r := bufio.NewReaderSize(snd, 64<<10)
		for seen := 0; seen < n; {
			l, err := r.ReadSlice('\n')
			if err != nil {
				got <- err
				return
			}
			if l[0] != '@' {
				continue
			}
			if !strings.Contains(string(l), " 250 ") {
				got <- fmt.Errorf("reply %q", l)
				return
			}
			seen++
			<-window
		}
		got <- nil
	}()
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	w := bufio.NewWriterSize(snd, 64<<10)
	line := []byte{}
	to := strconv.FormatInt(rcvID, 10)
	for i := range n {
		select {
		case window <- struct{}{}:
		default:
			w.Flush()
			window <- struct{}{}
		}
		line = append(line[:0], "@m MSG "...)
		line = append(line, to...)
		line = append(line, ' ')
		line = append(line, text...)
		line = append(line, '\n')
		w.Write(line)
		if i == n-1 {
			w.Flush()
		}
	}
	for range 2 {
		if err := <-got; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer() // not the shutdown
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

var benchUsers atomic.Int64

// benchLogin registers a fresh account with a unique nickname, logs in
// and returns the connection and the account's id. What follows the
// login reply in the reader's buffer (presence of others) is dropped.
func benchLogin(b *testing.B, addr, role string) (net.Conn, int64) {
	b.Helper()
	nick := fmt.Sprintf("%s%d", role, benchUsers.Add(1))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(c, "REG %s pw-pw-pw\nUSER %s\nPASS pw-pw-pw\n", nick, nick)
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			b.Fatalf("login %s: %v", nick, err)
		}
		if v, ok := strings.CutPrefix(l, "230 "); ok {
			id, _, _ := strings.Cut(v, " ")
			n, err := strconv.ParseInt(id, 10, 64)
			if err != nil {
				b.Fatalf("login %s: %q", nick, l)
			}
			return c, n
		}
		if l[0] == '5' || l[0] == '4' {
			b.Fatalf("login %s: %s", nick, l)
		}
	}
}

// benchMsgID returns the id of a MSG event line.
func benchMsgID(l []byte) ([]byte, bool) {
	rest, ok := strings.CutPrefix(string(l), "MSG ")
	if !ok {
		return nil, false
	}
	id, _, _ := strings.Cut(rest, " ")
	return []byte(id), true
}

// BenchmarkGroupFanout is one group message to members online users, in
// memory: post (one id, a copy per member), push (each member's copies to
// its outbox), every member's ACK, and the sender's answer once the last
// copy is acknowledged. held=1 pushes after every post; held=N after N
// posts, as a sender's pipelined burst is pushed (msgGroup), each member
// then acknowledging N ids at once. One op is one message; deliveries/s
// counts copies.
func BenchmarkGroupFanout(b *testing.B) {
	for _, members := range []int{100, 1000} {
		for _, held := range []int{1, max(1, maxHeldCopies/members)} {
			b.Run(fmt.Sprintf("members=%d/held=%d", members, held), func(b *testing.B) {
				benchGroupFanout(b, members, held)
			})
		}
	}
}

func benchGroupFanout(b *testing.B, members, held int) {
	ctx := context.Background()
	po, cfg := benchPostOffice(b, "full")
	srv := &Server{cfg: cfg}
	alice := benchSession(srv, 1000, "alice")
	po.attach(ctx, alice)
	everyone := make([]int64, members)
	for i := range everyone {
		everyone[i] = int64(2000 + i)
		po.attach(ctx, benchSession(srv, everyone[i], "m"+strconv.Itoa(i)))
	}
	text := strings.Repeat("x", 64)
	to := make([]int64, members)
	acks := make([]int64, 0, held)
	alice.takeArena() // as while its read loop handles a burst of input
	defer alice.releaseArena()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		copy(to, everyone)
		boxes, err := po.postGroup(alice, "t1", "#bench", to, text)
		if err != nil {
			b.Fatal(err)
		}
		boxes[0].mu.Lock()
		acks = append(acks, boxes[0].queue[len(boxes[0].queue)-1].id)
		boxes[0].mu.Unlock()
		if n++; n%held == 0 {
			po.pumpAll(boxes)
			for _, u := range everyone {
				po.ack(u, acks)
			}
			acks = acks[:0]
		}
	}
	b.ReportMetric(float64(b.N*members)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkRouteClientID is BenchmarkRoute with a client id on every
// message (MSG id=<cid>, as chat sends them): what the id costs is its
// entry in memory and its record in the journal (a copy into a mapped
// ring, no system call).
// BenchmarkRouteClientIDMemory leaves the journal out, to tell the two
// apart.
func BenchmarkRouteClientID(b *testing.B)       { benchRouteID(b, true) }
func BenchmarkRouteClientIDMemory(b *testing.B) { benchRouteID(b, false) }

func benchRouteID(b *testing.B, journal bool) {
	ctx := context.Background()
	po, cfg := benchPostOffice(b, "full")
	j, _, err := dedupe.OpenJournal(b.TempDir(), time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	if journal {
		po.journal = j
	}
	srv := &Server{cfg: cfg}
	alice, bob := benchSession(srv, 1000, "alice"), benchSession(srv, 1001, "bob")
	po.attach(ctx, alice)
	po.attach(ctx, bob)
	text := strings.Repeat("x", 64)
	mb := po.box(bob.user)
	cids := make([]string, 1<<16)
	for i := range cids {
		cids[i] = "k3f9qz2a." + strconv.FormatInt(int64(i), 36)
	}
	b.ReportAllocs()
	ack := make([]int64, 1)
	i := 0
	for b.Loop() {
		if err := po.postID(alice, "t1", bob.user, text, cids[i%len(cids)]); err != nil {
			b.Fatal(err)
		}
		i++
		mb.mu.Lock()
		ack[0] = mb.queue[len(mb.queue)-1].id
		mb.mu.Unlock()
		po.ack(bob.user, ack)
	}
}
