package serve

import (
	"sort"
	"sync"
)

// hub knows who is online. One RWMutex, short sections, no I/O under it
// (session.send never blocks).
type hub struct {
	mu     sync.RWMutex
	online map[int64]*session
	away   map[int64]string // users marked away, with their away text
}

func newHub() *hub { return &hub{online: make(map[int64]*session), away: make(map[int64]string)} }

// login marks s online and returns the session of the same user it
// replaces (newer session takes over), or nil.
func (h *hub) login(s *session) (old *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old = h.online[s.user]
	h.online[s.user] = s
	return old
}

// logout marks s offline; false if a newer session had taken its place.
func (h *hub) logout(s *session) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.online[s.user] != s {
		return false
	}
	delete(h.online, s.user)
	delete(h.away, s.user)
	return true
}

// setAway marks an online user away (with text) or back.
func (h *hub) setAway(user int64, away bool, text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if away {
		h.away[user] = text
	} else {
		delete(h.away, user)
	}
}

// state returns "online", "away" (with the away text) or "offline".
func (h *hub) state(user int64) (state, awayText string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.online[user] == nil {
		return "offline", ""
	}
	if text, ok := h.away[user]; ok {
		return "away", text
	}
	return "online", ""
}

// session returns user's session, or nil when offline.
func (h *hub) session(user int64) *session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.online[user]
}

func (h *hub) isOnline(user int64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.online[user] != nil
}

// onlineUser is a snapshot of one online user for LIST.
type onlineUser struct {
	user     int64
	nick     string
	away     bool
	awayText string
}

// list returns who is online, by id.
func (h *hub) list() []onlineUser {
	h.mu.RLock()
	out := make([]onlineUser, 0, len(h.online))
	for id, s := range h.online {
		text, away := h.away[id]
		out = append(out, onlineUser{id, s.nickname(), away, text})
	}
	h.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].user < out[j].user })
	return out
}

// sessions appends every online session to dst.
func (h *hub) sessions(dst []*session) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.online {
		dst = append(dst, s)
	}
	return dst
}
