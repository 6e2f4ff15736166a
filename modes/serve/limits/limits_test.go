package limits

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// clock is a fake clock: tests move it by hand and never sleep.
type clock struct{ t time.Time }

func newClock() *clock                      { return &clock{time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)} }
func (c *clock) now() time.Time             { return c.t }
func (c *clock) add(d time.Duration) *clock { c.t = c.t.Add(d); return c }

func TestBucket(t *testing.T) {
	c := newClock()
	b := NewBucket(2, 3) // 3 at once, then 2 per second
	for i := range 3 {
		if !b.Allow(c.now(), 1) {
			t.Fatalf("take %d of a full bucket of 3 refused", i+1)
		}
	}
	if b.Allow(c.now(), 1) {
		t.Fatal("a 4th at the same instant was allowed")
	}
	if d := b.Until(c.now(), 1); d != 500*time.Millisecond {
		t.Fatalf("Until = %v, want 500ms at 2 per second", d)
	}
	c.add(499 * time.Millisecond)
	if b.Allow(c.now(), 1) {
		t.Fatal("allowed 1ms early")
	}
	c.add(time.Millisecond)
	if !b.Allow(c.now(), 1) {
		t.Fatal("refused once the token was back")
	}
	c.add(time.Hour)
	if !b.Full(c.now()) {
		t.Fatal("not full after an hour")
	}
	for range 3 {
		b.Allow(c.now(), 1)
	}
	if b.Allow(c.now(), 1) {
		t.Fatal("an hour of idling gave more than the burst")
	}
}

func TestPacer(t *testing.T) {
	const rate, burst = 10, 5
	flood := 2 * time.Second
	type step struct {
		after time.Duration // since the previous step
		cost  int
		wait  time.Duration
		flood bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a burst goes through, then each waits its turn", []step{
			{0, 1, 0, false}, {0, 1, 0, false}, {0, 1, 0, false}, {0, 1, 0, false}, {0, 1, 0, false},
			{0, 1, 100 * time.Millisecond, false},
			{100 * time.Millisecond, 1, 100 * time.Millisecond, false}, // came at once after its wait
		}},
		{"a sender at the rate is never held back", []step{
			{0, 5, 0, false}, {100 * time.Millisecond, 1, 0, false}, {100 * time.Millisecond, 1, 0, false},
			{100 * time.Millisecond, 1, 0, false}, {100 * time.Millisecond, 1, 0, false},
		}},
		{"a cost over the burst counts as the burst", []step{
			{0, 1000, 0, false}, {0, 1000, 500 * time.Millisecond, false},
		}},
		{"a pause ends a held-back stretch", []step{
			{0, 5, 0, false}, {0, 5, 500 * time.Millisecond, false}, {500 * time.Millisecond, 5, 500 * time.Millisecond, false},
			{500 * time.Millisecond, 5, 500 * time.Millisecond, false},
			{1500 * time.Millisecond, 5, 0, false}, // paused a second: the stretch is over
			{0, 5, 500 * time.Millisecond, false}, {500 * time.Millisecond, 5, 500 * time.Millisecond, false},
			{500 * time.Millisecond, 5, 500 * time.Millisecond, false}, {500 * time.Millisecond, 5, 500 * time.Millisecond, false},
		}},
		{"one who keeps flooding is told so", []step{
			{0, 5, 0, false},
			{0, 5, 500 * time.Millisecond, false},
			{500 * time.Millisecond, 5, 500 * time.Millisecond, false},
			{500 * time.Millisecond, 5, 500 * time.Millisecond, false},
			{500 * time.Millisecond, 5, 500 * time.Millisecond, false}, // held back from 0 to 2s: not more than flood
			{500 * time.Millisecond, 5, 0, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			p := NewPacer(rate, burst, flood)
			for i, s := range tt.steps {
				c.add(s.after)
				wait, fl := p.Take(c.now(), s.cost)
				if wait != s.wait || fl != s.flood {
					t.Fatalf("step %d: Take = %v, %v; want %v, %v", i, wait, fl, s.wait, s.flood)
				}
			}
		})
	}
	var off Pacer
	for range 1000 {
		if w, fl := off.Take(time.Time{}, 100); w != 0 || fl {
			t.Fatal("the zero Pacer held a command back")
		}
	}
}

