package cluster

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"qchat/modes/serve/presence"
)

// BatchEvery is the shortest time between two presence publishes of one
// node: the logins of a storm go out together, not one message each.
const BatchEvery = 20 * time.Millisecond

// DefaultTimeout is how long a node may be silent before the others take
// it for dead (--node-timeout). Heartbeats go every Timeout/4.
const DefaultTimeout = 3 * time.Second

// Config is how a node joins.
type Config struct {
	URL        string        // nats://host:4222[,nats://...]
	Node       string        // this node's name, unique in the deployment
	Timeout    time.Duration // --node-timeout; 0: DefaultTimeout
	Deployment string        // what names the shared store (database and schema): gives the prefix
	Addr       string        // host:port where the other nodes reach this node's client port (relays)
	Log        *slog.Logger
}

// Hooks is what the server does for the cluster. Each runs on a goroutine
// of the cluster's (never under the cluster's lock) and must not block
// for long, but Takeover, which may wait for the session to end.
type Hooks struct {
	// Local returns the presence of users on this node now (Offline for
	// one not here); with users nil, every user online here.
	Local func(users []int64) []presence.Change
	// Remote is told of users whose presence on other nodes changed: one
	// call per batch (a dead node's users come in one call).
	Remote func(users []int64)
	// Takeover ends the session of user on this node because it logged in
	// on another, and returns once what it held is in the store.
	Takeover func(user int64)
	// Mail says that stored messages wait for these users, online here;
	// items, when not empty, is what the sender's Mail items gave.
	Mail func(users []int64, items []byte)
	// Changed says that another node changed an account (kind "user",
	// id) or the social rows (kind "social").
	Changed func(kind string, id int64)
	// Offer takes what another node says of a direct-link offer between
	// its user and one here (the server's own text, at most maxOffer
	// bytes): one call at a time, in the order sent.
	Offer func(from string, data []byte)
	// Sent takes a client id another node recorded (the server's own
	// text, at most maxOffer bytes): a resend may come here.
	Sent func(data []byte)
	// Forward takes what another node forwards (kind "fwd": messages for
	// users here) or answers (kind "safe"): the server's own text, at most
	// MaxMail bytes, one call at a time per kind, in the order sent.
	Forward func(from, kind string, data []byte)
	// Down says that node is gone (dead, or left): what was sent to it
	// and not answered will not be.
	Down func(node string)
	// Stored says that another node stored messages for these users: a
	// login here must read the store. With users nil, this node may have
	// missed such notices (its NATS connection came back): every login
	// must.
	Stored func(users []int64)
	// Event hands user, online here, an event line another node sent
	// (the server's own text: a NUDGE, TYPING or RECEIPT).
	Event func(user int64, line []byte)
}

// maxOffer bounds an offer message between nodes.
const maxOffer = 8 << 10

// remote is where a user online on another node is.
type remote struct {
	node  string
	state string // presence.Online or presence.Away
	text  string
}

// peer is another node as its heartbeats show it.
type peer struct {
	inc   string    // its incarnation: a restart with the same name is a new one
	addr  string    // where its client port is, for relays
	last  time.Time // its last heartbeat or message
	users map[int64]struct{}
	// touched are the users its batches changed while its list was asked
	// for (nil when it is not): the list may have been made before those
	// batches, and must not undo them.
	touched map[int64]bool
}

// Cluster is one node's membership of a deployment.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	hooks  Hooks
	nc     *nats.Conn
	prefix string
	inc    string
	subs   []*nats.Subscription

	mu    sync.Mutex
	users map[int64]*remote
	peers map[string]*peer

	pmu     sync.Mutex // the local presence batch
	pending []int64
	noted   map[int64]bool
	timer   *time.Timer
	lastPub time.Time

	quit chan struct{}
	done sync.WaitGroup
}

// Prefix is the subject prefix of a deployment: "qchat." and 16 hex
// digits of a hash of what names its store.
func Prefix(deployment string) string {
	sum := sha256.Sum256([]byte(deployment))
	return "qchat." + hex.EncodeToString(sum[:8])
}

