package serve

import (
	"context"
	"errors"

	"golang.org/x/crypto/bcrypt"
)

// Password hashes follow --hash-cost: a hash made at another cost (the
// admin raised it since, or lowered it for a bench) is made again at the
// configured cost the next time its user logs in with the password, the
// only moment the server knows the password. A changed hash revokes the
// account's resumption tokens (they are bound to the hash): each of its
// devices logs in once more with the password.

// errHashChanged is a hash that changed between its check and its
// replacement (a PASSWD won the race): the replacement is dropped.
var errHashChanged = errors.New("password hash changed meanwhile")

// rehash replaces the hash of a (snap, checked just now against pw) with
// one at --hash-cost when its cost differs, and updates snap. It runs on
// the read loop and blocks for one bcrypt hash; a failure is logged and
// the login goes on with the old hash.
func (s *session) rehash(a *account, snap *account, pw string) {
	cost, err := bcrypt.Cost([]byte(snap.pwhash))
	if err != nil || cost == s.srv.cfg.HashCost {
		return
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), s.srv.cfg.HashCost)
	if err == nil {
		err = s.srv.setPassword(a, snap.pwhash, string(hash))
	}
	if err != nil {
		s.srv.log.Warn("password hash not renewed", "conn", s.id, "user", snap.id, "cost", cost, "hash_cost", s.srv.cfg.HashCost, "err", err)
		return
	}
	snap.pwhash = string(hash)
	s.srv.log.Info("password hash renewed", "conn", s.id, "user", snap.id, "cost", cost, "hash_cost", s.srv.cfg.HashCost)
}

// setPassword stores hash as a's password hash, in the store and then in
// memory. With was not "", only while a's hash is still was
// (errHashChanged otherwise).
func (srv *Server) setPassword(a *account, was, hash string) error {
	srv.pwMu.Lock()
	defer srv.pwMu.Unlock()
	if was != "" && srv.dir.snapshot(a).pwhash != was {
		return errHashChanged
	}
	if err := srv.store.SetPassword(context.Background(), a.id, hash); err != nil {
		return err
	}
	srv.dir.update(a, func(a *account) { a.pwhash = hash })
	return nil
}
