package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"qchat/protocol"
)

// Resumption tokens (PROTOCOL.md section 3): after a login with the
// password, a client asks for a token and keeps it in memory; when it
// reconnects it logs in with the token, which costs the server one HMAC
// instead of a password hash. Session does this by itself.

// Token is a resumption token and when it expires.
type Token struct {
	Value   string
	Expires time.Time
}

// CanResume reports whether the server gives resumption tokens (its
// greeting says "resume").
func (c *Client) CanResume() bool { return c.resume }

// Token asks the server for a resumption token for the logged-in user.
func (c *Client) Token(ctx context.Context) (Token, error) {
	r, err := c.Do(ctx, "TOKEN")
	if err != nil {
		return Token{}, err
	}
	return parseToken(r)
}

// Resume logs in with a resumption token. A token the server no longer
// takes (expired, or the password changed) fails like a wrong password
// (535): log in with the password then.
func (c *Client) Resume(ctx context.Context, token string) (User, error) {
	r, err := c.Do(ctx, "RESUME", token)
	if err != nil {
		return User{}, err
	}
	return c.loggedIn(r)
}

// parseToken reads the reply to TOKEN: "231 <token> <expires>".
func parseToken(r Reply) (Token, error) {
	f := strings.Fields(r.Text)
	if r.Code != protocol.CodeToken || len(f) != 2 {
		return Token{}, fmt.Errorf("TOKEN: unexpected reply %d %q", r.Code, protocol.Clip(r.Text, 40))
	}
	exp, err := protocol.ParseTime(f[1])
	if err != nil {
		return Token{}, fmt.Errorf("TOKEN: unexpected expiry %q", protocol.Clip(f[1], 40))
	}
	return Token{Value: f[0], Expires: exp}, nil
}

// loginWith logs cl in: with a token when the session has one the
// server may take, else (or when the server refuses it) with the
// password. how says which worked.
func (s *Session) loginWith(ctx context.Context, cl *Client, user, pw string) (me User, how string, err error) {
	s.mu.Lock()
	tok, own := s.tokenForLocked(cl.addr)
	s.mu.Unlock()
	if cl.CanResume() && tok.Value != "" {
		me, err = cl.Resume(ctx, tok.Value)
		var pe *protocol.Error
		switch {
		case err == nil:
			s.forgetToken(tok) // good for one login: spent now (keepToken asks for the next)
			return me, "token", nil
		case !errors.As(err, &pe) || pe.Code != protocol.CodeLoginFailed:
			return User{}, "", err
		}
		s.mu.Lock()
		switch {
		case !own:
			// Another node's token: this one has a resumption key of
			// its own. Its own tokens from now on, the password now.
			if s.noForeign == nil {
				s.noForeign = make(map[string]bool)
			}
			s.noForeign[cl.addr] = true
		case s.tokens[cl.addr] == tok:
			delete(s.tokens, cl.addr) // refused (used already, the password changed, or a new server key): forget it
		}
		s.mu.Unlock()
	}
	me, err = cl.Login(ctx, user, pw)
	return me, "password", err
}

// forgetToken drops tok wherever it is kept: a token is good for one
// login (the server spends it), so once presented it is never shown again.
func (s *Session) forgetToken(tok Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, t := range s.tokens {
		if t == tok {
			delete(s.tokens, a)
		}
	}
}

// tokenForLocked is the token to present to the server at addr: the one
// it gave (own), else the freshest one another server of the list gave,
// unless addr refused one before. Nodes that share their resumption key
// take each other's tokens; a node that does not refuses it once (535,
// counted as one failed login by its limits) and gets the password.
func (s *Session) tokenForLocked(addr string) (tok Token, own bool) {
	now := s.clock.Now()
	if t, ok := s.tokens[addr]; ok && now.Before(t.Expires) {
		return t, true
	}
	if s.noForeign[addr] {
		return Token{}, false
	}
	for a, t := range s.tokens {
		if a != addr && now.Before(t.Expires) && t.Expires.After(tok.Expires) {
			tok = t
		}
	}
	return tok, false
}

// keepToken asks cl for a fresh resumption token now, and again each time
// the one held is half way to its expiry, until cl ends. Tokens are kept
// in memory only, like the password.
func (s *Session) keepToken(cl *Client) {
	if !cl.CanResume() {
		return
	}
	for {
		got := make(chan Token, 1)
		err := cl.Go("TOKEN", nil, func(r Reply, err error) {
			if err == nil {
				if t, err := parseToken(r); err == nil {
					got <- t
				}
			}
			close(got)
		})
		if err != nil {
			return
		}
		var t Token
		select {
		case t = <-got:
		case <-cl.Done():
			return
		}
		if t.Value == "" {
			return // a server that refused: no tokens on this connection
		}
		s.mu.Lock()
		if s.tokens == nil {
			s.tokens = make(map[string]Token)
		}
		s.tokens[cl.addr] = t
		s.mu.Unlock()
		half := t.Expires.Sub(s.clock.Now()) / 2
		select {
		case <-s.clock.After(max(half, time.Minute)):
		case <-cl.Done():
			return
		}
	}
}
