package limits

import "time"

// Bucket is a token bucket: it holds at most burst tokens and gains rate
// tokens per second. A new bucket is full. It does not lock.
type Bucket struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time // when tokens was computed; zero: full
}

// NewBucket returns a full bucket of burst tokens refilled at rate per
// second.
func NewBucket(rate float64, burst int) Bucket {
	return Bucket{rate: rate, burst: float64(burst)}
}

// refill brings the tokens up to now.
func (b *Bucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.tokens, b.last = b.burst, now
		return
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}

// Allow takes cost tokens when the bucket holds them at now.
func (b *Bucket) Allow(now time.Time, cost float64) bool {
	b.refill(now)
	if b.tokens < cost {
		return false
	}
	b.tokens -= cost
	return true
}

// Has reports whether the bucket holds cost tokens at now, taking none.
func (b *Bucket) Has(now time.Time, cost float64) bool {
	b.refill(now)
	return b.tokens >= cost
}

// Until returns how long from now until the bucket holds cost tokens.
func (b *Bucket) Until(now time.Time, cost float64) time.Duration {
	b.refill(now)
	if b.tokens >= cost || b.rate <= 0 {
		return 0
	}
	return seconds((cost - b.tokens) / b.rate)
}

// Full reports whether the bucket is full at now: it is then the same as a
// new one and may be forgotten.
func (b *Bucket) Full(now time.Time) bool {
	b.refill(now)
	return b.tokens >= b.burst
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}

// Pacer is one session's budget of costly commands (ergo's fakelag). A
// burst goes through at once; past it, each command takes its tokens on
// credit and the session waits until they are paid back before it runs
// the command, so a fast sender is slowed to the rate. A sender still
// held back after the flood period, counted from the first command that
// had to wait, keeps flooding: Take then reports flood, and the server
// disconnects it. Only a pause that refills half the burst ends the
// count: a flooder woken a little late by its timer has a token or two
// more, not half a burst. Nor does a sender who waits for each answer
// before it sends again (a piped script): it is as slow as the pacer makes
// it and holds nothing in the server's buffers, so the server tells the
// pacer so (Patient) and such a sender is never cut off.
//
// The zero Pacer, and one with rate 0, lets everything through.
type Pacer struct {
	b          Bucket
	floodAfter time.Duration
	since      time.Time // first command of the current held-back stretch; zero: none
}

// NewPacer returns a pacer of burst tokens refilled at rate per second
// whose sender is flooding once held back for longer than floodAfter.
func NewPacer(rate float64, burst int, floodAfter time.Duration) Pacer {
	return Pacer{b: NewBucket(rate, burst), floodAfter: floodAfter}
}

// WouldWait reports whether a command of cost at now would have to wait:
// only then does it matter whether the sender is patient, which costs the
// caller a look at its input.
func (p *Pacer) WouldWait(now time.Time, cost int) bool {
	if p.b.rate <= 0 || cost <= 0 {
		return false
	}
	p.b.refill(now)
	return p.b.tokens < min(float64(cost), p.b.burst)
}

// Patient records that the sender has nothing more queued behind the
// command about to be charged: it waits for answers rather than floods.
// It ends the current held-back stretch.
func (p *Pacer) Patient() { p.since = time.Time{} }

// Take charges cost tokens for a command at now (a cost over the burst
// counts as the burst: one command can always run, after a wait). It
// returns how long the sender must wait before the command runs (0: at
// once), or flood when the sender has been held back too long: the
// command is then not charged and must not run.
func (p *Pacer) Take(now time.Time, cost int) (wait time.Duration, flood bool) {
	if p.b.rate <= 0 || cost <= 0 {
		return 0, false
	}
	c := min(float64(cost), p.b.burst)
	p.b.refill(now)
	if p.b.tokens >= p.b.burst/2 {
		p.since = time.Time{} // a real pause, not a timer's lateness
	}
	if p.b.tokens >= c {
		p.b.tokens -= c
		return 0, false
	}
	wait = seconds((c - p.b.tokens) / p.b.rate)
	if p.since.IsZero() {
		p.since = now
	}
	if now.Add(wait).Sub(p.since) > p.floodAfter {
		return 0, true
	}
	// On credit: the tokens go below zero and are back at zero when the
	// wait is over.
	p.b.tokens -= c
	return wait, false
}