// ValidNode reports whether name can name a node: 1 to 64 of A-Z a-z 0-9
// _ -, a single NATS subject token.
func ValidNode(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Join connects to NATS and starts heartbeating. Hooks.Local must be
// ready to answer: other nodes ask for this node's users at once.
func Join(cfg Config, h Hooks) (*Cluster, error) {
	if !ValidNode(cfg.Node) {
		return nil, fmt.Errorf("node name %q: want 1 to 64 of A-Z a-z 0-9 _ -", cfg.Node)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	h.fill()
	var b [8]byte
	rand.Read(b[:])
	c := &Cluster{cfg: cfg, log: cfg.Log, hooks: h, prefix: Prefix(cfg.Deployment), inc: hex.EncodeToString(b[:]),
		users: make(map[int64]*remote), peers: make(map[string]*peer), noted: make(map[int64]bool), quit: make(chan struct{})}
	nc, err := nats.Connect(cfg.URL, nats.Name("qchat serve "+cfg.Node), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.Timeout(cfg.Timeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: this node closed it
				c.log.Warn("cluster: lost NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			c.log.Info("cluster: NATS back")
			h.Stored(nil) // notices may have been missed meanwhile
			c.mu.Lock()
			for node, p := range c.peers {
				go c.askSnapshot(node, p.inc) // and presence batches
			}
			c.mu.Unlock()
		}))
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cfg.URL, err)
	}
	c.nc = nc
	for _, s := range []struct {
		subject string
		fn      nats.MsgHandler
	}{
		{c.prefix + ".hb", c.onHeartbeat},
		{c.prefix + ".pres", c.onPresence},
		{c.prefix + ".changed", c.onChanged},
		{c.subject(cfg.Node, "snap"), c.onSnapshot},
		{c.subject(cfg.Node, "take"), c.onTakeover},
		{c.subject(cfg.Node, "mail"), c.onMail},
		{c.subject(cfg.Node, "offer"), c.onOffer},
		{c.prefix + ".sent", c.onSent},
		{c.subject(cfg.Node, "event"), c.onEvent},
		{c.prefix + ".stored", c.onStored},
		{c.subject(cfg.Node, "fwd"), c.onForward},
		{c.subject(cfg.Node, "safe"), c.onForward},
	} {
		sub, err := nc.Subscribe(s.subject, s.fn)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("cluster: subscribe %s: %w", s.subject, err)
		}
		sub.SetPendingLimits(-1, 64<<20)
		c.subs = append(c.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster %s: %w", cfg.URL, err)
	}
	c.heartbeat()
	c.done.Add(1)
	go c.beat()
	c.log.Info("cluster: joined", "node", cfg.Node, "prefix", c.prefix, "timeout", cfg.Timeout)
	return c, nil
}

// Prefix is the subject prefix this node uses.
func (c *Cluster) Prefix() string { return c.prefix }

// Node is this node's name.
func (c *Cluster) Node() string { return c.cfg.Node }

func (c *Cluster) subject(node, what string) string { return c.prefix + ".node." + node + "." + what }

// Close says goodbye (the others drop this node's users at once) and
// leaves.
func (c *Cluster) Close() {
	select {
	case <-c.quit:
		return
	default:
	}
	close(c.quit)
	c.done.Wait()
	c.nc.Publish(c.prefix+".hb", fmt.Appendf(nil, "BYE %s %s", c.cfg.Node, c.inc))
	c.nc.Flush()
	c.nc.Close()
}

// beat heartbeats every Timeout/4 and takes silent nodes for dead.
func (c *Cluster) beat() {
	defer c.done.Done()
	t := time.NewTicker(c.cfg.Timeout / 4)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case now := <-t.C:
			c.heartbeat()
			c.expire(now)
		}
	}
}

func (c *Cluster) heartbeat() {
	c.nc.Publish(c.prefix+".hb", fmt.Appendf(nil, "HB %s %s %s", c.cfg.Node, c.inc, c.cfg.Addr))
}

// expire drops the nodes silent for longer than the timeout.
func (c *Cluster) expire(now time.Time) {
	c.mu.Lock()
	var dead []string
	for name, p := range c.peers {
		if now.Sub(p.last) > c.cfg.Timeout {
			dead = append(dead, name)
		}
	}
	c.mu.Unlock()
	for _, name := range dead {
		c.down(name, "")
	}
}

