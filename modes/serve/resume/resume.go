// Package resume mints and checks resumption tokens: the proof that a
// client logged in with its password lately, which it presents instead of
// the password when it reconnects (RESUME). A server restarting with ten
// thousand clients reconnecting must not run the password hash ten
// thousand times (bcrypt at the default cost is about 100 ms of CPU each):
// a token costs the server one HMAC-SHA256 to check (about a microsecond),
// while first logins keep the strong hash.
//
// A token is "<user>.<expires>.<mac>": the user id, the Unix time it
// expires, and the first 16 bytes of HMAC-SHA256(key, "qchat-resume-v1",
// user, expires, the account's password hash) in unpadded base64url. The
// key is 32 random bytes in the data folder (resume.key), so tokens outlive
// a restart; deleting the file revokes every token. Binding the password
// hash revokes a user's tokens when its password changes, without storing
// anything per token. A token says nothing secret (id and expiry are
// readable), and proves only what its MAC proves.
//
// It owns the key file and the token format. It must not know sessions,
// accounts or the wire: the caller says whose password hash a user id has.
package resume

import (
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
	"time"
)

// KeyFile is the key's file in the data folder.
const KeyFile = "resume.key"

// macLen is the bytes of the MAC a token carries: 128 bits.
const macLen = 16

// MaxLen bounds a token's length: two int64 in decimal, the MAC, two dots.
const MaxLen = 20 + 1 + 20 + 1 + 22

// Errors of Check.
var (
	ErrMalformed = errors.New("not a resumption token")
	ErrExpired   = errors.New("resumption token expired")
	ErrForged    = errors.New("resumption token not valid") // a wrong MAC, an unknown user, or revoked by a password change
)

// Keys mints and checks tokens with one key. Safe for concurrent use.
type Keys struct {
	key []byte
	ttl time.Duration
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
	return &Keys{key: key, ttl: ttl}, nil
}

// TTL is how long a token lasts.
func (k *Keys) TTL() time.Duration { return k.ttl }

// Mint returns a token for user, whose password hash is secret, valid
// from now for the keys' ttl (to the second).
func (k *Keys) Mint(user int64, secret string, now time.Time) (token string, expires time.Time) {
	expires = now.Add(k.ttl).Truncate(time.Second)
	head := strconv.FormatInt(user, 10) + "." + strconv.FormatInt(expires.Unix(), 10)
	return head + "." + base64.RawURLEncoding.EncodeToString(k.mac(head, secret)), expires
}

// Check returns the user a token is for when it is valid at now. secretOf
// gives a user's password hash (false: no such user). It computes one
// HMAC, and none for a token that is malformed or expired.
func (k *Keys) Check(token string, secretOf func(user int64) (string, bool), now time.Time) (int64, error) {
	if len(token) > MaxLen {
		return 0, ErrMalformed
	}
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return 0, ErrMalformed
	}
	head, mac64 := token[:i], token[i+1:]
	idText, expText, ok := strings.Cut(head, ".")
	user, err1 := strconv.ParseInt(idText, 10, 64)
	exp, err2 := strconv.ParseInt(expText, 10, 64)
	mac, err3 := base64.RawURLEncoding.Strict().DecodeString(mac64) // one spelling per MAC
	if !ok || err1 != nil || err2 != nil || err3 != nil || user <= 0 || len(mac) != macLen ||
		idText != strconv.FormatInt(user, 10) || expText != strconv.FormatInt(exp, 10) {
		return 0, ErrMalformed
	}
	if !now.Before(time.Unix(exp, 0)) {
		return 0, ErrExpired
	}
	secret, ok := secretOf(user)
	if !ok {
		return 0, ErrForged
	}
	if !hmac.Equal(mac, k.mac(head, secret)) {
		return 0, ErrForged
	}
	return user, nil
}

func (k *Keys) mac(head, secret string) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte("qchat-resume-v1\x00"))
	m.Write([]byte(head))
	m.Write([]byte{0})
	m.Write([]byte(secret))
	return m.Sum(nil)[:macLen]
}
