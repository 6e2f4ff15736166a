package limits

import (
	"container/list"
	"errors"
	"sync"
)

// Errors of Conns.Admit.
var (
	ErrAddrFull = errors.New("too many connections not logged in from this address")
	ErrFull     = errors.New("too many connections not logged in")
)

// Conns counts connections that have not logged in, per source address
// and in all. Past the cap of an address the new connection is refused
// (that address is all its own trouble); past the cap in all the oldest
// connection not logged in is evicted to make room, so that connections
// held open without a login (a slowloris from many addresses) cannot
// lock everyone else out: they must keep coming faster than a person
// logs in.
type Conns struct {
	perAddr, total int

	mu     sync.Mutex
	byAddr map[string]int
	order  list.List // *Slot, oldest first
}

// Slot is one counted connection. Owner is the caller's (the session it
// closes when Admit evicts it); Conns never looks at it.
type Slot struct {
	Owner any
	addr  string
	elem  *list.Element // nil once released or evicted
}

// NewConns returns the counter; a zero cap is no cap.
func NewConns(perAddr, total int) *Conns {
	return &Conns{perAddr: perAddr, total: total, byAddr: make(map[string]int)}
}

// Admit counts one more connection from addr and returns its slot, or
// refuses it (ErrAddrFull) and counts nothing. When the cap in all is
// reached it uncounts the oldest slot and returns it as evicted: the
// caller closes that connection. A slot is released once, when its
// connection logs in or closes (an evicted one needs no release).
func (c *Conns) Admit(addr string) (s, evicted *Slot, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.perAddr > 0 && c.byAddr[addr] >= c.perAddr {
		return nil, nil, ErrAddrFull
	}
	if c.total > 0 && c.order.Len() >= c.total {
		old := c.order.Front()
		if old == nil {
			return nil, nil, ErrFull
		}
		evicted = old.Value.(*Slot)
		c.releaseLocked(evicted)
	}
	s = &Slot{addr: addr}
	s.elem = c.order.PushBack(s)
	c.byAddr[addr]++
	return s, evicted, nil
}

// Release uncounts s, if it still counts.
func (c *Conns) Release(s *Slot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(s)
}

func (c *Conns) releaseLocked(s *Slot) {
	if s == nil || s.elem == nil {
		return
	}
	c.order.Remove(s.elem)
	s.elem = nil
	if c.byAddr[s.addr] <= 1 {
		delete(c.byAddr, s.addr)
	} else {
		c.byAddr[s.addr]--
	}
}

// Count is how many are counted from addr and in all.
func (c *Conns) Count(addr string) (fromAddr, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byAddr[addr], c.order.Len()
}