// down forgets node (of incarnation inc, or any with inc ""), and tells the
// server its users are gone, in one call.
func (c *Cluster) down(node, inc string) {
	c.mu.Lock()
	p := c.peers[node]
	if p == nil || inc != "" && p.inc != inc {
		c.mu.Unlock()
		return
	}
	delete(c.peers, node)
	gone := make([]int64, 0, len(p.users))
	for u := range p.users {
		if r := c.users[u]; r != nil && r.node == node {
			delete(c.users, u)
			gone = append(gone, u)
		}
	}
	c.mu.Unlock()
	if inc == "" {
		c.log.Warn("cluster: node silent, taken for dead", "node", node, "users", len(gone))
	} else {
		c.log.Info("cluster: node left", "node", node, "users", len(gone))
	}
	if c.hooks.Down != nil {
		c.hooks.Down(node)
	}
	if len(gone) > 0 {
		sortIDs(gone)
		c.hooks.Remote(gone)
	}
}

// onHeartbeat: "HB <node> <inc>" or "BYE <node> <inc>".
func (c *Cluster) onHeartbeat(m *nats.Msg) {
	kind, node, inc, addr, err := parseHeartbeat(m.Data)
	if err != nil {
		c.log.Warn("cluster: bad heartbeat", "err", err)
		return
	}
	if node == c.cfg.Node {
		if inc != c.inc {
			c.log.Error("cluster: another node has this node's name", "node", node)
		}
		return
	}
	if kind == "BYE" {
		c.down(node, inc)
		return
	}
	c.seen(node, inc)
	c.mu.Lock()
	if p := c.peers[node]; p != nil && p.inc == inc {
		p.addr = addr
	}
	c.mu.Unlock()
}

// seen notes a sign of life of node; a node new to us (or restarted, or
// back from the dead) is asked for its users.
func (c *Cluster) seen(node, inc string) {
	c.mu.Lock()
	p := c.peers[node]
	fresh := p == nil || p.inc != inc
	if fresh && p != nil {
		c.mu.Unlock()
		c.down(node, p.inc) // restarted: what the old one had is gone
		c.mu.Lock()
	}
	if fresh {
		p = &peer{inc: inc, users: make(map[int64]struct{}), touched: make(map[int64]bool)}
		c.peers[node] = p
	}
	p.last = time.Now()
	c.mu.Unlock()
	if fresh {
		c.log.Info("cluster: node up", "node", node)
		go c.askSnapshot(node, inc)
	}
}

// askSnapshot asks node for every user online on it and takes the answer
// as its whole list.
func (c *Cluster) askSnapshot(node, inc string) {
	msg, err := c.nc.Request(c.subject(node, "snap"), nil, c.cfg.Timeout)
	if err == nil {
		var from, finc string
		var b presence.Batch
		from, finc, b, err = parseFrom(msg.Data)
		if err == nil && (from != node || finc != inc) {
			err = errors.New("from another node")
		}
		if err == nil {
			c.apply(node, inc, b.Changes, true)
			return
		}
	}
	c.log.Warn("cluster: no list from node", "node", node, "err", err)
	c.mu.Lock()
	if p := c.peers[node]; p != nil && p.inc == inc {
		p.touched = nil // its batches go on as they come
	}
	c.mu.Unlock()
}

// onSnapshot answers a request for this node's users.
func (c *Cluster) onSnapshot(m *nats.Msg) {
	b := presence.Batch{Changes: c.hooks.Local(nil)}
	m.Respond(appendFrom(nil, c.cfg.Node, c.inc, b))
}

// onPresence takes another node's batch.
func (c *Cluster) onPresence(m *nats.Msg) {
	node, inc, b, err := parseFrom(m.Data)
	if err != nil {
		c.log.Warn("cluster: bad presence batch", "err", err)
		return
	}
	if node == c.cfg.Node {
		return
	}
	c.seen(node, inc)
	c.apply(node, inc, b.Changes, false)
}

