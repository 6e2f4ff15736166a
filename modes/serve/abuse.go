package serve

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/crypto/bcrypt"

	"qchat/modes/serve/limits"
	"qchat/modes/serve/store"
	"qchat/protocol"
)

// The server's side of the abuse limits and fairness shares: it asks the
// limits package, waits on the asking session's own goroutine, answers the
// client and logs. Each limit that ends a connection has a reason of its
// own (BYE and the log).
const (
	reasonFlood        = "flood"              // kept sending faster than --msg-rate for --flood-after
	reasonLoginLocked  = "login-locked"       // too many failed logins from this address
	reasonRegLimit     = "reg-limit"          // too many registrations from this address or on the server
	reasonUnauthAddr   = "unauth-addr-limit"  // too many connections not logged in from this address
	reasonUnauth       = "unauth-limit"       // too many connections not logged in on the server
	reasonLoginAccount = "login-account-busy" // the account's turns are taken: try again later (a log reason, no BYE)
	reasonRelayLimit   = "relay-limit"        // too many relayed links of a user or address (a log reason, no BYE)
)

// Limits are the abuse limits and fairness shares of `qchat serve`; a zero
// value turns a limit off.
type Limits struct {
	Exempt           limits.Exempt // addresses no limit applies to (--limits-exempt)
	MsgRate          float64       // tokens a session gains per second (--msg-rate)
	MsgBurst         int           // tokens a session may spend at once (--msg-burst)
	FloodAfter       time.Duration // held back this long without a break: disconnected (--flood-after)
	LoginFree        int           // failures of an address on one account before logins wait (--login-free)
	LoginLockout     int           // failures of an address on one account that lock it out (--login-lockout)
	LoginAddrLockout int           // failures of an address on all accounts that lock it out (--login-addr-lockout)
	LoginWindow      time.Duration // how long a failure counts (--login-window)
	LoginDelay       time.Duration // the wait after the first failure past LoginFree; it doubles with each further one
	LoginMaxDelay    time.Duration // the longest wait between two attempts
	LoginMaxWait     time.Duration // a login that would wait longer is refused
	LoginAccountFree int           // failures on one account, from any address, before its logins take turns (--login-account-free)
	LoginAccountMax  time.Duration // the longest gap between turns on one account, and the longest wait for one (--login-account-max-delay)
	RegPerAddr       int           // registrations per address per regWindow (--reg-per-addr)
	RegPerMinute     int           // registrations per minute on the server (--reg-per-minute)
	MaxUnauthPerAddr int           // connections not logged in, per address (--max-unauth-per-addr)
	MaxUnauth        int           // connections not logged in, in all (--max-unauth)
	QueueShare       int           // items one sender may have waiting for one recipient (--queue-share)
	RelayPerUser     int           // relayed links (sides) of one user at once (--relay-per-user; 0: no cap)
	RelayPerAddr     int           // relayed links (sides) from one address at once (--relay-per-addr; 0: no cap)
	PresenceInterval time.Duration // presence changes go out in one batch per interval (--presence-interval, announce.go)
}

// DefaultLimits are the limits of `qchat serve` without flags.
func DefaultLimits() Limits {
	return Limits{
		MsgRate: 50, MsgBurst: 500, FloodAfter: 10 * time.Second,
		LoginFree: 5, LoginLockout: 20, LoginAddrLockout: 100, LoginWindow: 10 * time.Minute,
		LoginDelay: time.Second, LoginMaxDelay: 8 * time.Second, LoginMaxWait: 15 * time.Second,
		LoginAccountFree: 10, LoginAccountMax: time.Minute,
		RegPerAddr: 10, RegPerMinute: 60,
		MaxUnauthPerAddr: 16, MaxUnauth: 1024,
		QueueShare: 1000, PresenceInterval: time.Second,
		RelayPerUser: 8, RelayPerAddr: 16,
	}
}

// Fixed parts of the limits.
const (
	regWindow       = 10 * time.Minute // --reg-per-addr counts per this
	refusalLogEvery = 10 * time.Second // one log line per limit and address per this
	passwdCost      = 50               // PASSWD hashes twice: it costs this many tokens
)

