package serve

import (
	"context"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"qchat/protocol"
)

// storedCost is the bcrypt cost of nick's hash in the store and in memory
// (they must agree).
func storedCost(t *testing.T, srv *Server, nick string) int {
	t.Helper()
	users, err := srv.store.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.Nick != nick {
			continue
		}
		cost, err := bcrypt.Cost([]byte(u.PwHash))
		if err != nil {
			t.Fatal(err)
		}
		if mem := srv.dir.snapshot(srv.dir.lookup(nick)).pwhash; mem != u.PwHash {
			t.Fatalf("%s: the hash in memory is not the stored one", nick)
		}
		return cost
	}
	t.Fatalf("no user %s", nick)
	return 0
}

// TestHashRenewedAtLoginWhenCostChanged: a server restarted with another
// --hash-cost makes a user's hash again at the new cost when it logs in
// with its password (and not on a wrong one); the password still works.
func TestHashRenewedAtLoginWhenCostChanged(t *testing.T) {
	data := t.TempDir()
	var running *Server
	t.Cleanup(func() { running.Shutdown() })
	start := func(cost int) *Server {
		cfg := Defaults()
		cfg.Listen, cfg.Data, cfg.Name, cfg.Sync, cfg.Log = "127.0.0.1:0", data, "test", "normal", testLogger()
		cfg.HashCost = cost
		srv, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		running = srv
		return srv
	}
	srv := start(bcrypt.MinCost)
	c := dial(t, srv, "alice")
	register(c, "alice", "pw-alice")
	register(c, "bob", "pw-bob")
	if got := storedCost(t, srv, "alice"); got != bcrypt.MinCost {
		t.Fatalf("registered at cost %d, want %d", got, bcrypt.MinCost)
	}
	c.conn.Close()
	srv.Shutdown()

	srv = start(bcrypt.MinCost + 1)
	c = dial(t, srv, "alice")
	c.want("USER alice", protocol.CodePassword)
	c.want("PASS wrong", protocol.CodeLoginFailed)
	if got := storedCost(t, srv, "alice"); got != bcrypt.MinCost {
		t.Fatalf("a wrong password renewed the hash (cost %d)", got)
	}
	c.login("alice", "pw-alice")
	if got := storedCost(t, srv, "alice"); got != bcrypt.MinCost+1 {
		t.Fatalf("after a login with --hash-cost %d the hash has cost %d", bcrypt.MinCost+1, got)
	}
	if got := storedCost(t, srv, "bob"); got != bcrypt.MinCost {
		t.Fatalf("bob did not log in, yet his hash has cost %d", got)
	}
	c.conn.Close()
	srv.Shutdown()

	// The renewed hash is the one kept, and it takes the password.
	srv = start(bcrypt.MinCost + 1)
	if got := storedCost(t, srv, "alice"); got != bcrypt.MinCost+1 {
		t.Fatalf("after a restart the hash has cost %d", got)
	}
	dial(t, srv, "alice").login("alice", "pw-alice")
}

// TestRehashLosesToPasswd: a hash renewed from a password that was
// changed meanwhile (PASSWD between the check and the renewal) is dropped.
func TestRehashLosesToPasswd(t *testing.T) {
	srv := startServer(t, nil)
	c := dial(t, srv, "alice")
	register(c, "alice", "pw-alice")
	a := srv.dir.lookup("alice")
	old := srv.dir.snapshot(a).pwhash
	newer, _ := bcrypt.GenerateFromPassword([]byte("pw-new"), bcrypt.MinCost)
	if err := srv.setPassword(a, "", string(newer)); err != nil {
		t.Fatal(err)
	}
	again, _ := bcrypt.GenerateFromPassword([]byte("pw-alice"), bcrypt.MinCost+1)
	if err := srv.setPassword(a, old, string(again)); err != errHashChanged {
		t.Fatalf("renewal over a changed hash: %v, want errHashChanged", err)
	}
	c.login("alice", "pw-new")
}