// apply takes node's changes into the table (whole: the list of every user
// it has) and tells the server who changed.
func (c *Cluster) apply(node, inc string, changes []presence.Change, whole bool) {
	c.mu.Lock()
	p := c.peers[node]
	if p == nil || p.inc != inc {
		c.mu.Unlock()
		return
	}
	var changed []int64
	in := make(map[int64]bool, len(changes))
	for _, ch := range changes {
		in[ch.User] = true
		switch {
		case whole && p.touched[ch.User]:
			continue // a batch that came while the list was asked for knows better
		case !whole && p.touched != nil:
			p.touched[ch.User] = true
		}
		r := c.users[ch.User]
		if ch.State == presence.Offline {
			if r != nil && r.node == node {
				delete(c.users, ch.User)
				changed = append(changed, ch.User)
			}
			delete(p.users, ch.User)
			continue
		}
		if r != nil && r.node != node {
			if q := c.peers[r.node]; q != nil {
				delete(q.users, ch.User)
			}
		}
		if r == nil || r.node != node || r.state != ch.State || r.text != ch.Text {
			changed = append(changed, ch.User)
		}
		c.users[ch.User] = &remote{node: node, state: ch.State, text: ch.Text}
		p.users[ch.User] = struct{}{}
	}
	if whole {
		for u := range p.users {
			if !in[u] && !p.touched[u] {
				delete(p.users, u)
				if r := c.users[u]; r != nil && r.node == node {
					delete(c.users, u)
					changed = append(changed, u)
				}
			}
		}
		p.touched = nil // the list is in: batches apply as they come
	}
	c.mu.Unlock()
	if len(changed) > 0 {
		c.hooks.Remote(changed)
	}
}

// NoteLocal notes that the presence of user, on this node, changed (a
// login, a logout, away, back, a new status or nickname). The changes go
// out together at most once per BatchEvery.
func (c *Cluster) NoteLocal(user int64) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if !c.noted[user] {
		c.noted[user] = true
		c.pending = append(c.pending, user)
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(max(0, BatchEvery-time.Since(c.lastPub)), c.publish)
	}
}

// publish sends the batch of local changes noted so far.
func (c *Cluster) publish() {
	c.pmu.Lock()
	users := c.pending
	c.pending, c.timer, c.lastPub = nil, nil, time.Now()
	clear(c.noted)
	c.pmu.Unlock()
	if len(users) == 0 {
		return
	}
	b := presence.Batch{Changes: c.hooks.Local(users)}
	if err := c.nc.Publish(c.prefix+".pres", appendFrom(nil, c.cfg.Node, c.inc, b)); err != nil {
		c.log.Warn("cluster: publish presence", "err", err)
	}
}

// Where says where user is online when it is on another node.
func (c *Cluster) Where(user int64) (node, state, text string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.users[user]
	if r == nil {
		return "", "", "", false
	}
	return r.node, r.state, r.text, true
}

// Online appends every user online on another node to dst.
func (c *Cluster) Online(dst []presence.Change) []presence.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	for u, r := range c.users {
		dst = append(dst, presence.Change{User: u, State: r.state, Text: r.text})
	}
	return dst
}

// Nodes returns the names of the other nodes alive, sorted.
func (c *Cluster) Nodes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.peers))
	for n := range c.peers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ErrNoAnswer is a node that did not answer a takeover in time: taken for
// dead, its session of the user does not count.
var ErrNoAnswer = errors.New("cluster: node did not answer")

// Takeover asks the node where user is online to end that session and
// store what it held, and waits for it (at most the node timeout). Nil
// when the user is on no other node.
func (c *Cluster) Takeover(user int64) error {
	node, _, _, ok := c.Where(user)
	if !ok {
		return nil
	}
	_, err := c.nc.Request(c.subject(node, "take"), fmt.Appendf(nil, "TAKE %d", user), c.cfg.Timeout)
	c.mu.Lock()
	if r := c.users[user]; r != nil && r.node == node {
		delete(c.users, user)
		if p := c.peers[node]; p != nil {
			delete(p.users, user)
		}
	}
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNoAnswer, node, err)
	}
	return nil
}

// onTakeover: "TAKE <user>". The session may take a while to end and
// save: not on the subscription's goroutine.
func (c *Cluster) onTakeover(m *nats.Msg) {
	ids, err := parseIDs(m.Data, "TAKE", 1)
	if err != nil {
		c.log.Warn("cluster: bad takeover", "err", err)
		return
	}
	go func() {
		c.hooks.Takeover(ids[0])
		m.Respond([]byte("OK"))
	}()
}

