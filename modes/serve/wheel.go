package serve

import (
	"strconv"
	"sync"
	"time"
)

// wheel is the one timer of all sessions: each session has one check in
// it (its login deadline, its keepalive, its park), in the slot of the
// sweep tick when that check is due, and the sweeper visits only the
// sessions of the slots that came due. An idle parked session is visited
// once per --ping-interval, not every tick; nothing else wakes it.
//
// It is lazy, as the kernel's timers are: a session's reads only store
// the time of the last line (lastRead), never move it in the wheel; when
// its check comes due, the check finds it busy and puts it back where its
// silence would end. A check is one entry; an entry whose session was
// rescheduled since (wheelAt moved) is stale and dropped.
type wheel struct {
	tick time.Duration

	mu    sync.Mutex
	slots [][]wheelEntry // a ring: slot i holds ticks i, i+len, i+2len...
	next  int64          // the first tick not yet taken
}

type wheelEntry struct {
	s  *session
	at int64 // the tick it is due at
}

// wheelSlots is the ring's size: checks further ahead go round again.
const wheelSlots = 128

func newWheel(tick time.Duration, now time.Time) *wheel {
	w := &wheel{tick: tick, slots: make([][]wheelEntry, wheelSlots)}
	w.next = w.tickOf(now.UnixNano())
	return w
}

func (w *wheel) tickOf(ns int64) int64 { return ns / int64(w.tick) }

// schedule puts s's check at time at (unix ns), replacing the one it had;
// a time past is taken at the next tick.
func (w *wheel) schedule(s *session, at int64) {
	t := w.tickOf(at)
	w.mu.Lock()
	t = max(t, w.next)
	s.wheelAt.Store(t)
	slot := &w.slots[t%wheelSlots]
	*slot = append(*slot, wheelEntry{s, t})
	w.mu.Unlock()
}

// due takes the checks due by now (unix ns) and appends them to dst.
func (w *wheel) due(dst []wheelEntry, now int64) []wheelEntry {
	end := w.tickOf(now)
	w.mu.Lock()
	defer w.mu.Unlock()
	for ; w.next <= end && len(dst) < 1<<20; w.next++ {
		slot := &w.slots[w.next%wheelSlots]
		keep := (*slot)[:0]
		for _, e := range *slot {
			switch {
			case e.at > w.next:
				keep = append(keep, e) // a later round
			case e.s.wheelAt.Load() == e.at:
				dst = append(dst, e)
			}
		}
		clear((*slot)[len(keep):])
		if cap(keep) > 1024 && len(keep) < cap(keep)/4 {
			keep = append([]wheelEntry(nil), keep...) // give back what a burst grew
		}
		*slot = keep
	}
	return dst
}

// checkSession runs a session's due check (sweeper): the login deadline,
// the keepalive (PING after --ping-interval of silence, closed after
// --ping-timeout without an answer; not during a TLS handshake), the ask
// to park; and schedules the next one, unless the session is closed.
func (srv *Server) checkSession(s *session, now time.Time, ping *[]byte) {
	if s.closed.Load() {
		return
	}
	ns := now.UnixNano()
	next := ns + int64(srv.cfg.PingInterval)
	if !s.in.Load() {
		dl := s.start.UnixNano() + int64(srv.cfg.LoginTimeout)
		if ns >= dl {
			s.close(reasonLoginTimeout, "not logged in within "+srv.cfg.LoginTimeout.String())
			return
		}
		next = min(next, dl)
	}
	if s.park.Load() == parkBusy {
		// In its STARTTLS handshake, which has a deadline of its own
		// (handshakeTimeout): no PING queued behind it, no ping-timeout
		// cutting it; the keepalive starts again from its end.
		srv.wheel.schedule(s, min(next, ns+int64(srv.tick)))
		return
	}
	last := s.lastRead.Load()
	if at := s.pingAt.Load(); at != 0 {
		if ns-at > int64(srv.cfg.PingTimeout) {
			s.close(reasonPingTimeout, "no answer to PING within "+srv.cfg.PingTimeout.String())
			return
		}
		next = min(next, at+int64(srv.cfg.PingTimeout)+1)
	} else if ns-last > int64(srv.cfg.PingInterval) {
		s.pingAt.Store(ns)
		*ping = append((*ping)[:0], "PING "...)
		*ping = strconv.AppendInt(*ping, now.Unix(), 10)
		*ping = append(*ping, '\n')
		s.send(*ping)
		next = min(next, ns+int64(srv.cfg.PingTimeout)+1)
	} else {
		next = min(next, last+int64(srv.cfg.PingInterval)+1)
	}
	if s.rc != nil {
		switch st := s.park.Load(); {
		case st == parkParked:
		case st == parkBusy || st == parkResuming:
			next = min(next, ns+int64(srv.cfg.parkAfter))
		case ns-last >= int64(srv.cfg.parkAfter):
			s.askPark(ns)
			next = min(next, ns+1) // again at the next tick, until it parks
		default:
			next = min(next, last+int64(srv.cfg.parkAfter))
		}
	}
	srv.wheel.schedule(s, next)
}
