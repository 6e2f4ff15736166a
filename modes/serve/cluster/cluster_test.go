package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"qchat/modes/serve/presence"
	"qchat/protocol"
)

// The tests that need a NATS server take it from QCHAT_TEST_NATS and skip
// without it; each uses a deployment of its own (a random name), so that
// tests never hear each other.

func natsURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("QCHAT_TEST_NATS")
	if u == "" {
		t.Skip("cluster tests skipped: set QCHAT_TEST_NATS to a NATS server URL (e.g. nats://127.0.0.1:4222) to run them")
	}
	return u
}

func deployment(t *testing.T) string {
	var b [8]byte
	rand.Read(b[:])
	return t.Name() + "/" + hex.EncodeToString(b[:])
}

// fake is a server's side of a node: its users and what it heard.
type fake struct {
	mu       sync.Mutex
	local    map[int64]string // user -> state
	remote   [][]int64        // each Remote call
	taken    []int64
	mail     []int64
	changed  []string
	offers   []string
	events   []string
	takeWait chan struct{} // Takeover blocks until closed, when set
}

func newFake() *fake { return &fake{local: make(map[int64]string)} }

func (f *fake) hooks() Hooks {
	return Hooks{
		Local: func(users []int64) []presence.Change {
			f.mu.Lock()
			defer f.mu.Unlock()
			if users == nil {
				for u := range f.local {
					users = append(users, u)
				}
				slices.Sort(users)
			}
			var out []presence.Change
			for _, u := range users {
				st := f.local[u]
				if st == "" {
					st = presence.Offline
				}
				out = append(out, presence.Change{User: u, Nick: "u" + strings.Repeat("x", int(u%3)), State: st})
			}
			return out
		},
		Remote: func(users []int64) {
			f.mu.Lock()
			f.remote = append(f.remote, slices.Clone(users))
			f.mu.Unlock()
		},
		Takeover: func(user int64) {
			if f.takeWait != nil {
				<-f.takeWait
			}
			f.mu.Lock()
			f.taken = append(f.taken, user)
			delete(f.local, user)
			f.mu.Unlock()
		},
		Mail: func(users []int64, items []byte) {
			f.mu.Lock()
			f.mail = append(f.mail, users...)
			f.mu.Unlock()
		},
		Changed: func(kind string, id int64) {
			f.mu.Lock()
			f.changed = append(f.changed, kind)
			f.mu.Unlock()
		},
		Event: func(user int64, line []byte) {
			f.mu.Lock()
			f.events = append(f.events, fmt.Sprintf("%d %s", user, line))
			f.mu.Unlock()
		},
		Offer: func(from string, data []byte) {
			f.mu.Lock()
			f.offers = append(f.offers, from+" "+string(data))
			f.mu.Unlock()
		},
	}
}

func (f *fake) set(user int64, state string) {
	f.mu.Lock()
	f.local[user] = state
	f.mu.Unlock()
}

func join(t *testing.T, url, dep, node string, f *fake, timeout time.Duration) *Cluster {
	t.Helper()
	c, err := Join(Config{URL: url, Node: node, Timeout: timeout, Deployment: dep, Addr: "127.0.0.1:4000",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, f.hooks())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// poll waits for cond, failing after 10 s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not waiting blind
	}
}

func TestPrefix(t *testing.T) {
	a, b := Prefix("test/qchat_a"), Prefix("test/qchat_b")
	if a == b {
		t.Fatalf("two deployments, one prefix %s", a)
	}
	if a != Prefix("test/qchat_a") {
		t.Fatal("the prefix of one deployment changes")
	}
	if !strings.HasPrefix(a, "qchat.") || len(a) != len("qchat.")+16 || strings.ContainsAny(a[6:], ".*> ") {
		t.Fatalf("prefix %q: want qchat. and 16 hex digits", a)
	}
}

func TestValidNode(t *testing.T) {
	for name, want := range map[string]bool{"n1": true, "node_2-b": true, "": false, "a.b": false, "a b": false,
		"*": false, ">": false, strings.Repeat("x", 64): true, strings.Repeat("x", 65): false, "ü": false} {
		if ValidNode(name) != want {
			t.Errorf("ValidNode(%q) = %v, want %v", name, !want, want)
		}
	}
}

