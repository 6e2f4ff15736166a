package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"qchat/protocol"
)

// A fan is the group fan-out scenario: N online members <prefix>-g0 ...
// <prefix>-g<N-1> of one open group, #<prefix>-fan<N>; the first S of them
// post M messages to it in all, each with at most a window of MSGs waiting
// for their 250 reply, as the pairs do (a window of W messages is W×(N-1)
// copies in the server: the delivery latency is mostly that queue, so
// --group-window sets it apart from the pairs' --window). The server sends every message to
// every member but its sender (as GMSG) and answers the sender only once
// every member's copy is safe, so the 250 is the slowest member's ACK.
// Every member acknowledges what it got in one ACK per read, as a pair's
// receiver does.
//
// The text is that of the pairs ("<run> <seq> <sent_ns> ..."), with a run
// token of its own per group, so that a member tells this group's messages
// from anything left over from an earlier run (acknowledged and counted as
// stale).
type fan struct {
	b       *bench
	name    string // "#<prefix>-fan<N>"
	run     string // this group's token in the message text
	members []*member
	total   int64 // deliveries expected: each message to every member but its sender

	got      atomic.Int64 // deliveries of this run received, all members together
	stale    atomic.Int64
	done     chan struct{} // closed when got reaches total
	doneOnce sync.Once
	stopping atomic.Bool
	lastErr  atomic.Pointer[string]
	ctx      context.Context
	cancel   context.CancelFunc // ends the setup and the traffic on the first failure

	// Delivery latency: one histogram costs 256 KiB, too much for each of
	// a thousand members, so the members share a few, each guarded by a
	// lock taken once per read (per ACK), not per message.
	shards [latShards]latShard
}

const latShards = 16

type latShard struct {
	mu sync.Mutex
	h  *hist
}

// member is one member's connection. One goroutine (read) reads it; a
// sender has a second one that writes its MSGs.
type member struct {
	f        *fan
	c        *conn
	i        int
	setup    chan protocol.Line // the last line of each reply to a setup request (tag "g.*")
	lastRecv atomic.Int64       // ns since start
	got      atomic.Int64       // deliveries of this run
	snd      *gsender           // nil unless the member posts
}

// gsender is what a posting member keeps of its messages.
type gsender struct {
	n       int
	sentAt  []atomic.Int64 // by seq: when sent (ns since start)
	credits chan struct{}
	allConf chan struct{} // closed when every MSG has its reply

	sent, confirmed, delivered, stored, refused atomic.Int64
	lastConfirm                                 atomic.Int64
	conf                                        *hist // owned by the member's reader
}

// Setup requests carry tags with a '.', which a MSG's tag (its seq in base
// 36) never has.
const (
	tagCreate  = "g.c"
	tagJoin    = "g.j"
	tagMembers = "g.m"
)

func newFan(ctx context.Context, b *bench, n int) *fan {
	f := &fan{b: b, name: groupName(b.cfg.Prefix, n), run: b.run + "-" + strconv.Itoa(n),
		members: make([]*member, n), done: make(chan struct{})}
	f.total = int64(b.cfg.GroupMsgs) * int64(n-1)
	f.ctx, f.cancel = context.WithCancel(ctx)
	for i := range f.shards {
		f.shards[i].h = newHist()
	}
	return f
}

// groupName is the name of the bench group of n members.
func groupName(prefix string, n int) string {
	return "#" + prefix + "-fan" + strconv.Itoa(n)
}

// senderShare is how many of m messages sender i of s posts.
func senderShare(m, s, i int) int {
	n := m / s
	if i < m%s {
		n++
	}
	return n
}

func (f *fan) fail(err error) {
	s := err.Error()
	f.lastErr.CompareAndSwap(nil, &s)
	f.cancel()
}

// add counts k deliveries of this run.
func (f *fan) add(k int64) {
	if k > 0 && f.got.Add(k) >= f.total {
		f.doneOnce.Do(func() { close(f.done) })
	}
}