// verbCost is what a command costs a session's pacer: commands that reach
// other users or write to the store. A group post costs one token per copy
// it makes (msgGroup charges the rest). The others (LIST, INFO, FIND, ACK,
// PING, HELP, ...) cost nothing: they only answer the asker, and a client
// that does not read the answers is cut off as a slow consumer.
var verbCost = map[string]int{
	"MSG": 1, "NUDGE": 1, "CHAT": 1, "FILE": 1, "PUT": 1, "GET": 1, "DROP": 1,
	"ADD": 1, "ACCEPT": 1, "REJECT": 1, "REMOVE": 1, "BLOCK": 1, "UNBLOCK": 1,
	"CREATE": 1, "JOIN": 1, "INVITE": 1, "LEAVE": 1, "KICK": 1,
	"SET": 1, "AWAY": 1, "BACK": 1, "PASSWD": passwdCost,
}

// comparePassword checks a password against a hash; tests count its calls.
var comparePassword = bcrypt.CompareHashAndPassword

// serverLimits is the server's shared state of the limits.
type serverLimits struct {
	cfg    Limits
	logins *limits.Logins
	regs   *limits.Registrations
	conns  *limits.Conns
	logged *limits.Every[string] // refusals logged lately, by limit and address
	quit   chan struct{}         // closed at shutdown: waiting sessions stop waiting

	// dummyHash is checked when USER named nobody: a hash of the
	// configured cost, so that an unknown user costs the same work as a
	// wrong password.
	dummyHash []byte
}

func newServerLimits(cfg Config) (*serverLimits, error) {
	l := cfg.Limits
	var pw [24]byte
	rand.Read(pw[:])
	dummy, err := bcrypt.GenerateFromPassword(fmt.Appendf(nil, "%x", pw), cfg.HashCost)
	if err != nil {
		return nil, fmt.Errorf("hash cost %d: %w", cfg.HashCost, err)
	}
	return &serverLimits{
		cfg: l,
		logins: limits.NewLogins(limits.LoginPolicy{
			Free: l.LoginFree, Lockout: l.LoginLockout, AddrLockout: l.LoginAddrLockout, Window: l.LoginWindow,
			BaseDelay: l.LoginDelay, MaxDelay: l.LoginMaxDelay, MaxWait: l.LoginMaxWait,
			AccountFree: l.LoginAccountFree, AccountMaxDelay: l.LoginAccountMax,
		}),
		regs:      limits.NewRegistrations(l.RegPerAddr, regWindow, l.RegPerMinute),
		conns:     limits.NewConns(l.MaxUnauthPerAddr, l.MaxUnauth),
		logged:    limits.NewEvery[string](refusalLogEvery),
		quit:      make(chan struct{}),
		dummyHash: dummy,
	}, nil
}

// logLimits says at start which limits are on (item 10 of issue 9: a
// server never runs with a weak setup by accident).
func (srv *Server) logLimits() {
	l := srv.cfg.Limits
	srv.log.Info("limits",
		"exempt", l.Exempt.String(),
		"msg_rate", l.MsgRate, "msg_burst", l.MsgBurst, "flood_after", l.FloodAfter,
		"login_free", l.LoginFree, "login_lockout", l.LoginLockout, "login_addr_lockout", l.LoginAddrLockout,
		"login_account_free", l.LoginAccountFree, "login_account_max_delay", l.LoginAccountMax,
		"relay_per_user", l.RelayPerUser, "relay_per_addr", l.RelayPerAddr,
		"login_window", l.LoginWindow, "hash_cost", srv.cfg.HashCost,
		"reg_per_addr_10m", l.RegPerAddr, "reg_per_minute", l.RegPerMinute,
		"max_unauth_per_addr", l.MaxUnauthPerAddr, "max_unauth", l.MaxUnauth,
		"queue_share", l.QueueShare, "max_queue", srv.cfg.MaxQueue,
		"presence", srv.cfg.Presence, "presence_interval", l.PresenceInterval)
	if l.MsgRate <= 0 || l.LoginLockout <= 0 || l.MaxUnauthPerAddr <= 0 || l.RegPerAddr <= 0 {
		srv.log.Warn("some abuse limits are off (a zero flag)")
	}
	for _, p := range l.Exempt {
		if p.Bits() == 0 {
			srv.log.Warn("every address is exempt from the limits", "exempt", p.String())
		}
	}
}

