package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"qchat/modes/serve/cluster"
	"qchat/modes/serve/dedupe"
	"qchat/modes/serve/presence"
	"qchat/modes/serve/store"
	"qchat/protocol"
)

// A node of a cluster (serve --cluster, modes/serve/cluster): what the
// server does for the other nodes and asks of them.
//
//   - Presence: every local change (notePresence) is also noted for the
//     cluster, which publishes the changes of 20 ms in one batch; the
//     users of other nodes count as online here (presence, onlineList) and
//     their changes reach local watchers as local ones do (clusterRemote).
//   - A login of a user online on another node asks that node to end its
//     session and store what it held before this node reads the inbox
//     (Takeover, clusterTakeover): one server's double-login policy.
//   - Messages: a recipient on another node has no session here; its
//     message takes its id here and is forwarded live to that node
//     (forward.go), which answers once it is acknowledged or stored; if
//     that node dies first, it is stored here under the same id. What is
//     stored for a user online elsewhere (a recipient that moved, a
//     REQUEST or NOTICE) is told to its node with the rows (Mail), which
//     merges them into the live mailbox (refresh.go). A group's copies are
//     stored per recipient in a cluster (postGroupID), so that no member's
//     cursor passes a copy another node has not yet merged.
//   - Accounts and social rows changed by one node are reloaded by the
//     others (the store is cluster.Watch'ed; clusterChanged).
//   - Client ids: each one a node records in its journal (before anyone
//     can see its message) is published, and every node keeps the others'
//     as a restarted server keeps its journal's (clusterSent): a sender
//     whose node died sends again (resend=<cid>) to another node, which
//     answers from the store or delivers again under the same msgid, as
//     PROTOCOL.md section 6 says of a restart.

// ValidNode reports whether name can name a node (--node).
func ValidNode(name string) bool { return cluster.ValidNode(name) }

// deployed is a store that can say what it is, whoever connects to it.
type deployed interface{ Deployment() string }

// joinCluster joins the cluster of cfg.Cluster; the store's writes are
// watched from then on. Called by Start before the first connection.
func (srv *Server) joinCluster() error {
	d, ok := srv.store.(deployed)
	if !ok {
		return fmt.Errorf("--cluster needs a PostgreSQL store")
	}
	addr := srv.cfg.NodeAddr
	if addr == "" {
		addr = nodeAddr(srv.ln.Addr())
	}
	cl, err := cluster.Join(cluster.Config{URL: srv.cfg.Cluster, Node: srv.cfg.Node, Timeout: srv.cfg.NodeTimeout,
		Deployment: d.Deployment(), Addr: addr, Log: srv.log}, cluster.Hooks{
		Local: srv.clusterLocal, Remote: srv.clusterRemote, Takeover: srv.clusterTakeover,
		Mail: srv.clusterMail, Changed: srv.clusterChanged, Offer: srv.clusterOffer, Sent: srv.clusterSent,
		Event: srv.clusterEvent, Forward: srv.clusterForward, Down: srv.po.nodeGone, Stored: srv.po.hintStored,
	})
	if err != nil {
		return err
	}
	srv.cl = cl
	srv.store = cl.Watch(srv.store)
	srv.soc.store = srv.store
	srv.po.cluster = true
	srv.po.fw = newForwarder(cl.Forward)
	srv.po.where = func(user int64) string {
		node, _, _, _ := cl.Where(user)
		return node
	}
	srv.po.onSent = func(e dedupe.Entry) { cl.Sent(appendSentID(nil, e)) }
	srv.po.storedHint = cl.Stored
	srv.reload.srv = srv
	srv.dir.miss = srv.storedAccount
	srv.soc.miss = srv.reloadSocial
	return nil
}

// storedAccount reads the account who names (an id or a nickname) from
// the store, or nil.
func (srv *Server) storedAccount(who string) *store.User {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var u store.User
	var err error
	if id, ok := protocol.ParseID(who); ok {
		u, err = srv.store.UserByID(ctx, id)
	} else {
		u, err = srv.store.UserByNick(ctx, who)
	}
	if err != nil {
		if !errors.Is(err, store.ErrNoUser) {
			srv.log.Warn("cluster: read account", "who", protocol.Clip(who, 40), "err", err)
		}
		return nil
	}
	return &u
}

// clusterLocal is the presence of users on this node (every user online
// here with users nil), for the cluster's batches.
func (srv *Server) clusterLocal(users []int64) []presence.Change {
	if users == nil {
		for _, o := range srv.hub.list() {
			users = append(users, o.user)
		}
	}
	out := make([]presence.Change, 0, len(users))
	for _, u := range users {
		a := srv.dir.byId(u)
		if a == nil {
			continue
		}
		state, text := srv.hub.state(u)
		if text == "" && state != presence.Offline {
			text = srv.dir.snapshot(a).profile.Status
		}
		out = append(out, presence.Change{User: u, Nick: srv.dir.nickOf(u), State: state, Text: text})
	}
	return out
}

