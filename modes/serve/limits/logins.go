package limits

import (
	"sync"
	"time"
)

// LoginPolicy says how failed logins are slowed and locked out.
type LoginPolicy struct {
	Free        int           // failures of an address on one account before attempts wait
	Lockout     int           // failures of an address on one account, within Window, that lock it out of that account
	AddrLockout int           // failures of an address on all accounts, within Window, that lock it out of every account
	Window      time.Duration // how long a failure counts
	BaseDelay   time.Duration // the wait after the first failure past the free ones; it doubles with each further one
	MaxDelay    time.Duration // the longest wait between two attempts
	MaxWait     time.Duration // an attempt that would wait longer is refused instead

	// The account queue (AccountTurn): failures on one account from any
	// address, so that guessing one account from many addresses is slowed.
	AccountFree     int           // failures on one account before its attempts queue; 0: no queue
	AccountMaxDelay time.Duration // the longest gap between two attempts on one account, and the longest wait for a turn
}

// Logins counts failed logins per source address and account, and per
// source address, and says whether the next attempt may be made now,
// after a wait, or not at all.
//
// An address is delayed on one account after Free failures within the
// window, and on every account after Lockout failures on all accounts
// together (a host trying a few passwords on many accounts). Each attempt
// past those reserves the next slot, BaseDelay << (failures beyond) after
// the previous one, at most MaxDelay: so attempts from many parallel
// connections queue one behind the other rather than run together.
type Logins struct {
	p     LoginPolicy
	mu    sync.Mutex
	pairs map[pairKey]*failures
	addrs map[string]*failures
	accts map[string]*failures // by account, from any address
}

type pairKey struct{ addr, account string }

// failures are the recent failures of one key, oldest first, and when its
// next attempt may run.
type failures struct {
	times []time.Time
	next  time.Time
}

// NewLogins returns an empty record under policy p. Zero Lockout or
// AddrLockout turns that lockout off.
func NewLogins(p LoginPolicy) *Logins {
	return &Logins{p: p, pairs: make(map[pairKey]*failures), addrs: make(map[string]*failures), accts: make(map[string]*failures)}
}

// prune drops the failures that are out of the window at now.
func (f *failures) prune(now time.Time, window time.Duration) int {
	n := 0
	for n < len(f.times) && now.Sub(f.times[n]) >= window {
		n++
	}
	if n > 0 {
		f.times = append(f.times[:0], f.times[n:]...)
	}
	return len(f.times)
}

// delay is the wait owed after n failures of which free are free.
func (l *Logins) delay(n, free int) time.Duration { return l.delayUpTo(n, free, l.p.MaxDelay) }

// delayUpTo is delay with another longest wait.
func (l *Logins) delayUpTo(n, free int, most time.Duration) time.Duration {
	if free <= 0 || n < free {
		return 0
	}
	d := l.p.BaseDelay
	for i := free; i < n && d < most; i++ {
		d *= 2
	}
	return min(d, most)
}

