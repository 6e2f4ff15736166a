package serve

import (
	"slices"
	"sync/atomic"
	"time"

	"qchat/modes/serve/presence"
)

// Presence events, coalesced (modes/serve/presence). A change of a user's
// presence (login, logout, AWAY, BACK, a new status or nickname) is noted;
// the changes of one --presence-interval go out as one batch. Each watcher
// (everyone online in LAN mode, the user's friends in friends mode) gets
// the batch's changes it may see as PRESENCE lines when there are at most
// maxPresenceLines of them, else one PRESENCES summary, in one write
// either way. So a restart with N users logging back in costs each watcher
// one short line per interval instead of N lines.

// maxPresenceLines is the most changes a watcher gets line by line from
// one batch; past it the watcher gets one PRESENCES summary.
const maxPresenceLines = 16

// maxPresenceStretch bounds how far a storm stretches the interval: while
// batches are big (summaries), each one doubles the interval to the next,
// up to this many times --presence-interval; a small batch brings it back.
// A restart's storm of logins then costs each watcher a summary every few
// seconds rather than every second, and nobody waits long for the one
// change that comes alone.
const maxPresenceStretch = 8

// presenceLogLimit bounds the changes kept for LIST <version>.
const presenceLogLimit = 100_000

// presenceFanout is the server's side of presence batches.
type presenceFanout struct {
	co    *presence.Coalescer
	log   *presence.Log
	base  time.Duration // --presence-interval
	every time.Duration // the interval now: base, stretched during a storm (flush only)
	// stretched is every, for the sweeper.
	stretched atomic.Int64

	flushing chan struct{} // a one-slot lock: one batch at a time, in order
	watchers []*session    // reused by flush
}

func newPresenceFanout(every time.Duration, start time.Time) *presenceFanout {
	return &presenceFanout{
		base: every, every: every,
		co:       presence.NewCoalescer(every),
		log:      presence.NewLog(start, presenceLogLimit),
		flushing: make(chan struct{}, 1),
	}
}

// notePresence notes that user's presence changed. The change goes out
// with the next batch: at once on this goroutine when nothing went out for
// an interval, else from a timer when the interval is over.
func (srv *Server) notePresence(user int64) {
	if srv.cl != nil {
		srv.cl.NoteLocal(user) // the other nodes hear it in the cluster's next batch
	}
	now, wait := srv.pres.co.Note(user, time.Now())
	switch {
	case now:
		srv.flushPresence()
	case wait > 0:
		time.AfterFunc(wait, srv.flushPresence)
	}
}

// presenceSettled (sweeper) sends the last batch of a storm as soon as no
// change came for an interval, rather than when the stretched interval
// ends.
func (srv *Server) presenceSettled(now time.Time) {
	f := srv.pres
	if time.Duration(f.stretched.Load()) > f.base && f.co.Settled(now, f.base) {
		go srv.flushPresence()
	}
}

// flushPresence takes the batch of changes noted so far, resolves each
// user's presence as of now and hands it to its watchers.
func (srv *Server) flushPresence() {
	f := srv.pres
	f.flushing <- struct{}{}
	defer func() { <-f.flushing }()
	users := f.co.Take(time.Now())
	if len(users) == 0 {
		return
	}
	b := presence.Batch{Changes: make([]presence.Change, 0, len(users))}
	for _, u := range users {
		a := srv.dir.byId(u)
		if a == nil {
			continue
		}
		state, text := srv.presence(a)
		b.Changes = append(b.Changes, presence.Change{User: u, Nick: srv.dir.snapshot(a).nick, State: state, Text: text})
	}
	if every := f.base; len(b.Changes) > maxPresenceLines {
		f.every = min(2*f.every, maxPresenceStretch*f.base)
		f.co.SetInterval(f.every)
	} else if f.every != every {
		f.every = every
		f.co.SetInterval(every)
	}
	f.stretched.Store(int64(f.every))
	srv.deliverPresence(&b)
}

// deliverPresence gives a batch its version in the log (for LIST
// <version>) and hands it to the watchers. Called with f.flushing held,
// one batch at a time. A batch of another node's users (issue 13: each
// node publishes the batches it takes, AppendBatch, and delivers those of
// the others) goes the same way.
func (srv *Server) deliverPresence(b *presence.Batch) {
	since := srv.pres.log.Version()
	srv.pres.log.Add(b)
	if srv.cfg.Presence == "friends" {
		srv.deliverToFriends(b, since)
	} else {
		srv.deliverToAll(b, since)
	}
}