// clusterRemote hands the changes of other nodes' users to the local
// watchers, with the local changes of the --presence-interval, all of one
// call in one batch.
//
// A user that came online on another node may have missed the Mail
// notices of what this node stored for it before it knew where the user
// was: that node is told once more.
func (srv *Server) clusterRemote(users []int64) {
	at := time.Now()
	var mail []int64
	flush, wait := false, time.Duration(0)
	for _, u := range users {
		// As notePresence, all noted before any batch is taken: the
		// users of one call go out in one batch (a dead node's, say).
		if n, w := srv.pres.co.Note(u, at); n || w > 0 {
			flush, wait = n, w
		}
		if srv.po.mailedAway(u) {
			mail = append(mail, u)
		}
	}
	switch {
	case flush:
		srv.flushPresence()
	case wait > 0:
		time.AfterFunc(wait, srv.flushPresence)
	}
	if len(mail) > 0 {
		srv.cl.Mail(mail, nil)
	}
}

// clusterTakeover ends the local session of user, which logged in on
// another node, and returns once what its mailbox held only in memory is
// stored (or after the node timeout).
func (srv *Server) clusterTakeover(user int64) {
	s := srv.hub.session(user)
	if s == nil {
		return
	}
	s.close(reasonTakeover, "logged in from another place")
	deadline := time.Now().Add(srv.cfg.NodeTimeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if srv.hub.session(user) != s && srv.po.unsaved(user) == 0 {
			return
		}
		<-tick.C
	}
	srv.log.Warn("cluster: takeover: session not saved in time", "user", user)
}

// clusterMail merges what waits in the store into the mailboxes of users
// online here (another node stored something for them before it knew they
// were here).
func (srv *Server) clusterMail(users []int64, _ []byte) {
	for _, u := range users {
		srv.po.refresh(u)
	}
}

// clusterChanged takes in a change another node made: an account (kind
// "user") is read again at once; the social rows are reloaded by one
// goroutine, changes that come meanwhile making one more reload.
func (srv *Server) clusterChanged(kind string, id int64) {
	if kind == "user" {
		srv.reloadUser(id)
		return
	}
	srv.reload.ask()
}

// reloadUser reads account id again: a new account, a new nickname or
// password.
func (srv *Server) reloadUser(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := srv.store.UserByID(ctx, id)
	if err != nil {
		srv.log.Warn("cluster: reload account", "user", id, "err", err)
		return
	}
	a := srv.dir.byId(id)
	if a == nil {
		srv.dir.add(&account{id: u.ID, nick: u.Nick, pwhash: u.PwHash, created: u.Created})
		return
	}
	if srv.dir.nickOf(id) != u.Nick {
		srv.dir.rename(a, u.Nick)
	}
	srv.dir.update(a, func(a *account) { a.pwhash = u.PwHash })
}

// reloader reloads the social rows for other nodes' changes: one reload
// at a time, and one more for whatever was asked while it ran.
type reloader struct {
	srv     *Server
	mu      sync.Mutex
	running bool
	again   bool
}

func (r *reloader) ask() {
	r.mu.Lock()
	if r.running {
		r.again = true
		r.mu.Unlock()
		return
	}
	r.running = true
	r.mu.Unlock()
	go r.run()
}

func (r *reloader) run() {
	for {
		r.srv.reloadSocial()
		r.mu.Lock()
		if !r.again {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.again = false
		r.mu.Unlock()
	}
}

// reloadSocial reads friends, requests, blocks, groups and profiles again
// and puts them in place of what is in memory.
func (srv *Server) reloadSocial() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Under the lock from the read to the swap: a change made here holds
	// it across its store write, so none falls between the two.
	so := srv.soc
	so.mu.Lock()
	defer so.mu.Unlock()
	fresh, err := loadSocial(ctx, srv.store, srv.dir)
	if err != nil {
		srv.log.Warn("cluster: reload friends and groups", "err", err)
		return
	}
	so.friends, so.requests, so.blocks, so.groups, so.mine = fresh.friends, fresh.requests, fresh.blocks, fresh.groups, fresh.mine
}

// onlineList is who is online on every node, by id.
func (srv *Server) onlineList() []onlineUser {
	online := srv.hub.list()
	if srv.cl == nil {
		return online
	}
	for _, c := range srv.cl.Online(nil) {
		if srv.hub.isOnline(c.User) {
			continue
		}
		o := onlineUser{user: c.User, nick: srv.dir.nickOf(c.User)}
		if c.State == presence.Away {
			o.away, o.awayText = true, c.Text
		}
		online = append(online, o)
	}
	slices.SortFunc(online, func(a, b onlineUser) int { return int(min(max(a.user-b.user, -1), 1)) })
	return online
}

// remoteState is user's presence on another node: "offline" when on none.
func (srv *Server) remoteState(user int64) (state, awayText string) {
	if srv.cl == nil {
		return presence.Offline, ""
	}
	_, state, text, ok := srv.cl.Where(user)
	if !ok {
		return presence.Offline, ""
	}
	if state == presence.Away {
		return state, text
	}
	return state, ""
}

// loadedProfiles sets the profiles of rows into the accounts of dir.
func loadedProfiles(dir *directory, profiles map[int64]store.Profile) {
	for id, p := range profiles {
		if a := dir.byId(id); a != nil {
			dir.update(a, func(a *account) { a.profile = p })
		}
	}
}