// TestPacerLateTimer: a flooder whose waits end late (a loaded machine)
// finds a token or so to spare now and then; that is no pause, and it is
// still told it floods once held back for the flood period.
func TestPacerLateTimer(t *testing.T) {
	c := newClock()
	p := NewPacer(10, 5, 2*time.Second)
	p.Take(c.now(), 5)
	var start time.Time
	for range 100 {
		wait, flood := p.Take(c.now(), 1)
		if flood {
			if held := c.now().Sub(start); held < 1900*time.Millisecond || held > 2200*time.Millisecond {
				t.Fatalf("flood after %v held back, want about 2s", held)
			}
			return
		}
		if wait > 0 && start.IsZero() {
			start = c.now()
		}
		if wait > 0 {
			c.add(wait + 150*time.Millisecond) // woken 150ms late, every time
		}
	}
	t.Fatal("a flooder woken late was never told it floods")
}

func testPolicy() LoginPolicy {
	return LoginPolicy{Free: 5, Lockout: 20, AddrLockout: 50, Window: 10 * time.Minute,
		BaseDelay: time.Second, MaxDelay: 8 * time.Second, MaxWait: 15 * time.Second}
}

// attempt runs one login attempt the way the server does: wait, check,
// record a failure.
func attempt(l *Logins, c *clock, addr, acct string) (wait time.Duration, refused bool) {
	wait, refused, _ = l.Before(addr, acct, c.now())
	if refused {
		return wait, true
	}
	c.add(wait)
	l.Failed(addr, acct, c.now())
	return wait, false
}

func TestLoginsDelayThenLockout(t *testing.T) {
	c := newClock()
	l := NewLogins(testPolicy())
	var waits []time.Duration
	for range 20 {
		w, refused := attempt(l, c, "192.0.2.1", "1000")
		if refused {
			t.Fatalf("refused after %d failures", len(waits))
		}
		waits = append(waits, w)
	}
	s := time.Second
	want := []time.Duration{0, 0, 0, 0, 0, s, 2 * s, 4 * s, 8 * s, 8 * s, 8 * s, 8 * s, 8 * s, 8 * s, 8 * s, 8 * s, 8 * s, 8 * s, 8 * s, 8 * s}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v\nwant  %v", waits, want)
	}
	// 20 failures within the window: locked out of that account...
	if _, refused, retry := l.Before("192.0.2.1", "1000", c.now()); !refused || retry <= 0 || retry > 10*time.Minute {
		t.Fatalf("21st attempt: refused %v retry %v; want a lockout", refused, retry)
	}
	// ...but not of another account (it only waits: 20 failures of the
	// address on all accounts start the per-address delay), and another
	// address is not locked out
	if w, refused, _ := l.Before("192.0.2.1", "1001", c.now()); refused || w != time.Second {
		t.Fatalf("another account: wait %v refused %v; want 1s, not refused", w, refused)
	}
	if w, refused, _ := l.Before("192.0.2.2", "1000", c.now()); refused || w != 0 {
		t.Fatalf("the same account from another address: wait %v refused %v", w, refused)
	}
	// the lockout ends when the window has passed the oldest failures
	_, _, retry := l.Before("192.0.2.1", "1000", c.now())
	c.add(retry)
	if _, refused, _ := l.Before("192.0.2.1", "1000", c.now()); refused {
		t.Fatal("still locked out after the retry time")
	}
}

func TestLoginsParallelAttemptsQueue(t *testing.T) {
	c := newClock()
	l := NewLogins(testPolicy())
	for range 5 {
		attempt(l, c, "192.0.2.1", "1000")
	}
	// Four connections ask at the same instant: each gets a later slot.
	var waits []time.Duration
	for range 4 {
		w, refused, _ := l.Before("192.0.2.1", "1000", c.now())
		if refused {
			t.Fatal("refused a queued attempt")
		}
		waits = append(waits, w)
	}
	s := time.Second
	if want := []time.Duration{s, 2 * s, 3 * s, 4 * s}; !slices.Equal(waits, want) {
		t.Fatalf("parallel waits %v, want %v", waits, want)
	}
	// One whose turn is past MaxWait is refused at once, not queued.
	for {
		w, refused, retry := l.Before("192.0.2.1", "1000", c.now())
		if refused {
			if retry <= 15*time.Second {
				t.Fatalf("refused with retry %v, within MaxWait", retry)
			}
			break
		}
		if w > 15*time.Second {
			t.Fatalf("queued for %v, past MaxWait", w)
		}
	}
}

