package limits

import (
	"sync"
	"time"
)

// Registrations limits new accounts: per source address, perAddr at once
// and perAddr more per window (a token bucket), and for the whole server
// perMinute at once and perMinute more per minute.
type Registrations struct {
	perAddr   int
	window    time.Duration
	perMinute int

	mu     sync.Mutex
	addrs  map[string]*Bucket
	global Bucket
}

// NewRegistrations returns the limiter; a zero perAddr or perMinute turns
// that cap off.
func NewRegistrations(perAddr int, window time.Duration, perMinute int) *Registrations {
	return &Registrations{
		perAddr: perAddr, window: window, perMinute: perMinute,
		addrs:  make(map[string]*Bucket),
		global: NewBucket(float64(perMinute)/60, perMinute),
	}
}

// Which cap refused a registration.
type RegCap int

const (
	RegAllowed RegCap = iota
	RegAddr           // the address made too many
	RegGlobal         // the server took too many
)

// Allow takes one registration from addr at now, or says which cap refused
// it and how long until it would be allowed. A refused one counts nowhere.
func (r *Registrations) Allow(addr string, now time.Time) (RegCap, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b *Bucket
	if r.perAddr > 0 {
		b = r.addrs[addr]
		if b == nil {
			nb := NewBucket(float64(r.perAddr)/r.window.Seconds(), r.perAddr)
			b = &nb
		}
		if !b.Has(now, 1) {
			return RegAddr, b.Until(now, 1)
		}
	}
	if r.perMinute > 0 && !r.global.Allow(now, 1) {
		return RegGlobal, r.global.Until(now, 1)
	}
	if b != nil {
		b.Allow(now, 1)
		r.addrs[addr] = b
	}
	return RegAllowed, 0
}

// Sweep forgets the addresses whose allowance is whole again at now.
func (r *Registrations) Sweep(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, b := range r.addrs {
		if b.Full(now) {
			delete(r.addrs, k)
		}
	}
}

// Len is how many addresses are remembered.
func (r *Registrations) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.addrs)
}