// sessionLimits is a session's part of the limits. Only its read loop
// touches it, apart from exempt, which is fixed before the loop starts.
type sessionLimits struct {
	addr    string       // the source address's key (limits.AddrKey)
	exempt  bool         // from a --limits-exempt address
	slot    *limits.Slot // its place among the connections not logged in; nil when it holds none
	account string       // the account USER named, as the login limits know it
	pace    limits.Pacer
	notes   limits.Bucket // READ and TYPING: their own budget (receipts.go)
}

// remoteIP is the address a connection comes from.
func remoteIP(conn net.Conn) netip.Addr {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	ap, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
	return ap.Addr().Unmap()
}

// admit counts a new connection among those not logged in, or refuses it
// (421 and BYE instead of the greeting) without waiting for it: the
// accept loop goes on at once. Past --max-unauth in all it closes the
// oldest connection not logged in (BYE unauth-limit) instead of refusing
// the new one; past --max-unauth-per-addr it refuses the new one. Runs on
// the accept loop only.
func (srv *Server) admit(conn net.Conn) (sessionLimits, bool) {
	ip := remoteIP(conn)
	l := srv.cfg.Limits
	sl := sessionLimits{addr: limits.AddrKey(ip), exempt: l.Exempt.Contains(ip)}
	if sl.exempt {
		return sl, true
	}
	sl.pace = limits.NewPacer(l.MsgRate, l.MsgBurst, l.FloodAfter)
	sl.notes = limits.NewBucket(noteRate, noteBurst)
	slot, evicted, err := srv.lim.conns.Admit(sl.addr)
	if err == nil {
		sl.slot = slot
		if evicted != nil {
			if old, ok := evicted.Owner.(*session); ok {
				// The oldest connection not logged in makes room for this one.
				srv.logRefusal(reasonUnauth, old.lim.addr, "oldest connection not logged in closed", "conn", old.id, "remote", old.remote)
				old.close(reasonUnauth, "too many connections not logged in: the oldest is closed")
			}
		}
		return sl, true
	}
	reason := reasonUnauth
	if err == limits.ErrAddrFull {
		reason = reasonUnauthAddr
	}
	srv.logRefusal(reason, sl.addr, "connection refused", "remote", conn.RemoteAddr().String())
	go func() {
		line := protocol.AppendReply(nil, "", protocol.CodeUnavailable, false, err.Error()+"; try later")
		line = protocol.AppendEvent(line, "BYE", reason, err.Error())
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		conn.Write(line)
		conn.Close()
	}()
	return sl, false
}

// logRefusal logs a refusal by a limit, at most once per limit and address
// per refusalLogEvery (a flood must not flood the log).
func (srv *Server) logRefusal(reason, addr, msg string, args ...any) {
	if srv.lim.logged.Allow(reason+" "+addr, time.Now()) {
		srv.log.Warn(msg, append([]any{"reason", reason, "addr", addr}, args...)...)
	}
}

// releaseUnauth gives back the session's place among the connections not
// logged in: at login, or when it closes.
func (s *session) releaseUnauth() {
	if s.lim.slot != nil {
		s.srv.lim.conns.Release(s.lim.slot)
		s.lim.slot = nil
	}
}

// wait holds the session's read loop for d (fakelag): what it reads next
// waits, nobody else does. False when the session closed meanwhile.
func (s *session) wait(d time.Duration) bool {
	s.releaseHeld() // never hold group copies back while waiting
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.srv.lim.quit:
	}
	return !s.closed.Load()
}

// paced charges a logged-in session's command to its pacer and waits when
// the session is over its rate. False: the command must not run (the
// session is closing, for flooding or otherwise).
func (s *session) paced(c *protocol.Command) bool {
	return s.pay(c.Tag, verbCost[c.Verb])
}

// sentAhead reports whether the sender has said more than the command
// being handled: a whole line waiting in the line reader, or bytes not yet
// read in the kernel's receive queue. One that waits for each answer has
// neither. (Checking the reader alone misjudged a flooder whenever a read
// happened to end at a line's end.)
func (s *session) sentAhead() bool {
	return bytes.IndexByte(s.rd.Buffered(), '\n') >= 0 || unreadBytes(s.raw) > 0
}