// doGroup runs the fan-out of one group of n members: log them in, make
// the group, post its messages, and add what it measured to res.
func (b *bench) doGroup(ctx context.Context, res *result, n int) error {
	cfg := b.cfg
	f := newFan(ctx, b, n)
	defer f.cancel()
	fmt.Fprintf(b.stderr, "logging in %d members of %s\n", n, f.name)
	t := time.Now()
	nicks := make([]string, n)
	for i := range nicks {
		nicks[i] = fmt.Sprintf("%s-g%d", cfg.Prefix, i)
	}
	var readers sync.WaitGroup
	// A member reads from the moment it is logged in: the logins after
	// it are announced to it (LAN presence), and what an earlier run left
	// in its mailbox is sent to it at once.
	conns, err := b.connectAll(f.ctx, nicks, b.roundNode, 16<<10, func(i int, c *conn) {
		m := &member{f: f, c: c, i: i, setup: make(chan protocol.Line, 4)}
		if i < cfg.GroupSenders {
			k := senderShare(cfg.GroupMsgs, cfg.GroupSenders, i)
			m.snd = &gsender{n: k, sentAt: make([]atomic.Int64, k), conf: newHist(),
				credits: make(chan struct{}, cfg.GroupWindow), allConf: make(chan struct{})}
		}
		f.members[i] = m
		readers.Add(1)
		go func() { defer readers.Done(); m.read() }()
	})
	defer func() {
		f.stopping.Store(true)
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
		readers.Wait()
	}()
	if err != nil {
		return f.err(ctx, err)
	}
	if err := f.join(); err != nil {
		return f.err(ctx, err)
	}
	setup := time.Since(t)

	fmt.Fprintf(b.stderr, "posting %d messages to %s (%d members)\n", cfg.GroupMsgs, f.name, n)
	end := b.watch(ctx, true)
	start := b.now()
	var senders sync.WaitGroup
	for _, m := range f.members[:cfg.GroupSenders] {
		senders.Add(1)
		go func() { defer senders.Done(); m.send(f.ctx) }()
	}
	select {
	case <-f.done:
	case <-f.ctx.Done():
	}
	for _, m := range f.members[:cfg.GroupSenders] {
		select {
		case <-m.snd.allConf:
		case <-f.ctx.Done():
		}
	}
	senders.Wait()
	cost := end()
	f.stopping.Store(true)
	for _, c := range conns {
		c.close()
	}
	readers.Wait()
	res.addGroup(f, start, setup)
	res.groups[len(res.groups)-1].cost = cost
	f.reportShort()
	return f.err(ctx, nil)
}

// reportShort tells which members got fewer messages than were posted
// for them, when the group's deliveries fell short.
func (f *fan) reportShort() {
	if f.got.Load() >= f.total {
		return
	}
	cfg := f.b.cfg
	var short []string
	missing := int64(0)
	for _, m := range f.members {
		want := int64(cfg.GroupMsgs)
		if m.snd != nil {
			want -= int64(m.snd.n)
		}
		if d := want - m.got.Load(); d > 0 {
			missing += d
			if len(short) < 10 {
				short = append(short, fmt.Sprintf("%s %d", m.c.nick, -d))
			}
		}
	}
	more := ""
	if n := len(short); n == 10 {
		more = ", ..."
	}
	fmt.Fprintf(f.b.stderr, "%s: %d deliveries missing: %s%s\n", f.name, missing, strings.Join(short, ", "), more)
}

