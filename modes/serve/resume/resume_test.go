package resume

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	for name, bad := range map[string]string{
		"other user":      "1002." + parts[1] + "." + parts[2],
		"later expiry":    parts[0] + "." + parts[1] + "0." + parts[2],
		"other mac":       parts[0] + "." + parts[1] + "." + flip(parts[2]),
		"unknown user":    "999999." + parts[1] + "." + parts[2],
		"leading zero":    "01001." + parts[1] + "." + parts[2],
		"plus sign":       "+1001." + parts[1] + "." + parts[2],
		"short mac":       parts[0] + "." + parts[1] + "." + parts[2][:10],
		"padded mac":      tok + "==",
		"loose last bits": parts[0] + "." + parts[1] + "." + parts[2][:21] + string(parts[2][21]^1),
		"two parts":       parts[0] + "." + parts[2],
		"empty":           "",
		"long":            tok + strings.Repeat("A", 100),
		"negative user":   "-1." + parts[1] + "." + parts[2],
		"password":        "hunter2",
		"spaces":          parts[0] + ". " + parts[1] + "." + parts[2],
		"zero user":       "0." + parts[1] + "." + parts[2],
		"expiry garbage":  parts[0] + ".x." + parts[2],
	} {
		if u, err := k.Check(bad, hashes(users), now); err == nil {
			t.Errorf("%s: %q taken for user %d", name, bad, u)
		}
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
	tok, _ := k.Mint(1001, "$2a$10$abcdefghijklmnopqrstuvabcdefghijklmnopqrstuvwxyz01234", now)
	for b.Loop() {
		if _, err := k.Check(tok, users, now); err != nil {
			b.Fatal(err)
		}
	}
}
