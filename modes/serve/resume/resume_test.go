package resume

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func hashes(m map[int64]string) func(int64) (string, bool) {
	return func(u int64) (string, bool) { s, ok := m[u]; return s, ok }
}

func TestMintAndCheck(t *testing.T) {
	dir := t.TempDir()
	k, err := Open(dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	users := map[int64]string{1001: "$2a$04$alice", 1002: "$2a$04$bob"}
	tok, exp := k.Mint(1001, users[1001], now)
	if !exp.Equal(now.Add(time.Hour)) || !strings.HasPrefix(tok, "1001.") || len(tok) > MaxLen {
		t.Fatalf("Mint = %q %v", tok, exp)
	}
	if u, err := k.Check(tok, hashes(users), now.Add(59*time.Minute)); err != nil || u != 1001 {
		t.Fatalf("Check = %d %v", u, err)
	}
	if _, err := k.Check(tok, hashes(users), now.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("at its expiry: %v, want ErrExpired", err)
	}
	// The password changed: every earlier token is refused.
	users[1001] = "$2a$04$alice-new"
	if _, err := k.Check(tok, hashes(users), now); !errors.Is(err, ErrForged) {
		t.Fatalf("after a password change: %v, want ErrForged", err)
	}
	// Another server's key (or a deleted key file) refuses it too.
	other, _ := Open(t.TempDir(), time.Hour)
	tok, _ = k.Mint(1002, users[1002], now)
	if _, err := other.Check(tok, hashes(users), now); !errors.Is(err, ErrForged) {
		t.Fatalf("another key: %v, want ErrForged", err)
	}
	// The same folder after a restart takes it.
	again, err := Open(dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := again.Check(tok, hashes(users), now); err != nil || u != 1002 {
		t.Fatalf("after a restart: %d %v", u, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
}

func TestCheckRefusesTampering(t *testing.T) {
	k, _ := Open(t.TempDir(), time.Hour)
	users := map[int64]string{1001: "h1", 1002: "h2"}
	tok, _ := k.Mint(1001, "h1", now)
	parts := strings.Split(tok, ".")
	flip := func(s string) string {
		b := []byte(s)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	p0, p1, p2, p3 := parts[0], parts[1], parts[2], parts[3]
	for name, bad := range map[string]string{
		"other user":      "1002." + p1 + "." + p2 + "." + p3,
		"later expiry":    p0 + "." + p1 + "0." + p2 + "." + p3,
		"other nonce":     p0 + "." + p1 + "." + flip(p2) + "." + p3,
		"other mac":       p0 + "." + p1 + "." + p2 + "." + flip(p3),
		"unknown user":    "999999." + p1 + "." + p2 + "." + p3,
		"leading zero":    "01001." + p1 + "." + p2 + "." + p3,
		"plus sign":       "+1001." + p1 + "." + p2 + "." + p3,
		"short mac":       p0 + "." + p1 + "." + p2 + "." + p3[:10],
		"short nonce":     p0 + "." + p1 + "." + p2[:8] + "." + p3,
		"padded mac":      tok + "==",
		"loose last bits": p0 + "." + p1 + "." + p2 + "." + p3[:21] + string(p3[21]^1),
		"no nonce":        p0 + "." + p1 + "." + p3,
		"two parts":       p0 + "." + p3,
		"five parts":      p0 + "." + p1 + "." + p2 + "." + p2 + "." + p3,
		"empty":           "",
		"long":            tok + strings.Repeat("A", 100),
		"negative user":   "-1." + p1 + "." + p2 + "." + p3,
		"password":        "hunter2",
		"spaces":          p0 + ". " + p1 + "." + p2 + "." + p3,
		"zero user":       "0." + p1 + "." + p2 + "." + p3,
		"expiry garbage":  p0 + ".x." + p2 + "." + p3,
	} {
		if u, err := k.Check(bad, hashes(users), now); err == nil {
			t.Errorf("%s: %q taken for user %d", name, bad, u)
		}
	}
}

// TestTokenIsGoodForOneLogin: a token is spent by its first Check; the
// same token again (a replay, also after a restart) is refused, while
// another token of the same user is still good.
func TestTokenIsGoodForOneLogin(t *testing.T) {
	now := time.Now() // a start forgets the tokens that expired by the clock
	dir := t.TempDir()
	k, err := Open(dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	users := hashes(map[int64]string{1001: "h1"})
	tok, _ := k.Mint(1001, "h1", now)
	other, _ := k.Mint(1001, "h1", now)
	later, _ := k.Mint(1001, "h1", now)
	if tok == other {
		t.Fatal("two tokens minted at once are the same")
	}
	if u, err := k.Check(tok, users, now); err != nil || u != 1001 {
		t.Fatalf("first use: %d %v", u, err)
	}
	if _, err := k.Check(tok, users, now.Add(time.Minute)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replayed: %v, want ErrReplayed", err)
	}
	if u, err := k.Check(other, users, now); err != nil || u != 1001 {
		t.Fatalf("another token of the same user: %d %v", u, err)
	}
	k.Close()
	again, err := Open(dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	for _, spent := range []string{tok, other} {
		if _, err := again.Check(spent, users, now); !errors.Is(err, ErrReplayed) {
			t.Fatalf("replayed after a restart: %v, want ErrReplayed", err)
		}
	}
	if u, err := again.Check(later, users, now); err != nil || u != 1001 {
		t.Fatalf("an unused token after a restart: %d %v", u, err)
	}
}

// TestSpentFileForgetsExpiredTokens: a start keeps in resume.spent only
// the nonces of tokens that have not expired.
func TestSpentFileForgetsExpiredTokens(t *testing.T) {
	dir := t.TempDir()
	k, _ := Open(dir, time.Hour)
	users := hashes(map[int64]string{1001: "h1"})
	old, _ := k.Mint(1001, "h1", time.Now().Add(-time.Hour+time.Minute)) // expires in a minute
	if _, err := k.Check(old, users, time.Now()); err != nil {
		t.Fatal(err)
	}
	k.Close()
	b, _ := os.ReadFile(filepath.Join(dir, SpentFile))
	if strings.Count(string(b), "\n") != 1 {
		t.Fatalf("resume.spent after one login: %q", b)
	}
	os.WriteFile(filepath.Join(dir, SpentFile), append(b, "100 1001.expiredlongago\n"...), 0o600)
	again, _ := Open(dir, time.Hour)
	again.Close()
	if b2, _ := os.ReadFile(filepath.Join(dir, SpentFile)); string(b2) != string(b) {
		t.Fatalf("resume.spent after a start: %q, want %q", b2, b)
	}
}

func TestOpenRefusesABadKeyFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("short"), 0o600)
	if _, err := Open(dir, time.Hour); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("Open with a 5-byte key: %v", err)
	}
}

func BenchmarkCheck(b *testing.B) {
	k, _ := Open(b.TempDir(), time.Hour)
	users := hashes(map[int64]string{1001: "$2a$10$abcdefghijklmnopqrstuvabcdefghijklmnopqrstuvwxyz01234"})
	for b.Loop() {
		tok, _ := k.Mint(1001, "$2a$10$abcdefghijklmnopqrstuvabcdefghijklmnopqrstuvwxyz01234", now)
		if _, err := k.Check(tok, users, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSharedSpend: two servers with one key (a cluster's nodes) that
// share where tokens are spent: a token used on one is refused on the
// other, and one that fails to record is refused (not let in unchecked).
func TestSharedSpend(t *testing.T) {
	now := time.Now()
	a, err := Open(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	dirB := t.TempDir()
	if err := os.WriteFile(filepath.Join(dirB, KeyFile), a.key, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dirB, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var mu sync.Mutex
	db := make(map[string]int64)
	down := false
	shared := func(id string, exp int64) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return false, errors.New("database down")
		}
		if _, ok := db[id]; ok {
			return false, nil
		}
		db[id] = exp
		return true, nil
	}
	a.Share(shared)
	b.Share(shared)
	users := hashes(map[int64]string{1001: "h1"})
	tok, _ := a.Mint(1001, "h1", now)
	if u, err := b.Check(tok, users, now); err != nil || u != 1001 {
		t.Fatalf("first use, on b: %d %v", u, err)
	}
	if _, err := a.Check(tok, users, now); !errors.Is(err, ErrReplayed) {
		t.Fatalf("used on b, then on a: %v, want ErrReplayed", err)
	}
	down = true
	other, _ := a.Mint(1001, "h1", now)
	if _, err := a.Check(other, users, now); err == nil || errors.Is(err, ErrReplayed) {
		t.Fatalf("with the shared record down: %v, want its error", err)
	}
	down = false
	if u, err := a.Check(other, users, now); err != nil || u != 1001 {
		t.Fatalf("once it is back: %d %v", u, err)
	}
}