// deliverToAll hands a batch to everyone online (LAN mode): the same
// bytes for all, but for the users of a small batch, who do not hear of
// their own change.
func (srv *Server) deliverToAll(b *presence.Batch, since uint64) {
	f := srv.pres
	f.watchers = srv.hub.sessions(f.watchers[:0])
	defer clear(f.watchers)
	hidden := srv.hiddenChanges(b)
	if len(b.Changes) > maxPresenceLines {
		on, away, off := b.Counts()
		line := presence.AppendSummary(nil, since, on, away, off)
		for _, s := range f.watchers {
			if hide := hidden[s.loggedIn()]; len(hide) > 0 {
				s.send(summaryWithout(b, since, hide))
				continue
			}
			s.send(line)
		}
		return
	}
	var all []byte
	ends := make([]int, len(b.Changes)) // where each change's line ends in all
	for i, c := range b.Changes {
		all = presence.AppendLine(all, c)
		ends[i] = len(all)
	}
	for _, s := range f.watchers {
		me := s.loggedIn()
		if hide := hidden[me]; len(hide) > 0 {
			var line []byte
			for i, c := range b.Changes {
				if c.User != me && !slices.Contains(hide, int32(i)) {
					line = presence.AppendLine(line, c)
				}
			}
			if len(line) > 0 {
				s.send(line)
			}
			continue
		}
		i := 0
		for ; i < len(b.Changes) && b.Changes[i].User != me; i++ {
		}
		switch {
		case i == len(b.Changes):
			s.send(all)
		case len(b.Changes) > 1:
			start := 0
			if i > 0 {
				start = ends[i-1]
			}
			s.send(append(append([]byte(nil), all[:start]...), all[ends[i]:]...))
		}
	}
}

// hiddenChanges returns, for each watcher that some user of b blocks, the
// changes (indexes in b) it must not hear of: none while nobody blocks.
func (srv *Server) hiddenChanges(b *presence.Batch) map[int64][]int32 {
	if !srv.soc.anyBlocks() {
		return nil
	}
	var hidden map[int64][]int32
	for i, c := range b.Changes {
		for _, w := range srv.soc.blocksOf(c.User) {
			if hidden == nil {
				hidden = make(map[int64][]int32)
			}
			hidden[w] = append(hidden[w], int32(i))
		}
	}
	return hidden
}

// summaryWithout is b's summary without the changes hide.
func summaryWithout(b *presence.Batch, since uint64, hide []int32) []byte {
	var on, away, off int
	for i, c := range b.Changes {
		if slices.Contains(hide, int32(i)) {
			continue
		}
		switch c.State {
		case presence.Online:
			on++
		case presence.Away:
			away++
		default:
			off++
		}
	}
	return presence.AppendSummary(nil, since, on, away, off)
}

// deliverToFriends hands each online friend of the batch's users the
// changes of its friends (friends mode), as lines or a summary.
func (srv *Server) deliverToFriends(b *presence.Batch, since uint64) {
	seen := make(map[int64][]int32) // watcher -> its friends' changes in b
	blocks := srv.soc.anyBlocks()
	for i, c := range b.Changes {
		for _, w := range srv.soc.friendsOf(c.User) {
			if blocks && srv.soc.blocked(c.User, w) {
				continue // a friend it blocks sees it offline
			}
			seen[w] = append(seen[w], int32(i))
		}
	}
	var line []byte
	for w, changes := range seen {
		s := srv.hub.session(w)
		if s == nil {
			continue
		}
		line = line[:0]
		if len(changes) > maxPresenceLines {
			var on, away, off int
			for _, i := range changes {
				switch b.Changes[i].State {
				case presence.Online:
					on++
				case presence.Away:
					away++
				default:
					off++
				}
			}
			line = presence.AppendSummary(line, since, on, away, off)
		} else {
			for _, i := range changes {
				line = presence.AppendLine(line, b.Changes[i])
			}
		}
		s.send(line)
	}
}
