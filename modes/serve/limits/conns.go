package limits

import (
	"errors"
	"sync"
)

// Errors of Conns.Admit.
var (
	ErrAddrFull = errors.New("too many connections not logged in from this address")
	ErrFull     = errors.New("too many connections not logged in")
)

// Conns counts connections that have not logged in, per source address
// and in all, and refuses one past either cap.
type Conns struct {
	perAddr, total int

	mu     sync.Mutex
	byAddr map[string]int
	n      int
}

// NewConns returns the counter; a zero cap is no cap.
func NewConns(perAddr, total int) *Conns {
	return &Conns{perAddr: perAddr, total: total, byAddr: make(map[string]int)}
}

// Admit counts one more connection from addr, or refuses it (ErrAddrFull,
// ErrFull) and counts nothing. An admitted one is released once, when it
// logs in or closes.
func (c *Conns) Admit(addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.perAddr > 0 && c.byAddr[addr] >= c.perAddr {
		return ErrAddrFull
	}
	if c.total > 0 && c.n >= c.total {
		return ErrFull
	}
	c.byAddr[addr]++
	c.n++
	return nil
}

// Release uncounts a connection Admit counted.
func (c *Conns) Release(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byAddr[addr] <= 1 {
		delete(c.byAddr, addr)
	} else {
		c.byAddr[addr]--
	}
	c.n--
}

// Count is how many are counted from addr and in all.
func (c *Conns) Count(addr string) (fromAddr, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byAddr[addr], c.n
}
