// Package resume mints and checks resumption tokens: the proof that a
// client logged in with its password lately, which it presents instead of
// the password when it reconnects (RESUME). A server restarting with ten
// thousand clients reconnecting must not run the password hash ten
// thousand times (bcrypt at the default cost is about 100 ms of CPU each):
// a token costs the server one HMAC-SHA256 to check (about a microsecond),
// while first logins keep the strong hash.
//
// A token is "<user>.<expires>.<nonce>.<mac>": the user id, the Unix time
// it expires, 96 random bits (unpadded base64url) and the first 16 bytes
// of HMAC-SHA256(key, "qchat-resume-v2", user, expires, nonce, the
// account's password hash) in unpadded base64url. The key is 32 random
// bytes in the data folder (resume.key), so tokens outlive a restart;
// deleting the file revokes every token. Binding the password hash
// revokes a user's tokens when its password changes, without storing
// anything per token. A token says nothing secret (id and expiry are
// readable), and proves only what its MAC proves.
//
// A token is good for one login: Check spends its nonce, and a token
// whose nonce is spent is refused (ErrReplayed), so one that was seen on
// its way (or taken from a client's memory) after its owner used it is
// worth nothing. Spent nonces are kept until their token would have
// expired, in memory and in resume.spent in the data folder (appended
// before a token is taken, so that a restart does not make a spent token
// good again).
//
// It owns the key file, the file of spent nonces and the token format. It
// must not know sessions, accounts or the wire: the caller says whose
// password hash a user id has.
package resume

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// KeyFile is the key's file in the data folder.
const KeyFile = "resume.key"

// SpentFile is the file of spent nonces in the data folder: one
// "<expires-unix> <user>.<nonce>" line each.
const SpentFile = "resume.spent"

// nonceLen is the random bytes of a token's nonce: 96 bits.
const nonceLen = 12

// macLen is the bytes of the MAC a token carries: 128 bits.
const macLen = 16

// MaxLen bounds a token's length: two int64 in decimal, the nonce, the
// MAC, three dots.
const MaxLen = 20 + 1 + 20 + 1 + 16 + 1 + 22

// Errors of Check.
var (
	ErrMalformed = errors.New("not a resumption token")
	ErrExpired   = errors.New("resumption token expired")
	ErrForged    = errors.New("resumption token not valid") // a wrong MAC, an unknown user, or revoked by a password change
	ErrReplayed  = errors.New("resumption token already used")
)

// Keys mints and checks tokens with one key. Safe for concurrent use.
type Keys struct {
	key []byte
	ttl time.Duration

	mu     sync.Mutex
	spent  map[string]int64                         // "<user>.<nonce>" → when its token expires (unix)
	shared func(id string, exp int64) (bool, error) // Share; nil for none
	file   *os.File                                 // SpentFile, appended to
	pruned int64                                    // unix time of the last pruning of spent
}

// Open loads the key from dir (the data folder), making a new one on first
// use, and returns keys minting tokens that last ttl.
func Open(dir string, ttl time.Duration) (*Keys, error) {
	path := filepath.Join(dir, KeyFile)
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, 32)
		rand.Read(key)
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, key, 0o600); err != nil {
			return nil, fmt.Errorf("resumption key: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("resumption key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("resumption key: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("resumption key %s: %d bytes, want 32 (delete it to make a new one: every token is then refused)", path, len(key))
	}
	k := &Keys{key: key, ttl: ttl}
	if err := k.openSpent(filepath.Join(dir, SpentFile), time.Now()); err != nil {
		return nil, err
	}
	return k, nil
}

// openSpent reads the spent nonces of tokens not yet expired and writes
// the file again with only those, then keeps it open for appending.
func (k *Keys) openSpent(path string, now time.Time) error {
	k.spent = make(map[string]int64)
	k.pruned = now.Unix()
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			exp, id, ok := strings.Cut(sc.Text(), " ")
			e, err := strconv.ParseInt(exp, 10, 64)
			if ok && err == nil && e > now.Unix() {
				k.spent[id] = e
			}
		}
		err := sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("spent resumption tokens: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spent resumption tokens: %w", err)
	}
	var b []byte
	for id, e := range k.spent {
		b = fmt.Appendf(b, "%d %s\n", e, id)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("spent resumption tokens: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("spent resumption tokens: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spent resumption tokens: %w", err)
	}
	k.file = f
	return nil
}

// Close closes the file of spent nonces.
func (k *Keys) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.file == nil {
		return nil
	}
	err := k.file.Close()
	k.file = nil
	return err
}

// TTL is how long a token lasts.
func (k *Keys) TTL() time.Duration { return k.ttl }