// AccountTurn is called before a password of account is checked, after
// Before, from any address. Once the account has AccountFree failures
// within the window, attempts on it take turns, each BaseDelay after the
// one before it, doubling with each further failure up to
// AccountMaxDelay, wherever they come from: it returns how long this one
// waits for its turn. An attempt whose turn is further away than most (at
// most AccountMaxDelay: others wait already) is refused with when to try
// again, reserving nothing. A right password waits its turn like any
// other (the server cannot know it before checking it): while an account
// is under attack its owner's logins are slowed too, by at most
// AccountMaxDelay each, never locked out.
func (l *Logins) AccountTurn(account string, now time.Time, most time.Duration) (wait time.Duration, refused bool) {
	if l.p.AccountFree <= 0 {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.accts[account]
	if f == nil {
		return 0, false
	}
	d := l.delayUpTo(f.prune(now, l.p.Window), l.p.AccountFree, l.p.AccountMaxDelay)
	if d == 0 {
		return 0, false
	}
	slot := now
	if f.next.After(slot) {
		slot = f.next
	}
	if wait = slot.Sub(now); wait > min(most, l.p.AccountMaxDelay) {
		return wait, true
	}
	f.next = slot.Add(d)
	return wait, false
}

// Before is called before a password of account is checked for a
// connection from addr. It returns how long that attempt must wait before
// the check, or refused with when to try again: the address is locked out
// (of this account, or of all), or its turn is further away than MaxWait.
// A refused attempt must not be checked and does not count.
func (l *Logins) Before(addr, account string, now time.Time) (wait time.Duration, refused bool, retry time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pair, byAddr := l.pairs[pairKey{addr, account}], l.addrs[addr]
	var np, na int
	if pair != nil {
		np = pair.prune(now, l.p.Window)
	}
	if byAddr != nil {
		na = byAddr.prune(now, l.p.Window)
	}
	if l.p.Lockout > 0 && np >= l.p.Lockout {
		return 0, true, pair.times[np-l.p.Lockout].Add(l.p.Window).Sub(now)
	}
	if l.p.AddrLockout > 0 && na >= l.p.AddrLockout {
		return 0, true, byAddr.times[na-l.p.AddrLockout].Add(l.p.Window).Sub(now)
	}
	dp, da := l.delay(np, l.p.Free), l.delay(na, l.p.Lockout)
	if dp == 0 && da == 0 {
		return 0, false, 0
	}
	slot := now
	if dp > 0 && pair.next.After(slot) {
		slot = pair.next
	}
	if da > 0 && byAddr.next.After(slot) {
		slot = byAddr.next
	}
	if wait = slot.Sub(now); wait > l.p.MaxWait {
		return 0, true, wait
	}
	if dp > 0 {
		pair.next = slot.Add(dp)
	}
	if da > 0 {
		byAddr.next = slot.Add(da)
	}
	return wait, false, 0
}

// Failed records a failed attempt at now.
func (l *Logins) Failed(addr, account string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := pairKey{addr, account}
	pair := l.pairs[k]
	if pair == nil {
		pair = new(failures)
		l.pairs[k] = pair
	}
	pair.add(now, max(l.p.Lockout, l.p.Free+16), l.delay(pair.prune(now, l.p.Window)+1, l.p.Free))
	byAddr := l.addrs[addr]
	if byAddr == nil {
		byAddr = new(failures)
		l.addrs[addr] = byAddr
	}
	byAddr.add(now, max(l.p.AddrLockout, l.p.Lockout+16), l.delay(byAddr.prune(now, l.p.Window)+1, l.p.Lockout))
	if l.p.AccountFree > 0 {
		acct := l.accts[account]
		if acct == nil {
			acct = new(failures)
			l.accts[account] = acct
		}
		acct.add(now, l.p.AccountFree+16, 0) // the turns are taken in AccountTurn
	}
}

// add records a failure at now, keeping at most keep of them (the
// newest), after which the next attempt waits at least wait.
func (f *failures) add(now time.Time, keep int, wait time.Duration) {
	if len(f.times) >= keep {
		f.times = append(f.times[:0], f.times[len(f.times)-keep+1:]...)
	}
	f.times = append(f.times, now)
	if wait > 0 && now.Add(wait).After(f.next) {
		f.next = now.Add(wait)
	}
}

// Succeeded forgets the failures of addr on account (not those of addr
// on all accounts: one good password must not excuse guessing others;
// nor those of the account from all addresses: its owner's login must
// not give guessers elsewhere a fresh start).
func (l *Logins) Succeeded(addr, account string) {
	l.mu.Lock()
	delete(l.pairs, pairKey{addr, account})
	l.mu.Unlock()
}

// Sweep forgets what no longer counts at now.
func (l *Logins) Sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, f := range l.pairs {
		if f.prune(now, l.p.Window) == 0 && !f.next.After(now) {
			delete(l.pairs, k)
		}
	}
	for k, f := range l.addrs {
		if f.prune(now, l.p.Window) == 0 && !f.next.After(now) {
			delete(l.addrs, k)
		}
	}
	for k, f := range l.accts {
		if f.prune(now, l.p.Window) == 0 && !f.next.After(now) {
			delete(l.accts, k)
		}
	}
}

// Accounts is how many accounts' failures are remembered.
func (l *Logins) Accounts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accts)
}

// Len is how many address-account pairs and addresses are remembered.
func (l *Logins) Len() (pairs, addrs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pairs), len(l.addrs)
}