// err is the scenario's outcome: the first failure, else the end of ctx
// (the run's timeout or a signal), else err.
func (f *fan) err(ctx context.Context, err error) error {
	if e := f.lastErr.Load(); e != nil {
		return fmt.Errorf("%s: %s", f.name, *e)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: stopped before the end: %w", f.name, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	return nil
}

// join makes the group: the first member creates it (or finds it there
// from an earlier run), every other one joins, and the member list must be
// exactly the bench's members, all online; an offline member would make
// the server store a copy of every message.
func (f *fan) join() error {
	m0 := f.members[0]
	l, err := m0.ask(tagCreate, "CREATE", f.name, "open")
	if err != nil {
		return err
	}
	joining := f.members[1:]
	switch l.Code {
	case protocol.CodeOK:
	case protocol.CodeNameTaken: // made by an earlier run
		joining = f.members
	default:
		return fmt.Errorf("CREATE: %d %s", l.Code, l.Text)
	}
	// Every JOIN is written before any answer is awaited, so that the
	// server handles them side by side.
	for _, m := range joining {
		if err := m.request(tagJoin, "JOIN", f.name); err != nil {
			return err
		}
	}
	for _, m := range joining {
		l, err := m.answer()
		if err != nil {
			return err
		}
		if l.Code != protocol.CodeOK && l.Code != protocol.CodeSequence {
			return fmt.Errorf("%s: JOIN: %d %s (a group of someone else? try another --prefix)", m.c.nick, l.Code, l.Text)
		}
	}
	l, err = m0.ask(tagMembers, "MEMBERS", f.name)
	if err != nil {
		return err
	}
	if l.Code != protocol.CodeList {
		return fmt.Errorf("MEMBERS: %d %s", l.Code, l.Text)
	}
	count, _, _ := strings.Cut(l.Text, " ")
	if count != strconv.Itoa(len(f.members)) {
		return fmt.Errorf("the group has %s members, not the %d online here: try another --prefix", count, len(f.members))
	}
	return nil
}

// request writes a setup request; answer waits for its reply.
func (m *member) request(tag, verb string, args ...string) error {
	b, err := protocol.AppendCommand(nil, tag, verb, args...)
	if err != nil {
		return err
	}
	return m.c.write(b, true)
}

func (m *member) answer() (protocol.Line, error) {
	select {
	case l := <-m.setup:
		return l, nil
	case <-m.f.ctx.Done():
		return protocol.Line{}, m.f.ctx.Err()
	}
}

func (m *member) ask(tag, verb string, args ...string) (protocol.Line, error) {
	if err := m.request(tag, verb, args...); err != nil {
		return protocol.Line{}, err
	}
	return m.answer()
}

// send runs on its own goroutine until the sender's messages are all
// sent or ctx ends.
func (m *member) send(ctx context.Context) {
	f, s := m.f, m.snd
	b := f.b
	var line []byte
	pending := false // written but not flushed
	for seq := 0; seq < s.n; seq++ {
		select {
		case s.credits <- struct{}{}:
		default:
			// Window full: send what is queued, then wait for a reply.
			if pending {
				if err := m.c.write(nil, true); err != nil {
					f.fail(err)
					return
				}
				pending = false
			}
			select {
			case s.credits <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		now := b.now()
		line = appendMsgID(line[:0], seq, f.name, f.run, now, b.cfg.Size, b.cfg.Unbatched)
		s.sentAt[seq].Store(now)
		if err := m.c.write(line, b.cfg.Unbatched); err != nil {
			f.fail(err)
			return
		}
		pending = !b.cfg.Unbatched
		s.sent.Add(1)
	}
	if pending {
		if err := m.c.write(nil, true); err != nil {
			f.fail(err)
		}
	}
}

// read runs on its own goroutine until the connection closes: it
// acknowledges every GMSG (and any MSG) in one ACK per read from the
// socket, takes the sender's replies and the setup replies, answers PING.
func (m *member) read() {
	f := m.f
	b := f.b
	run := []byte(f.run + " ")
	shard := &f.shards[m.i%latShards]
	var acks acker
	var lats []time.Duration // latencies since the last ACK
	var got, last int64      // deliveries since the last ACK, and when the last came
	for {
		l, err := m.c.readLine()
		if err != nil {
			if !f.stopping.Load() {
				f.fail(fmt.Errorf("%s: %w", m.c.nick, err))
			}
			return
		}
		ev, ok := parseGMsg(l)
		switch {
		case ok:
			if text, ok := bytes.CutPrefix(ev.text, run); ok {
				now := b.now()
				if sent, ok := sentTime(text); ok {
					lats = append(lats, time.Duration(now-sent))
				}
				got++
				last = now
			} else {
				f.stale.Add(1)
			}
		default:
			if ev, ok = parseMsg(l); ok {
				f.stale.Add(1) // a private message to a member, of another run
			} else {
				m.other(l)
			}
		}
		if ok {
			acks.add(ev.id)
		}
		// As a pair's receiver does (acker): a sender's messages are
		// interleaved with its replies, and the last line of a read need
		// not be a message.
		if acks.n == 0 || (!b.cfg.AckEach && m.c.r.Buffered() > 0 && acks.n < 512) {
			continue
		}
		if err := acks.flush(m.c, b.cfg.AckEach); err != nil {
			if !f.stopping.Load() {
				f.fail(err)
			}
			return
		}
		if len(lats) > 0 {
			shard.mu.Lock()
			for _, d := range lats {
				shard.h.add(d)
			}
			shard.mu.Unlock()
			lats = lats[:0]
		}
		if got > 0 {
			m.lastRecv.Store(last)
			m.got.Add(got)
			f.add(got)
			got = 0
		}
	}
}

// other handles a line that is not a message: a reply, PING, BYE, presence.
func (m *member) other(l []byte) {
	f := m.f
	switch {
	case len(l) > 0 && l[0] == '@':
		r, ok := parseReply(l)
		if !ok {
			return
		}
		if bytes.HasPrefix(r.tag, []byte("g.")) {
			pl, err := protocol.ParseLine(l)
			if err == nil && !pl.More {
				select {
				case m.setup <- pl:
				default: // nobody asked
				}
			}
			return
		}
		if m.snd != nil {
			m.confirm(r)
		}
	case bytes.HasPrefix(l, []byte("PING ")):
		m.c.pong(l)
	case bytes.HasPrefix(l, []byte("BYE ")):
		if !f.stopping.Load() {
			f.fail(fmt.Errorf("%s: %w", m.c.nick, &byeError{string(l)}))
		}
	}
}

// confirm takes the reply to one of the sender's MSGs.
func (m *member) confirm(r reply) {
	s := m.snd
	seq, err := strconv.ParseInt(string(r.tag), 36, 64)
	if err != nil || seq < 0 || seq >= int64(s.n) {
		return
	}
	now := m.f.b.now()
	switch {
	case r.code == protocol.CodeSent && bytes.Contains(r.text, []byte(" delivered ")):
		s.delivered.Add(1)
	case r.code == protocol.CodeSent:
		s.stored.Add(1)
	default:
		s.refused.Add(1)
		m.f.fail(fmt.Errorf("%s: MSG %s: %w", m.c.nick, m.f.name, &protocol.Error{Code: r.code, Text: string(r.text)}))
	}
	s.conf.add(time.Duration(now - s.sentAt[seq].Load()))
	s.lastConfirm.Store(now)
	select {
	case <-s.credits:
	default:
	}
	if s.confirmed.Add(1) == int64(s.n) {
		close(s.allConf)
	}
}

// groupResult is what one group's fan-out measured.
type groupResult struct {
	name                        string
	members, senders, messages  int
	setup                       time.Duration // logins, CREATE, JOINs and MEMBERS
	sent, confirmed             int64
	delivered, stored, refused  int64 // how the 250 replies said the messages were safe
	deliveries, expected, stale int64
	elapsed, confirmElapsed     time.Duration // first send to last delivery, to last 250
	lat, conf                   *hist
	cost                        *serverCost // nil without --pid
}

func (g *groupResult) deliveriesPerS() float64 { return perSecond(g.deliveries, g.elapsed) }
func (g *groupResult) postedPerS() float64     { return perSecond(g.confirmed, g.confirmElapsed) }

func (r *result) addGroup(f *fan, start int64, setup time.Duration) {
	cfg := r.cfg
	g := &groupResult{name: f.name, members: len(f.members), senders: cfg.GroupSenders,
		messages: cfg.GroupMsgs, setup: setup, expected: f.total,
		deliveries: f.got.Load(), stale: f.stale.Load(), lat: newHist(), conf: newHist()}
	for i := range f.shards {
		g.lat.merge(f.shards[i].h)
	}
	var last, lastConf int64
	for _, m := range f.members {
		last = max(last, m.lastRecv.Load())
		if s := m.snd; s != nil {
			g.sent += s.sent.Load()
			g.confirmed += s.confirmed.Load()
			g.delivered += s.delivered.Load()
			g.stored += s.stored.Load()
			g.refused += s.refused.Load()
			lastConf = max(lastConf, s.lastConfirm.Load())
			g.conf.merge(s.conf)
		}
	}
	if last > start {
		g.elapsed = time.Duration(last - start)
	}
	if lastConf > start {
		g.confirmElapsed = time.Duration(lastConf - start)
	}
	r.groups = append(r.groups, g)
}

// fanLine compares a group's deliveries/s with the one-to-one msgs/s.
func fanLine(members int, deliveriesPerS, pairsPerS float64) string {
	ratio := "(no one-to-one figure)"
	if pairsPerS > 0 {
		ratio = fmt.Sprintf("= %.2f × the one-to-one relay (%.0f msgs/s)", deliveriesPerS/pairsPerS, pairsPerS)
	}
	return fmt.Sprintf("%d members: %.0f deliveries/s %s", members, deliveriesPerS, ratio)
}