// Every message a node reads is checked: what is not as written is
// refused with an error that says why.
func TestParseRefusesBadInput(t *testing.T) {
	good := appendFrom(nil, "n1", "0123456789abcdef", presence.Batch{Changes: []presence.Change{{User: 1000, Nick: "alice", State: presence.Online}}})
	if node, inc, b, err := parseFrom(good); err != nil || node != "n1" || inc != "0123456789abcdef" || len(b.Changes) != 1 || b.Changes[0].User != 1000 {
		t.Fatalf("parseFrom(appendFrom) = %q %q %+v %v", node, inc, b, err)
	}
	for _, bad := range []string{"", "FROM n1\n", "FROM n.1 0123456789abcdef\nBATCH 0 0\n", "FROM n1 0123\nBATCH 0 0\n",
		"FROM n1 0123456789abcdef\nBATCH 0 2\nPRESENCE 1000 alice online\n", "FROM n1 0123456789abcdef\nBATCH 0 1\nPRESENCE x alice online\n",
		"FROM n1 0123456789abcdef\nBATCH 0 1\nPRESENCE 1000 alice dancing\n"} {
		if _, _, _, err := parseFrom([]byte(bad)); !errors.Is(err, errWire) && err == nil {
			t.Errorf("parseFrom(%q) took it", bad)
		}
	}
	if k, n, i, a, err := parseHeartbeat([]byte("HB n2 0123456789abcdef 10.0.0.2:4000")); err != nil || k != "HB" || n != "n2" || i != "0123456789abcdef" || a != "10.0.0.2:4000" {
		t.Fatalf("parseHeartbeat = %q %q %q %q %v", k, n, i, a, err)
	}
	for _, bad := range []string{"", "HB", "HB n2", "HB n2 0123456789abcdef", "PING n2 0123456789abcdef", "HB n2 0123456789ABCDEF h:1",
		"HB n.2 0123456789abcdef h:1", "HB n2 0123456789abcdef x", "BYE n2 0123456789abcdef h:1"} {
		if _, _, _, _, err := parseHeartbeat([]byte(bad)); !errors.Is(err, errWire) {
			t.Errorf("parseHeartbeat(%q) = %v, want a cluster message error", bad, err)
		}
	}
	if ids, err := parseIDs([]byte("MAIL 1000 1001"), "MAIL", maxIDs); err != nil || !slices.Equal(ids, []int64{1000, 1001}) {
		t.Fatalf("parseIDs = %v %v", ids, err)
	}
	for _, bad := range []string{"", "MAIL", "TAKE 1000", "MAIL 10x", "MAIL -1", "MAIL 99999999999999999999"} {
		if _, err := parseIDs([]byte(bad), "MAIL", maxIDs); !errors.Is(err, errWire) {
			t.Errorf("parseIDs(%q) = %v, want a cluster message error", bad, err)
		}
	}
	if _, err := parseIDs([]byte("TAKE 1 2"), "TAKE", 1); !errors.Is(err, errWire) {
		t.Errorf("TAKE of two users taken")
	}
	if n, d, err := parseOffer([]byte("OFFER n1\n{}")); err != nil || n != "n1" || string(d) != "{}" {
		t.Fatalf("parseOffer = %q %q %v", n, d, err)
	}
	for _, bad := range []string{"", "OFFER n1", "OFFER\n{}", "OFFER n* \n{}", "OFFER n1\n" + strings.Repeat("x", maxOffer+1)} {
		if _, _, err := parseOffer([]byte(bad)); !errors.Is(err, errWire) {
			t.Errorf("parseOffer(%q) = %v, want a cluster message error", protocol.Clip(bad, 20), err)
		}
	}
	if n, k, id, err := parseChanged([]byte("CHANGED n1 user 1000")); err != nil || n != "n1" || k != "user" || id != 1000 {
		t.Fatalf("parseChanged = %q %q %d %v", n, k, id, err)
	}
	for _, bad := range []string{"", "CHANGED n1 user", "CHANGED n1 groups 0", "CHANGED n1 user -4", "CHANGED n* social 0"} {
		if _, _, _, err := parseChanged([]byte(bad)); !errors.Is(err, errWire) {
			t.Errorf("parseChanged(%q) = %v, want a cluster message error", bad, err)
		}
	}
}

