package receipts

import "sync"

// Waiting keeps the marks whose sender was offline when they were sent,
// for its next login: per sender, the latest mark of each conversation and
// kind, at most perSender of them (the oldest go first), and at most total
// in all (past it, new ones are dropped). Marks are not durable: they are
// lost with a restart, as presence is. Safe for concurrent use.
type Waiting struct {
	perSender, total int

	mu sync.Mutex
	by map[int64][]Mark // by sender, oldest first
	n  int
}

// NewWaiting returns an empty Waiting with these bounds.
func NewWaiting(perSender, total int) *Waiting {
	return &Waiting{perSender: perSender, total: total, by: make(map[int64][]Mark)}
}

// Keep keeps m for its sender. A mark of the same conversation and kind
// is replaced when m says more; one that says less is dropped.
func (w *Waiting) Keep(m Mark) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ms := w.by[m.Sender]
	for i := range ms {
		if ms[i].Reader == m.Reader && ms[i].Kind == m.Kind {
			if m.ID > ms[i].ID {
				// the newest last: it goes at the end
				copy(ms[i:], ms[i+1:])
				ms[len(ms)-1] = m
			}
			return
		}
	}
	switch {
	case len(ms) >= w.perSender:
		copy(ms, ms[1:])
		ms[len(ms)-1] = m
	case w.n >= w.total:
		return
	default:
		w.by[m.Sender] = append(ms, m)
		w.n++
	}
}

// Take returns and forgets the marks kept for sender, oldest first.
func (w *Waiting) Take(sender int64) []Mark {
	w.mu.Lock()
	defer w.mu.Unlock()
	ms := w.by[sender]
	delete(w.by, sender)
	w.n -= len(ms)
	return ms
}

// Len is how many marks are kept in all.
func (w *Waiting) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}