// Mint returns a new token for user, whose password hash is secret,
// valid from now for the keys' ttl (to the second), for one login.
func (k *Keys) Mint(user int64, secret string, now time.Time) (token string, expires time.Time) {
	expires = now.Add(k.ttl).Truncate(time.Second)
	var nonce [nonceLen]byte
	rand.Read(nonce[:])
	head := strconv.FormatInt(user, 10) + "." + strconv.FormatInt(expires.Unix(), 10) + "." + base64.RawURLEncoding.EncodeToString(nonce[:])
	return head + "." + base64.RawURLEncoding.EncodeToString(k.mac(head, secret)), expires
}

// Check returns the user a token is for when it is valid at now, and
// spends it: the same token is refused from then on (ErrReplayed), also
// after a restart. secretOf gives a user's password hash (false: no such
// user). It computes one HMAC, and none for a token that is malformed or
// expired; a valid token costs one append to the file of spent nonces
// (an error there refuses the token).
func (k *Keys) Check(token string, secretOf func(user int64) (string, bool), now time.Time) (int64, error) {
	user, exp, spend, err := k.verify(token, secretOf, now)
	if err != nil {
		return 0, err
	}
	if err := k.spend(spend, exp, now); err != nil {
		return 0, err
	}
	return user, nil
}

// Share makes every spend ask fn too, after this server's own record:
// fn records id (of a token expiring at exp, unix) where other servers
// see it, and says whether this was its first use. The nodes of a
// cluster share their database so (store.SpendToken): a token is good for
// one login on any of them.
func (k *Keys) Share(fn func(id string, exp int64) (first bool, err error)) {
	k.mu.Lock()
	k.shared = fn
	k.mu.Unlock()
}

// spend marks id ("<user>.<nonce>", of a token expiring at exp) spent, or
// returns ErrReplayed when it was.
func (k *Keys) spend(id string, exp int64, now time.Time) error {
	k.mu.Lock()
	_, used := k.spent[id]
	shared := k.shared
	k.mu.Unlock()
	if used {
		return ErrReplayed
	}
	if shared != nil { // not under k.mu: a round trip to the database
		first, err := shared(id, exp)
		if err != nil {
			return fmt.Errorf("spent resumption tokens: %w", err)
		}
		if !first {
			return ErrReplayed
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.spent[id]; ok { // spent here meanwhile
		return ErrReplayed
	}
	if k.file == nil {
		return errors.New("resumption tokens: closed")
	}
	if _, err := fmt.Fprintf(k.file, "%d %s\n", exp, id); err != nil {
		return fmt.Errorf("spent resumption tokens: %w", err)
	}
	k.spent[id] = exp
	if t := now.Unix(); t-k.pruned >= 3600 { // forget what expired, hourly (the file: at the next start)
		k.pruned = t
		for id, e := range k.spent {
			if e <= t {
				delete(k.spent, id)
			}
		}
	}
	return nil
}

// verify checks token's format, expiry and MAC, and returns its user,
// expiry and the id it is spent by.
func (k *Keys) verify(token string, secretOf func(user int64) (string, bool), now time.Time) (user, exp int64, id string, err error) {
	if len(token) > MaxLen {
		return 0, 0, "", ErrMalformed
	}
	parts := strings.Split(token, ".")
	if len(parts) != 4 {
		return 0, 0, "", ErrMalformed
	}
	idText, expText, nonce64, mac64 := parts[0], parts[1], parts[2], parts[3]
	user, err1 := strconv.ParseInt(idText, 10, 64)
	exp, err2 := strconv.ParseInt(expText, 10, 64)
	nonce, err3 := base64.RawURLEncoding.Strict().DecodeString(nonce64) // one spelling per nonce
	mac, err4 := base64.RawURLEncoding.Strict().DecodeString(mac64)     // and per MAC
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || user <= 0 || len(nonce) != nonceLen || len(mac) != macLen ||
		idText != strconv.FormatInt(user, 10) || expText != strconv.FormatInt(exp, 10) {
		return 0, 0, "", ErrMalformed
	}
	if !now.Before(time.Unix(exp, 0)) {
		return 0, 0, "", ErrExpired
	}
	secret, ok := secretOf(user)
	if !ok {
		return 0, 0, "", ErrForged
	}
	head := token[:len(token)-len(mac64)-1]
	if !hmac.Equal(mac, k.mac(head, secret)) {
		return 0, 0, "", ErrForged
	}
	return user, exp, idText + "." + nonce64, nil
}

func (k *Keys) mac(head, secret string) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte("qchat-resume-v2\x00"))
	m.Write([]byte(head))
	m.Write([]byte{0})
	m.Write([]byte(secret))
	return m.Sum(nil)[:macLen]
}