func TestLoginsPerAddress(t *testing.T) {
	c := newClock()
	l := NewLogins(testPolicy())
	// A host tries 4 passwords on each of many accounts: never 5 on one.
	n := 0
	for acct := 0; ; acct++ {
		for range 4 {
			w, refused := attempt(l, c, "192.0.2.9", "acct"+string(rune('A'+acct)))
			if refused {
				if n != 50 {
					t.Fatalf("address locked out after %d failures, want 50", n)
				}
				// a well-behaved address is untouched
				if w, refused, _ := l.Before("192.0.2.10", "acctA", c.now()); refused || w != 0 {
					t.Fatalf("another address: wait %v refused %v", w, refused)
				}
				return
			}
			if n < 20 && w != 0 {
				t.Fatalf("failure %d waited %v; per-address waits start at Lockout (20)", n+1, w)
			}
			if n == 20 && w != time.Second {
				t.Fatalf("failure 21 waited %v, want 1s", w)
			}
			n++
		}
	}
}

func TestLoginsSuccessAndSweep(t *testing.T) {
	c := newClock()
	l := NewLogins(testPolicy())
	for range 7 {
		attempt(l, c, "192.0.2.1", "1000")
	}
	l.Succeeded("192.0.2.1", "1000")
	if w, refused, _ := l.Before("192.0.2.1", "1000", c.now()); w != 0 || refused {
		t.Fatalf("after a good password: wait %v refused %v", w, refused)
	}
	c.add(10 * time.Minute)
	l.Sweep(c.now())
	if p, a := l.Len(); p != 0 || a != 0 {
		t.Fatalf("after the window: %d pairs, %d addresses remembered", p, a)
	}
}

func TestRegistrations(t *testing.T) {
	c := newClock()
	r := NewRegistrations(3, 10*time.Minute, 5)
	for i := range 3 {
		if got, _ := r.Allow("192.0.2.1", c.now()); got != RegAllowed {
			t.Fatalf("registration %d refused: %v", i+1, got)
		}
	}
	got, retry := r.Allow("192.0.2.1", c.now())
	if got != RegAddr || retry != 200*time.Second {
		t.Fatalf("4th from one address: %v retry %v; want RegAddr after 200s (3 per 10m)", got, retry)
	}
	for i := range 2 {
		if got, _ := r.Allow("192.0.2.2", c.now()); got != RegAllowed {
			t.Fatalf("registration %d from another address refused: %v", i+1, got)
		}
	}
	got, retry = r.Allow("192.0.2.3", c.now())
	if got != RegGlobal || retry != 12*time.Second {
		t.Fatalf("6th in a minute: %v retry %v; want RegGlobal after 12s (5 per minute)", got, retry)
	}
	// a refused one counts nowhere: .3 has its whole allowance later
	c.add(time.Minute)
	for i := range 3 {
		if got, _ := r.Allow("192.0.2.3", c.now()); got != RegAllowed {
			t.Fatalf("registration %d from .3 a minute later refused: %v", i+1, got)
		}
	}
	c.add(10 * time.Minute)
	r.Sweep(c.now())
	if n := r.Len(); n != 0 {
		t.Fatalf("%d addresses remembered after their allowance came back", n)
	}
}

func TestConns(t *testing.T) {
	cs := NewConns(2, 3)
	must := func(addr string, want error) *Slot {
		t.Helper()
		s, ev, err := cs.Admit(addr)
		if !errors.Is(err, want) || ev != nil {
			t.Fatalf("Admit(%s) = %v (evicting %v), want %v", addr, err, ev, want)
		}
		return s
	}
	a1 := must("a", nil)
	a2 := must("a", nil)
	must("a", ErrAddrFull)
	b := must("b", nil)
	// Full in all: the oldest goes, the newest comes in.
	c, ev, err := cs.Admit("c")
	if err != nil || ev != a1 {
		t.Fatalf("Admit(c) when full: %v, evicting %p; want the oldest (%p)", err, ev, a1)
	}
	if a, n := cs.Count("a"); a != 1 || n != 3 {
		t.Fatalf("after the eviction: %d from a, %d in all; want 1 and 3", a, n)
	}
	cs.Release(a1) // evicted: counts nothing more
	cs.Release(a2)
	cs.Release(a2) // once only
	if a, n := cs.Count("a"); a != 0 || n != 2 {
		t.Fatalf("after releasing a: %d from a, %d in all; want 0 and 2", a, n)
	}
	d := must("d", nil) // room again: nobody evicted
	for _, s := range []*Slot{b, c, d} {
		cs.Release(s)
	}
	if a, n := cs.Count("a"); a != 0 || n != 0 {
		t.Fatalf("after releasing all: %d from a, %d in all", a, n)
	}
}