// nodeAddr is where the other nodes reach a node that listens on ln
// (relays, offers_cluster.go): the listening address, or, listening on
// every address, the host's name and the port.
func nodeAddr(ln net.Addr) string {
	host, port, err := net.SplitHostPort(ln.String())
	if err != nil {
		return ln.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	return net.JoinHostPort(host, port)
}

// appendSentID appends a client id record for the other nodes:
// "<sender> <cid> <msgid> <to> <group|-> <unix ms>".
func appendSentID(dst []byte, e dedupe.Entry) []byte {
	group := e.Group
	if group == "" {
		group = "-"
	}
	return fmt.Appendf(dst, "%d %s %d %d %s %d", e.Sender, e.CID, e.ID, e.To, group, e.Time.UnixMilli())
}

var errSentID = errors.New("client id record")

// parseSentID reads what appendSentID wrote, refusing anything else.
func parseSentID(data []byte) (dedupe.Entry, error) {
	f := strings.Fields(string(data))
	if len(f) != 6 {
		return dedupe.Entry{}, fmt.Errorf("%w: want 6 fields, got %d", errSentID, len(f))
	}
	sender, ok1 := protocol.ParseID(f[0])
	id, ok2 := protocol.ParseID(f[2])
	to, err3 := strconv.ParseInt(f[3], 10, 64)
	ms, err4 := strconv.ParseInt(f[5], 10, 64)
	if !ok1 || !ok2 || err3 != nil || to < 0 || err4 != nil || !protocol.ValidTag(f[1]) || len(f[1]) > 32 {
		return dedupe.Entry{}, fmt.Errorf("%w: bad sender, id, recipient, time or client id", errSentID)
	}
	e := dedupe.Entry{Sender: sender, CID: f[1], ID: id, To: to, Time: time.UnixMilli(ms)}
	if f[4] != "-" {
		if _, err := protocol.GroupName(f[4]); err != nil || to != 0 {
			return dedupe.Entry{}, fmt.Errorf("%w: bad group", errSentID)
		}
		e.Group = f[4]
	} else if to == 0 {
		return dedupe.Entry{}, fmt.Errorf("%w: neither recipient nor group", errSentID)
	}
	return e, nil
}

// clusterSent keeps a client id another node recorded, as a restarted
// server keeps those of its journal: a resend of it here is answered from
// the store, or delivered again under its msgid.
func (srv *Server) clusterSent(data []byte) {
	e, err := parseSentID(data)
	if err != nil {
		srv.log.Warn("cluster: bad client id record", "err", err)
		return
	}
	srv.po.loadJournal([]dedupe.Entry{e})
	srv.lastIDs.note(e.Sender, e.ID)
}

// lastIDs is the highest message id each sender took on another node, as
// the client-id records tell (clusterSent).
type lastIDs struct {
	mu sync.Mutex
	m  map[int64]int64
}

func (l *lastIDs) note(sender, id int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[int64]int64)
	}
	l.m[sender] = max(l.m[sender], id)
}

func (l *lastIDs) of(sender int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[sender]
}

// idsAbove makes the ids this node gives from now on higher than those
// user's messages took on other nodes (idAlloc.Above), at its login.
func (srv *Server) idsAbove(user int64) {
	last := srv.lastIDs.of(user)
	if last == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.po.ids.Above(ctx, last); err != nil {
		srv.log.Warn("cluster: reserve message ids", "user", user, "err", err)
	}
}

// clusterEvent hands a NUDGE, TYPING or RECEIPT another node sent to its user, when
// online here (and, for TYPING, with typing on). Anything else is refused.
func (srv *Server) clusterEvent(user int64, line []byte) {
	l, err := protocol.ParseLine(bytes.TrimSuffix(line, []byte{'\n'}))
	if err != nil || l.Kind != "NUDGE" && l.Kind != "TYPING" && l.Kind != "RECEIPT" {
		srv.log.Warn("cluster: bad event line", "err", err)
		return
	}
	to := srv.hub.session(user)
	if to == nil || l.Kind == "TYPING" && !to.typingOn() {
		return
	}
	to.send(line)
}

// onAnotherNode reports whether user is online on another node of the
// cluster (never without one).
func (srv *Server) onAnotherNode(user int64) bool {
	if srv.cl == nil {
		return false
	}
	_, _, _, ok := srv.cl.Where(user)
	return ok
}

// clusterForward takes messages another node forwards for users here, or
// its answers for those this node forwarded (forward.go).
func (srv *Server) clusterForward(node, kind string, data []byte) {
	if kind == "safe" {
		answers, err := decodeSafe(data)
		if err != nil {
			srv.log.Warn("cluster: bad answers", "node", node, "err", err)
			return
		}
		srv.po.safeFrom(node, answers)
		return
	}
	items, err := decodeForward(data)
	if err != nil {
		srv.log.Warn("cluster: bad forwarded messages", "node", node, "err", err)
		return
	}
	srv.po.acceptForward(node, items)
}
