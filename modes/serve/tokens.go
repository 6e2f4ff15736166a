package serve

import (
	"context"
	"errors"
	"time"

	"qchat/modes/serve/resume"
	"qchat/modes/serve/store"
	"qchat/protocol"
)

// Resumption tokens (modes/serve/resume): after a login with its
// password, a client asks for a token (TOKEN) and keeps it in memory; when
// it reconnects it logs in with the token (RESUME), which costs the server
// one HMAC instead of a bcrypt comparison. A server restarting with ten
// thousand clients then spends milliseconds on their logins, not minutes,
// while a first login (and any login without a token) keeps the strong
// hash and its limits.

// extensions are the words after "qchat/1 ready" in the greeting.
func (srv *Server) extensions() string {
	// cid: MSG takes client ids; ackto: ACK ..<msgid>; receipts: READ,
	// TYPING and their events; resume: TOKEN and RESUME; history: HISTORY
	ext := "cid ackto receipts"
	if srv.tokens != nil {
		ext += " resume"
	}
	if srv.po.arch != nil {
		ext += " history"
	}
	return ext
}

// errNoTokens answers TOKEN and RESUME on a server with --resume-ttl 0.
var errNoTokens = protocol.Errorf(protocol.CodeNotYet, "this server gives no resumption tokens (serve --resume-ttl 0): log in with USER and PASS")

// RESUME <token>
//
// Logs in like USER and PASS, with a token TOKEN gave, once: a token is
// spent by the login it makes. A token that is expired, forged, revoked
// (the password changed since) or used already gets 535 like a wrong
// password, and the client logs in with its password instead; all but an
// expired one count as a failed login for the limits.
func (s *session) cmdResume(c *protocol.Command) error {
	switch {
	case s.srv.tokens == nil:
		return errNoTokens
	case s.loggedIn() != 0:
		return protocol.Errorf(protocol.CodeSequence, "already logged in")
	}
	s.pending, s.userSent = nil, false
	token := c.Args[0]
	s.lim.account = "?" // counts like a login as someone: a wrong token like a wrong password
	if id, _, ok := cutID(token); ok {
		s.lim.account = idStr(id)
	}
	// A token is not queued behind guesses at the account's password
	// (AccountTurn): it cannot be guessed, and its owner's devices get back
	// in while the account is under attack.
	if !s.loginAllowed(c.Tag, false) {
		return nil
	}
	var snap account
	user, err := s.srv.tokens.Check(token, func(id int64) (string, bool) {
		a := s.srv.dir.byId(id)
		if a == nil {
			return "", false
		}
		snap = s.srv.dir.snapshot(a)
		return snap.pwhash, true
	}, time.Now())
	if err != nil && !errors.Is(err, resume.ErrExpired) && !errors.Is(err, resume.ErrForged) &&
		!errors.Is(err, resume.ErrMalformed) && !errors.Is(err, resume.ErrReplayed) {
		return err // the file of spent tokens: a server error, not a wrong token
	}
	if err != nil {
		if !errors.Is(err, resume.ErrExpired) {
			s.failures++
			s.loginFailed()
		}
		s.srv.log.Info("login failed", "conn", s.id, "remote", s.remote, "with", "token", "err", err, "failures", s.failures)
		s.replyf(c.Tag, protocol.CodeLoginFailed, "login incorrect")
		if s.failures >= maxAuthFailures {
			s.close(reasonAuthFailures, "too many failed logins")
		}
		return nil
	}
	if user != snap.id {
		return errors.New("resumption token: checked another account than it names")
	}
	s.loginAs(c.Tag, snap, "token")
	return nil
}

// cutID reads the user id a token starts with.
func cutID(token string) (int64, string, bool) {
	for i := 0; i < len(token); i++ {
		if token[i] == '.' {
			id, ok := protocol.ParseID(token[:i])
			return id, token[i+1:], ok
		}
	}
	return 0, "", false
}

// TOKEN
//
// Answered "231 <token> <expires>": a resumption token for the logged-in
// account, good for one RESUME until expires (--resume-ttl after now) or
// until its password changes.
func (s *session) cmdToken(c *protocol.Command) error {
	if s.srv.tokens == nil {
		return errNoTokens
	}
	a := s.srv.dir.byId(s.loggedIn())
	if a == nil {
		return store.ErrNoUser
	}
	snap := s.srv.dir.snapshot(a)
	token, expires := s.srv.tokens.Mint(snap.id, snap.pwhash, time.Now())
	s.replyf(c.Tag, protocol.CodeToken, "%s %s", token, protocol.FormatTime(expires))
	return nil
}

// shareTokens makes this node of a cluster spend tokens in the database
// the nodes share (store.SpendToken) as well as in its own file: a token
// is good for one login on any node (the nodes share resume.key, so each
// would take it). Tokens past their expiry are forgotten there hourly.
func (srv *Server) shareTokens() {
	st := srv.store
	srv.tokens.Share(func(id string, exp int64) (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return st.SpendToken(ctx, id, time.Unix(exp, 0))
	})
	go func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-srv.lim.quit:
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := st.PruneTokens(ctx, time.Now()); err != nil {
				srv.log.Warn("cluster: prune spent tokens", "err", err)
			}
			cancel()
		}
	}()
}
