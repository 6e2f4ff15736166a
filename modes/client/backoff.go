package client

import (
	"math/rand/v2"
	"time"
)

// Backoff spaces reconnect attempts: the n-th waits about Base·2ⁿ, at
// most Max, with "equal jitter" (half of it fixed, half random), so that
// a server's clients do not all come back in the same instant after a
// restart, and a server that stays down is not hammered.
type Backoff struct {
	Base time.Duration // the first wait before jitter (default 200ms)
	Max  time.Duration // no wait is longer (default 5s)
	// Rand returns a number in [0, 1) (default math/rand/v2): tests make
	// the jitter known.
	Rand func() float64
}

// Delay is the wait before attempt n (0 for the first attempt after a
// loss): in [d/2, d) where d = min(Max, Base·2ⁿ).
func (b Backoff) Delay(n int) time.Duration {
	base, ceiling := b.Base, b.Max
	if base <= 0 {
		base = 200 * time.Millisecond
	}
	if ceiling <= 0 {
		ceiling = 5 * time.Second
	}
	d := ceiling
	if n < 30 && base<<n < ceiling && base<<n > 0 {
		d = base << n
	}
	r := b.Rand
	if r == nil {
		r = rand.Float64
	}
	return d/2 + time.Duration(r()*float64(d/2))
}

// Clock is the time a Session waits by; tests give it a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