func TestShares(t *testing.T) {
	var s Shares
	for range 3 {
		s.Add(7)
	}
	s.Add(8)
	s.Done(7)
	s.Done(9) // never added: harmless
	if s.Count(7) != 2 || s.Count(8) != 1 || s.Count(9) != 0 {
		t.Fatalf("counts 7:%d 8:%d 9:%d", s.Count(7), s.Count(8), s.Count(9))
	}
	// Senders with nothing waiting are dropped once there are many.
	for i := range int64(200) {
		s.Add(1000 + i)
		s.Done(1000 + i)
	}
	if len(s.n) > maxIdle+1 {
		t.Fatalf("%d senders kept", len(s.n))
	}
	if s.Count(7) != 2 {
		t.Fatal("a sender with items waiting was dropped")
	}
	s.AddN(9, 5)
	if s.Count(9) != 5 {
		t.Fatalf("AddN: %d", s.Count(9))
	}
}

func TestCoalescer(t *testing.T) {
	c := newClock()
	co := NewCoalescer[int64](time.Second)
	if !co.Note(1, c.now()) {
		t.Fatal("the first event was held back")
	}
	sent := 0
	for range 2000 { // 2,000 changes within the interval
		c.add(100 * time.Microsecond)
		if co.Note(1, c.now()) {
			sent++
		}
	}
	if sent != 0 {
		t.Fatalf("%d more events went out within the interval", sent)
	}
	if due := co.Due(c.now()); len(due) != 0 {
		t.Fatalf("due early: %v", due)
	}
	c.add(time.Second)
	if due := co.Due(c.now()); !slices.Equal(due, []int64{1}) {
		t.Fatalf("due %v, want [1] once", due)
	}
	if due := co.Due(c.now()); len(due) != 0 {
		t.Fatalf("due twice: %v", due)
	}
	// Sent covers what was held back.
	co.Note(1, c.now())
	co.Sent(1, c.now())
	c.add(2 * time.Second)
	if due := co.Due(c.now()); len(due) != 0 {
		t.Fatalf("due after Sent: %v", due)
	}
	if k, h := co.Len(); k != 0 || h != 0 {
		t.Fatalf("remembers %d keys (%d held) after the interval", k, h)
	}
	// Another key is not held back by the first.
	co.Note(1, c.now())
	if !co.Note(2, c.now()) {
		t.Fatal("key 2 held back by key 1")
	}
}

func TestEvery(t *testing.T) {
	c := newClock()
	e := NewEvery[[2]int64](10 * time.Second)
	if !e.Allow([2]int64{1, 2}, c.now()) || e.Allow([2]int64{1, 2}, c.add(9*time.Second).now()) {
		t.Fatal("not one per 10s")
	}
	if !e.Allow([2]int64{1, 3}, c.now()) {
		t.Fatal("another key refused")
	}
	if !e.Allow([2]int64{1, 2}, c.add(time.Second).now()) {
		t.Fatal("refused after 10s")
	}
	e.Sweep(c.add(10 * time.Second).now())
	if e.Len() != 0 {
		t.Fatalf("%d keys kept", e.Len())
	}
}

func TestAddrKeyAndExempt(t *testing.T) {
	keys := map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"fe80::1%eth0":         "fe80::/64",
		"::1":                  "::/64",
		"127.0.0.1":            "127.0.0.1",
	}
	for in, want := range keys {
		if got := AddrKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("AddrKey(%s) = %s, want %s", in, got, want)
		}
	}
	if AddrKey(netip.Addr{}) != "unknown" {
		t.Error("invalid address")
	}
	e, err := ParseExempt([]string{"127.0.0.0/8", " 192.0.2.7", "fd00::/8", "::ffff:10.0.0.0/104"})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::ffff:127.0.0.1": true, "192.0.2.7": true, "192.0.2.8": false,
		"fd12::1": true, "fe80::1": false, "::1": false, "10.1.2.3": true, "11.0.0.1": false,
	} {
		if got := e.Contains(netip.MustParseAddr(ip)); got != want {
			t.Errorf("exempt %s = %v, want %v", ip, got, want)
		}
	}
	if e.String() != "127.0.0.0/8,192.0.2.7/32,fd00::/8,10.0.0.0/8" {
		t.Errorf("String() = %s", e.String())
	}
	for _, bad := range []string{"127.0.0.0/33", "localhost", "::ffff:10.0.0.0/8"} {
		if _, err := ParseExempt([]string{bad}); err == nil {
			t.Errorf("ParseExempt(%q) accepted", bad)
		}
	}
	var none Exempt
	if none.Contains(netip.MustParseAddr("127.0.0.1")) || none.String() != "none" {
		t.Error("no address is exempt by default")
	}
}