// Mail tells the nodes where users are online that stored messages wait
// for them. Users on no other node are left out. With items (may be nil),
// each notice carries what items returns for the users of its node (the
// server's own text, at most MaxMail bytes; nil: none), so that the node
// need not read them back from the store.
func (c *Cluster) Mail(users []int64, items func(users []int64) []byte) {
	by := make(map[string][]int64)
	c.mu.Lock()
	for _, u := range users {
		if r := c.users[u]; r != nil {
			by[r.node] = append(by[r.node], u)
		}
	}
	c.mu.Unlock()
	for node, ids := range by {
		b := []byte("MAIL")
		for _, u := range ids {
			b = fmt.Appendf(b, " %d", u)
		}
		if items != nil {
			if more := items(ids); len(more) > 0 && len(more) <= MaxMail {
				b = append(append(b, '\n'), more...)
			}
		}
		if err := c.nc.Publish(c.subject(node, "mail"), b); err != nil {
			c.log.Warn("cluster: publish mail", "node", node, "err", err)
		}
	}
}

func (c *Cluster) onMail(m *nats.Msg) {
	head, items, _ := bytes.Cut(m.Data, []byte{'\n'})
	ids, err := parseIDs(head, "MAIL", maxIDs)
	if err != nil || len(items) > MaxMail {
		c.log.Warn("cluster: bad mail notice", "err", err, "bytes", len(m.Data))
		return
	}
	c.hooks.Mail(ids, items)
}

// MaxMail bounds the items a mail notice carries; past it, the notice
// goes without them and the node reads the store.
const MaxMail = 512 << 10

// Changed tells the other nodes that this node changed an account (kind
// "user") or social rows (kind "social"), already committed to the store.
func (c *Cluster) Changed(kind string, id int64) {
	if err := c.nc.Publish(c.prefix+".changed", fmt.Appendf(nil, "CHANGED %s %s %d", c.cfg.Node, kind, id)); err != nil {
		c.log.Warn("cluster: publish change", "err", err)
	}
}

func (c *Cluster) onChanged(m *nats.Msg) {
	node, kind, id, err := parseChanged(m.Data)
	if err != nil {
		c.log.Warn("cluster: bad change notice", "err", err)
		return
	}
	if node != c.cfg.Node {
		c.hooks.Changed(kind, id)
	}
}

// Flush waits until NATS has everything this node published.
func (c *Cluster) Flush() error {
	c.pmu.Lock()
	t := c.timer
	c.pmu.Unlock()
	if t != nil && t.Stop() {
		c.publish()
	}
	return c.nc.FlushTimeout(c.cfg.Timeout)
}

func sortIDs(ids []int64) { sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] }) }

// Addr is where node's client port is, for relays; "" when unknown.
func (c *Cluster) Addr(node string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.peers[node]; p != nil {
		return p.addr
	}
	return ""
}

// SendOffer hands node what this node says of an offer (see Hooks.Offer).
func (c *Cluster) SendOffer(node string, data []byte) error {
	if len(data) > maxOffer {
		return fmt.Errorf("cluster: offer message of %d bytes (most %d)", len(data), maxOffer)
	}
	return c.nc.Publish(c.subject(node, "offer"), append(fmt.Appendf(nil, "OFFER %s\n", c.cfg.Node), data...))
}

func (c *Cluster) onOffer(m *nats.Msg) {
	node, data, err := parseOffer(m.Data)
	if err != nil {
		c.log.Warn("cluster: bad offer message", "err", err)
		return
	}
	c.hooks.Offer(node, data)
}

// Sent tells the other nodes of a client id this node recorded, before
// the message can be seen (see Hooks.Sent). It does not wait: NATS's
// client writes what is published in one write per wake-up.
func (c *Cluster) Sent(data []byte) {
	if len(data) > maxOffer {
		return
	}
	if err := c.nc.Publish(c.prefix+".sent", append(fmt.Appendf(nil, "SENT %s\n", c.cfg.Node), data...)); err != nil {
		c.log.Warn("cluster: publish client id", "err", err)
	}
}