// pay charges cost tokens, waiting if need be; see paced.
func (s *session) pay(tag string, cost int) bool {
	if s.lim.exempt || cost <= 0 {
		return true
	}
	now := time.Now()
	if s.lim.pace.WouldWait(now, cost) && !s.sentAhead() {
		// Nothing behind this command: the sender waits for our answers
		// (a piped chat, a person). Pace it, never call it a flood.
		s.lim.pace.Patient()
	}
	wait, flood := s.lim.pace.Take(now, cost)
	if flood {
		l := s.srv.cfg.Limits
		s.replyf(tag, protocol.CodeRateLimit, "flooding: over %g a second for %s; disconnected", l.MsgRate, l.FloodAfter)
		s.srv.logRefusal(reasonFlood, s.lim.addr, "flood", "conn", s.id, "user", s.loggedIn())
		s.close(reasonFlood, fmt.Sprintf("sent faster than %g a second for %s", l.MsgRate, l.FloodAfter))
		return false
	}
	return wait <= 0 || s.wait(wait)
}

// loginKey is the account a login attempt counts against: the account's
// id when it exists, else the name as given (so an unknown name is limited
// exactly like a known one, and the limits tell nothing about which it is).
func loginKey(a *account, name string) string {
	if a != nil {
		return idStr(a.id)
	}
	if id, ok := protocol.ParseID(name); ok {
		return idStr(id)
	}
	return "?" + store.NickKey(name)
}

// loginAllowed runs before a password is checked: it waits the session's
// turn when its address has failed too often, or refuses and closes when
// the address is locked out. With queue (a password, not a token) it
// then waits the account's turn when the account has failed too often
// from anywhere (limits.Logins.AccountTurn), or refuses this attempt
// (452, the connection stays) when that turn is too far away. False: do
// not check the password.
func (s *session) loginAllowed(tag string, queue bool) bool {
	if s.lim.exempt {
		return true
	}
	wait, refused, retry := s.srv.lim.logins.Before(s.lim.addr, s.lim.account, time.Now())
	if refused {
		retry = retry.Round(time.Second)
		s.replyf(tag, protocol.CodeRateLimit, "too many failed logins from your address; try again in %s", retry)
		s.srv.logRefusal(reasonLoginLocked, s.lim.addr, "login refused", "conn", s.id, "retry_in", retry)
		s.close(reasonLoginLocked, "too many failed logins; try again in "+retry.String())
		return false
	}
	if wait > 0 && !s.wait(wait) {
		return false
	}
	if !queue {
		return true
	}
	now := time.Now()
	left := s.start.Add(s.srv.cfg.LoginTimeout).Sub(now) // a turn after the login deadline is no turn
	wait, refused = s.srv.lim.logins.AccountTurn(s.lim.account, now, left)
	if refused {
		retry = max(wait.Round(time.Second), time.Second)
		s.replyf(tag, protocol.CodeRateLimit, "too many failed logins on this account; try again in %s", retry)
		s.srv.logRefusal(reasonLoginAccount, s.lim.account, "login refused", "conn", s.id, "addr", s.lim.addr, "retry_in", retry)
		return false
	}
	return wait <= 0 || s.wait(wait)
}

// loginFailed records a wrong password (or an unknown user).
func (s *session) loginFailed() {
	if !s.lim.exempt {
		s.srv.lim.logins.Failed(s.lim.addr, s.lim.account, time.Now())
	}
}

// loginSucceeded forgets the address's failures on the account and gives
// back its place among the connections not logged in.
func (s *session) loginSucceeded() {
	if !s.lim.exempt {
		s.srv.lim.logins.Succeeded(s.lim.addr, s.lim.account)
	}
	s.releaseUnauth()
}

// regAllowed takes one registration from the session's address, or
// refuses (452) and closes. False: do not register.
func (s *session) regAllowed(tag string) bool {
	if s.lim.exempt {
		return true
	}
	which, retry := s.srv.lim.regs.Allow(s.lim.addr, time.Now())
	if which == limits.RegAllowed {
		return true
	}
	retry = max(retry.Round(time.Second), time.Second)
	text := "too many registrations from your address"
	if which == limits.RegGlobal {
		text = "too many registrations on this server"
	}
	s.replyf(tag, protocol.CodeRateLimit, "%s; try again in %s", text, retry)
	s.srv.logRefusal(reasonRegLimit, s.lim.addr, "registration refused", "conn", s.id, "why", text)
	s.close(reasonRegLimit, text)
	return false
}

// sweepLimits forgets what no longer counts. Called by the sweeper.
func (srv *Server) sweepLimits(now time.Time) {
	srv.lim.logins.Sweep(now)
	srv.lim.regs.Sweep(now)
	srv.lim.logged.Sweep(now)
}