// Presence crosses nodes in batches: a storm of logins on one node is a
// few publishes, not one per login; a node that joins later gets the
// whole list; another deployment on the same NATS hears nothing.
func TestPresenceBatchedAcrossNodes(t *testing.T) {
	url := natsURL(t)
	dep := deployment(t)
	fa, fb, fo := newFake(), newFake(), newFake()
	a := join(t, url, dep, "a", fa, time.Second)
	b := join(t, url, dep, "b", fb, time.Second)
	other := join(t, url, dep+"-other", "a2", fo, time.Second)
	poll(t, "b sees a", func() bool { return slices.Contains(b.Nodes(), "a") })

	const n = 2000
	start := time.Now()
	for u := int64(1000); u < 1000+n; u++ {
		fa.set(u, presence.Online)
		a.NoteLocal(u)
	}
	noted := time.Since(start)
	poll(t, "b has every user of a", func() bool { return len(b.Online(nil)) == n })
	fb.mu.Lock()
	batches := len(fb.remote)
	fb.mu.Unlock()
	if most := int(noted/BatchEvery) + 2; batches > most {
		t.Errorf("%d logins in %s came in %d batches, want at most %d (one per %s)", n, noted, batches, most, BatchEvery)
	}
	if node, state, _, ok := b.Where(1500); !ok || node != "a" || state != presence.Online {
		t.Errorf("b.Where(1500) = %q %q %v, want a online", node, state, ok)
	}
	if _, _, _, ok := a.Where(1500); ok {
		t.Errorf("a counts its own user as remote")
	}

	// a node that comes later asks for the list
	fc := newFake()
	c := join(t, url, dep, "c", fc, time.Second)
	poll(t, "c has every user of a", func() bool { return len(c.Online(nil)) == n })

	// away and offline
	fa.set(1000, presence.Away)
	a.NoteLocal(1000)
	fa.set(1001, "")
	a.NoteLocal(1001)
	poll(t, "b sees 1000 away and 1001 gone", func() bool {
		_, st, _, _ := b.Where(1000)
		_, _, _, on := b.Where(1001)
		return st == presence.Away && !on
	})
	if got := other.Online(nil); len(got) != 0 {
		t.Errorf("another deployment on the same NATS heard %d users", len(got))
	}
}

// A node that stops without a word (its connection cut, no BYE) is taken
// for dead within the timeout, and all its users go in one call.
func TestDeadNodeUsersGoInOneBatch(t *testing.T) {
	url := natsURL(t)
	dep := deployment(t)
	fa, fb := newFake(), newFake()
	a := join(t, url, dep, "a", fa, 500*time.Millisecond)
	b := join(t, url, dep, "b", fb, 500*time.Millisecond)
	for u := int64(1000); u < 1300; u++ {
		fa.set(u, presence.Online)
		a.NoteLocal(u)
	}
	poll(t, "b has a's users", func() bool { return len(b.Online(nil)) == 300 })
	fb.mu.Lock()
	before := len(fb.remote)
	fb.mu.Unlock()

	// SIGKILL, as far as NATS can tell: heartbeats stop, no BYE
	close(a.quit)
	a.done.Wait()
	a.nc.Close()
	killed := time.Now()
	poll(t, "b drops a's users", func() bool { return len(b.Online(nil)) == 0 })
	if took := time.Since(killed); took > 3*500*time.Millisecond {
		t.Errorf("a dead node was noticed after %s; timeout 500ms", took)
	}
	fb.mu.Lock()
	calls := fb.remote[before:]
	fb.mu.Unlock()
	if len(calls) != 1 || len(calls[0]) != 300 {
		t.Errorf("a dead node's 300 users went in %d calls, want one of 300", len(calls))
	}
	if slices.Contains(b.Nodes(), "a") {
		t.Errorf("b still lists a")
	}
}

// A login elsewhere takes over: the node that has the user ends its
// session and answers once saved; a node that does not answer is an
// error, and the user counts as gone from it.
func TestTakeover(t *testing.T) {
	url := natsURL(t)
	dep := deployment(t)
	fa, fb := newFake(), newFake()
	a := join(t, url, dep, "a", fa, time.Second)
	b := join(t, url, dep, "b", fb, time.Second)
	fa.set(1000, presence.Online)
	a.NoteLocal(1000)
	poll(t, "b sees 1000 on a", func() bool { _, _, _, ok := b.Where(1000); return ok })
	if err := b.Takeover(1000); err != nil {
		t.Fatal(err)
	}
	fa.mu.Lock()
	taken := slices.Clone(fa.taken)
	fa.mu.Unlock()
	if !slices.Equal(taken, []int64{1000}) {
		t.Fatalf("a ended %v, want [1000]", taken)
	}
	if _, _, _, ok := b.Where(1000); ok {
		t.Errorf("1000 still on a for b after the takeover")
	}
	if err := b.Takeover(4242); err != nil {
		t.Errorf("takeover of a user on no node: %v", err)
	}

	// a node that hangs: the takeover gives up after the timeout
	fa.takeWait = make(chan struct{})
	defer close(fa.takeWait)
	fa.set(1001, presence.Online)
	a.NoteLocal(1001)
	poll(t, "b sees 1001 on a", func() bool { _, _, _, ok := b.Where(1001); return ok })
	if err := b.Takeover(1001); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("takeover from a hung node: %v, want ErrNoAnswer", err)
	}
}