// TestPacerPatientSenderIsNeverAFlood: a sender that waits for each
// answer (Patient before each command) is slowed to the rate for as long
// as it keeps sending, and never told it floods.
func TestPacerPatientSenderIsNeverAFlood(t *testing.T) {
	c := newClock()
	p := NewPacer(10, 5, 2*time.Second)
	var held time.Duration
	for range 200 { // 20 s at the rate: ten flood periods
		p.Patient()
		wait, flood := p.Take(c.now(), 1)
		if flood {
			t.Fatalf("a patient sender was called a flood after %v held back", held)
		}
		held += wait
		c.add(wait)
	}
	if held < 15*time.Second {
		t.Fatalf("held back %v in all, want the sender slowed to the rate (about 19.5s)", held)
	}
	// The same sender pipelining (no Patient) is a flood again.
	for range 100 {
		wait, flood := p.Take(c.now(), 1)
		if flood {
			return
		}
		c.add(wait)
	}
	t.Fatal("a pipelining sender was never called a flood")
}

func TestPacerWouldWait(t *testing.T) {
	c := newClock()
	p := NewPacer(10, 5, 2*time.Second)
	if p.WouldWait(c.now(), 5) {
		t.Fatal("a full bucket would make the burst wait")
	}
	p.Take(c.now(), 5)
	if !p.WouldWait(c.now(), 1) {
		t.Fatal("an empty bucket would not make a command wait")
	}
	c.add(100 * time.Millisecond) // one token back
	if p.WouldWait(c.now(), 1) || !p.WouldWait(c.now(), 2) {
		t.Fatal("one token back: a command of 1 goes at once, one of 2 waits")
	}
	var off Pacer
	if off.WouldWait(c.now(), 100) {
		t.Fatal("a pacer with no rate would make a command wait")
	}
}

// TestAccountTurns: failures on one account from many addresses (each
// under its own limits) make attempts on that account take turns, growing
// apart up to AccountMaxDelay; a turn too far away is refused without
// reserving anything; the owner gets a turn once the queue has passed,
// and the failures expire with the window.
func TestAccountTurns(t *testing.T) {
	c := newClock()
	l := NewLogins(LoginPolicy{Free: 5, Lockout: 20, AddrLockout: 100, Window: 10 * time.Minute,
		BaseDelay: time.Second, MaxDelay: 8 * time.Second, MaxWait: 15 * time.Second,
		AccountFree: 3, AccountMaxDelay: 4 * time.Second})
	turn := func(want time.Duration, wantRefused bool) {
		t.Helper()
		wait, refused := l.AccountTurn("1000", c.now(), time.Hour)
		if wait != want || refused != wantRefused {
			t.Fatalf("AccountTurn = %v refused %v, want %v refused %v", wait, refused, want, wantRefused)
		}
	}
	for i := range 3 { // three addresses, one failure each: none of them is slowed on its own
		addr := fmt.Sprintf("192.0.2.%d", i)
		if wait, refused, _ := l.Before(addr, "1000", c.now()); wait != 0 || refused {
			t.Fatalf("address %s: wait %v refused %v", addr, wait, refused)
		}
		turn(0, false)
		l.Failed(addr, "1000", c.now())
	}
	// Now the account's attempts take turns, 1s apart (3 failures: base).
	turn(0, false)
	turn(time.Second, false)
	turn(2*time.Second, false)
	turn(3*time.Second, false)
	turn(4*time.Second, false)
	turn(5*time.Second, true) // too far: refused, nothing reserved
	turn(5*time.Second, true)
	if _, refused := l.AccountTurn("1001", c.now(), time.Hour); refused {
		t.Fatal("another account is slowed")
	}
	// More failures: the gap doubles, up to AccountMaxDelay.
	c.add(5 * time.Second)
	for range 4 {
		l.Failed("192.0.2.9", "1000", c.now())
	}
	turn(0, false)
	turn(4*time.Second, false) // 1s << 4, at most 4s
	turn(8*time.Second, true)
	// The owner, after the turns taken: its turn comes within the max.
	c.add(4 * time.Second)
	turn(4*time.Second, false)
	// A shorter limit (the login deadline) refuses sooner.
	if wait, refused := l.AccountTurn("1000", c.now(), time.Second); !refused || wait != 8*time.Second {
		t.Fatalf("with 1s left: wait %v refused %v", wait, refused)
	}
	// A success elsewhere does not reset the account; the window does.
	l.Succeeded("192.0.2.1", "1000")
	c.add(10 * time.Minute)
	turn(0, false)
	turn(0, false)
	l.Sweep(c.now())
	if n := l.Accounts(); n != 0 {
		t.Fatalf("%d accounts remembered after the window", n)
	}
}