func (c *Cluster) onSent(m *nats.Msg) {
	node, data, err := parseTagged(m.Data, "SENT", maxOffer)
	if err != nil {
		c.log.Warn("cluster: bad client id", "err", err)
		return
	}
	if node != c.cfg.Node {
		c.hooks.Sent(data)
	}
}

// Event sends user, online on another node, an event line (Hooks.Event);
// false when the user is on no other node.
func (c *Cluster) Event(user int64, line []byte) bool {
	node, _, _, ok := c.Where(user)
	if !ok || len(line) > maxOffer {
		return false
	}
	if err := c.nc.Publish(c.subject(node, "event"), append(fmt.Appendf(nil, "EVENT %d\n", user), line...)); err != nil {
		c.log.Warn("cluster: publish event", "err", err)
		return false
	}
	return true
}

func (c *Cluster) onEvent(m *nats.Msg) {
	head, line, ok := bytes.Cut(m.Data, []byte{'\n'})
	ids, err := parseIDs(head, "EVENT", 1)
	if err != nil || !ok || len(line) > maxOffer {
		c.log.Warn("cluster: bad event", "err", err)
		return
	}
	c.hooks.Event(ids[0], line)
}

// Forward sends node what this node forwards or answers (Hooks.Forward);
// kind is "fwd" or "safe".
func (c *Cluster) Forward(node, kind string, data []byte) {
	if len(data) > MaxMail || kind != "fwd" && kind != "safe" {
		c.log.Warn("cluster: forward too big", "node", node, "bytes", len(data))
		return
	}
	if err := c.nc.Publish(c.subject(node, kind), append(fmt.Appendf(nil, "FWD %s\n", c.cfg.Node), data...)); err != nil {
		c.log.Warn("cluster: publish forward", "node", node, "err", err)
	}
}

func (c *Cluster) onForward(m *nats.Msg) {
	node, data, err := parseTagged(m.Data, "FWD", MaxMail)
	if err != nil {
		c.log.Warn("cluster: bad forward", "err", err)
		return
	}
	kind := "fwd"
	if strings.HasSuffix(m.Subject, ".safe") {
		kind = "safe"
	}
	c.hooks.Forward(node, kind, data)
}

// Stored tells every other node that this one stored messages for users
// (Hooks.Stored), in one NATS message.
func (c *Cluster) Stored(users []int64) {
	b := fmt.Appendf(nil, "STORED %s", c.cfg.Node)
	for _, u := range users {
		b = fmt.Appendf(b, " %d", u)
	}
	if err := c.nc.Publish(c.prefix+".stored", b); err != nil {
		c.log.Warn("cluster: publish stored", "err", err)
	}
}

func (c *Cluster) onStored(m *nats.Msg) {
	node, rest, ok := bytes.Cut(m.Data, []byte{' '})
	if ok {
		node, rest, ok = bytes.Cut(rest, []byte{' '})
	}
	ids, err := parseIDs(append([]byte("STORED "), rest...), "STORED", maxIDs)
	if !ok || err != nil || !ValidNode(string(node)) || !bytes.HasPrefix(m.Data, []byte("STORED ")) {
		c.log.Warn("cluster: bad stored notice", "err", err)
		return
	}
	if string(node) != c.cfg.Node {
		c.hooks.Stored(ids)
	}
}

// fill gives the hooks left nil a function that does nothing.
func (h *Hooks) fill() {
	if h.Local == nil {
		h.Local = func([]int64) []presence.Change { return nil }
	}
	if h.Remote == nil {
		h.Remote = func([]int64) {}
	}
	if h.Takeover == nil {
		h.Takeover = func(int64) {}
	}
	if h.Mail == nil {
		h.Mail = func([]int64, []byte) {}
	}
	if h.Changed == nil {
		h.Changed = func(string, int64) {}
	}
	if h.Offer == nil {
		h.Offer = func(string, []byte) {}
	}
	if h.Sent == nil {
		h.Sent = func([]byte) {}
	}
	if h.Forward == nil {
		h.Forward = func(string, string, []byte) {}
	}
	if h.Down == nil {
		h.Down = func(string) {}
	}
	if h.Stored == nil {
		h.Stored = func([]int64) {}
	}
	if h.Event == nil {
		h.Event = func(int64, []byte) {}
	}
}