// Mail notices go to the node of each user and to no other; change
// notices to every other node, not back to their own.
func TestMailAndChanges(t *testing.T) {
	url := natsURL(t)
	dep := deployment(t)
	fa, fb, fc := newFake(), newFake(), newFake()
	a := join(t, url, dep, "a", fa, time.Second)
	b := join(t, url, dep, "b", fb, time.Second)
	c := join(t, url, dep, "c", fc, time.Second)
	fb.set(1000, presence.Online)
	b.NoteLocal(1000)
	fc.set(1001, presence.Online)
	c.NoteLocal(1001)
	poll(t, "a sees both", func() bool { return len(a.Online(nil)) == 2 })
	a.Mail([]int64{1000, 1001, 4242}, nil)
	a.Changed("social", 0)
	if !a.Event(1001, []byte("NUDGE 1000 alice 2026-12-03T07:00:00.000Z\n")) || a.Event(4242, []byte("NUDGE\n")) {
		t.Errorf("Event: true for a user online elsewhere, false for one nowhere")
	}
	if err := a.SendOffer("b", []byte(`{"kind":"gone"}`)); err != nil {
		t.Fatal(err)
	}
	poll(t, "mail, changes, an event and an offer arrive", func() bool {
		fb.mu.Lock()
		defer fb.mu.Unlock()
		fc.mu.Lock()
		defer fc.mu.Unlock()
		return len(fb.mail) == 1 && len(fc.mail) == 1 && len(fb.changed) == 1 && len(fc.changed) == 1 &&
			len(fc.events) == 1 && len(fb.offers) == 1
	})
	fc.mu.Lock()
	if fc.events[0] != "1001 NUDGE 1000 alice 2026-12-03T07:00:00.000Z\n" {
		t.Errorf("event %q", fc.events[0])
	}
	fc.mu.Unlock()
	fb.mu.Lock()
	if fb.offers[0] != `a {"kind":"gone"}` {
		t.Errorf("offer %q", fb.offers[0])
	}
	fb.mu.Unlock()
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	b.Flush()
	c.Flush()
	fa.mu.Lock()
	defer fa.mu.Unlock()
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if !slices.Equal(fb.mail, []int64{1000}) {
		t.Errorf("b got mail for %v, want [1000]", fb.mail)
	}
	if len(fa.changed) != 0 || len(fa.mail) != 0 {
		t.Errorf("a heard its own notices: %v %v", fa.changed, fa.mail)
	}
}

// Garbage on the deployment's subjects is dropped: the node goes on.
func TestGarbageIsDropped(t *testing.T) {
	url := natsURL(t)
	dep := deployment(t)
	fa, fb := newFake(), newFake()
	a := join(t, url, dep, "a", fa, time.Second)
	b := join(t, url, dep, "b", fb, time.Second)
	for _, subj := range []string{".hb", ".pres", ".changed", ".node.b.mail", ".node.b.take", ".node.b.snap"} {
		a.nc.Publish(a.prefix+subj, []byte("\x00garbage\nPRESENCE 1 x online\n"))
	}
	fa.set(1000, presence.Online)
	a.NoteLocal(1000)
	poll(t, "b still works", func() bool { _, _, _, ok := b.Where(1000); return ok })
	if _, _, _, ok := b.Where(1); ok {
		t.Errorf("garbage made user 1 online")
	}
}

// A node's list, asked for when it was first seen, may have been made
// before batches of its that came first: it must not undo them (a user
// who logged in there just then stayed unknown elsewhere until its next
// change). Once the list is in, batches and lists apply as they come.
func TestStaleListKeepsLaterBatches(t *testing.T) {
	var told [][]int64
	c := &Cluster{log: slog.New(slog.DiscardHandler), users: make(map[int64]*remote), peers: make(map[string]*peer)}
	c.hooks.Remote = func(users []int64) { told = append(told, users) }
	c.peers["b"] = &peer{inc: "1", users: make(map[int64]struct{}), touched: make(map[int64]bool)} // as seen() leaves it
	c.apply("b", "1", []presence.Change{{User: 1000, State: presence.Online}}, false)
	c.apply("b", "1", []presence.Change{{User: 1001, State: presence.Online}}, true) // made before the batch
	for _, u := range []int64{1000, 1001} {
		if node, _, _, ok := c.Where(u); !ok || node != "b" {
			t.Errorf("user %d: on %q (%v), want on b", u, node, ok)
		}
	}
	c.apply("b", "1", []presence.Change{{User: 1001, State: presence.Online}}, true) // a later list is the truth
	if _, _, _, ok := c.Where(1000); ok {
		t.Error("a list without 1000, after the first, left 1000 online")
	}
	if len(told) != 3 {
		t.Errorf("the server was told %v, want three changes", told)
	}
}
