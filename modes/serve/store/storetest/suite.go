// Package storetest is the conformance suite of store.Store: one set of
// checks that every implementation passes (sqlite always, postgres when
// QCHAT_TEST_POSTGRES points at a database: PostgresURL), and benchmarks
// that compare them. A behaviour the server relies on is a check here, so
// that the two stores cannot drift apart.
//
// It owns no store of its own and must not know the implementations: it
// sees them through store.Store and Raw (statements by hand, to look at
// rows and to set up what no method makes; the SQL it writes is the
// shared dialect: $N placeholders, "user" quoted).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"qchat/modes/serve/store"
)

// Raw is what the suite needs of an implementation beside store.Store.
type Raw interface {
	// ExecSQL runs one statement, committed when it returns.
	ExecSQL(ctx context.Context, q string, args ...any) error
	// QueryInt reads one integer.
	QueryInt(ctx context.Context, q string, args ...any) (int64, error)
}

// NewDB makes a fresh, empty database for one test and returns how to
// open it; open again after Close gives the same data.
type NewDB func(t *testing.T) (open func() (store.Store, error))

// Run runs every check, each on a fresh database of newDB.
func Run(t *testing.T, newDB NewDB) {
	checks := []struct {
		name string
		fn   func(h *harness)
	}{
		{"Accounts", testAccounts},
		{"ConcurrentCreateUser", testConcurrentCreateUser},
		{"RenameAndProfile", testRenameAndProfile},
		{"Friends", testFriends},
		{"Groups", testGroups},
		{"Inbox", testInbox},
		{"SaveTwice", testSaveTwice},
		{"DeletesFromCallbacks", testDeletesFromCallbacks},
		{"GroupMessagesStoredOnce", testGroupStoredOnce},
		{"GroupCursors", testGroupCursors},
		{"GroupMemberLeaves", testGroupMemberLeaves},
		{"FindSent", testFindSent},
		{"SentIDsExpire", testSentIDsExpire},
		{"ReserveIDs", testReserveIDs},
		{"SchemaTooNew", testSchemaTooNew},
		{"Archive", testArchive},
		{"ArchivePages", testArchivePages},
		{"ArchiveGroups", testArchiveGroups},
		{"ArchivePrune", testArchivePrune},
		{"OfflineFiles", testOfflineFiles},
		{"SpentTokens", testSpentTokens},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			h := &harness{T: t, ctx: context.Background(), open: newDB(t)}
			h.st = h.mustOpen()
			defer func() {
				if h.st != nil {
					h.st.Close()
				}
			}()
			c.fn(h)
		})
	}
}

// harness is one check's database and its open store.
type harness struct {
	*testing.T
	ctx  context.Context
	open func() (store.Store, error)
	st   store.Store
}

func (h *harness) mustOpen() store.Store {
	h.Helper()
	st, err := h.open()
	if err != nil {
		h.Fatalf("open store: %v", err)
	}
	if _, ok := st.(Raw); !ok {
		h.Fatalf("%T does not implement storetest.Raw", st)
	}
	return st
}

// reopen closes the store and opens it again: what a restart sees.
func (h *harness) reopen() {
	h.Helper()
	if err := h.st.Close(); err != nil {
		h.Fatalf("close store: %v", err)
	}
	h.st = nil
	h.st = h.mustOpen()
}

func (h *harness) raw() Raw { return h.st.(Raw) }

func (h *harness) exec(q string, args ...any) {
	h.Helper()
	if err := h.raw().ExecSQL(h.ctx, q, args...); err != nil {
		h.Fatalf("%s: %v", q, err)
	}
}

func (h *harness) count(q string, args ...any) int64 {
	h.Helper()
	n, err := h.raw().QueryInt(h.ctx, q, args...)
	if err != nil {
		h.Fatalf("%s: %v", q, err)
	}
	return n
}

func (h *harness) user(nick string) int64 {
	h.Helper()
	id, err := h.st.CreateUser(h.ctx, nick, "hash-"+nick)
	if err != nil {
		h.Fatalf("CreateUser(%s): %v", nick, err)
	}
	return id
}

// sync waits until everything queued before it is committed: a write
// that waits goes through the same writer, after what came before.
func (h *harness) sync() {
	h.Helper()
	if _, _, err := h.st.ReserveIDs(h.ctx, 1); err != nil {
		h.Fatalf("ReserveIDs: %v", err)
	}
}

func (h *harness) save(items ...store.Item) {
	h.Helper()
	done := make(chan error, 1)
	h.st.SaveInbox(items, func(err error) { done <- err })
	if err := <-done; err != nil {
		h.Fatalf("SaveInbox: %v", err)
	}
}

// inbox returns what waits for user as "id:kind:body" words.
func (h *harness) inbox(user int64) string {
	h.Helper()
	items, err := h.st.Inbox(h.ctx, user)
	if err != nil {
		h.Fatalf("Inbox(%d): %v", user, err)
	}
	var out []string
	for _, m := range items {
		if m.Recipient != user {
			h.Errorf("Inbox(%d) holds an item for %d", user, m.Recipient)
		}
		out = append(out, fmt.Sprintf("%d:%s:%s", m.ID, m.Kind, m.Body))
	}
	return strings.Join(out, " ")
}

func testAccounts(h *harness) {
	before := time.Now().Add(-time.Second)
	var ids []int64
	for _, nick := range []string{"alice", "bob", "小明"} {
		id := h.user(nick)
		if len(ids) == 0 && id != store.FirstUserID {
			h.Fatalf("first account id %d, want %d", id, store.FirstUserID)
		}
		if len(ids) > 0 && id <= ids[len(ids)-1] {
			h.Fatalf("account id %d after %d: ids must increase", id, ids[len(ids)-1])
		}
		ids = append(ids, id)
	}
	for _, nick := range []string{"ALICE", "Bob", "alice", "小明"} {
		if id, err := h.st.CreateUser(h.ctx, nick, "x"); !errors.Is(err, store.ErrNickTaken) {
			h.Errorf("CreateUser(%s) = %d, %v; want ErrNickTaken", nick, id, err)
		}
	}
	u, err := h.st.UserByNick(h.ctx, "BOB")
	if err != nil || u.ID != ids[1] || u.Nick != "bob" || u.PwHash != "hash-bob" || u.Created.Before(before) || u.Created.After(time.Now()) {
		h.Errorf("UserByNick(BOB) = %+v, %v", u, err)
	}
	if u, err := h.st.UserByID(h.ctx, ids[2]); err != nil || u.Nick != "小明" {
		h.Errorf("UserByID(%d) = %+v, %v", ids[2], u, err)
	}
	if _, err := h.st.UserByNick(h.ctx, "nobody"); !errors.Is(err, store.ErrNoUser) {
		h.Errorf("UserByNick(nobody) error = %v, want ErrNoUser", err)
	}
	if _, err := h.st.UserByID(h.ctx, 1); !errors.Is(err, store.ErrNoUser) {
		h.Errorf("UserByID(1) error = %v, want ErrNoUser", err)
	}
	users, err := h.st.Users(h.ctx)
	if err != nil || len(users) != 3 || users[0].ID != ids[0] || users[2].ID != ids[2] || users[1].Nick != "bob" {
		h.Errorf("Users() = %+v, %v", users, err)
	}

	// The last account goes away (by hand: no verb does it); its id must
	// not come back, not even after a restart.
	h.exec(`DELETE FROM users WHERE id = $1`, ids[2])
	h.reopen()
	id := h.user("carol")
	if id <= ids[2] {
		h.Fatalf("after reopen, CreateUser(carol) = %d; want above %d (ids continue, none reused)", id, ids[2])
	}
	if _, err := h.st.CreateUser(h.ctx, "Alice", "x"); !errors.Is(err, store.ErrNickTaken) {
		h.Errorf("after reopen, CreateUser(Alice) error = %v, want ErrNickTaken", err)
	}
	if u, err := h.st.UserByNick(h.ctx, "ALICE"); err != nil || u.ID != ids[0] || u.PwHash != "hash-alice" {
		h.Errorf("after reopen, UserByNick(ALICE) = %+v, %v", u, err)
	}
}

func testConcurrentCreateUser(h *harness) {
	const n = 40
	var wg sync.WaitGroup
	ids := make([]int64, n)
	errs := make([]error, n)
	same := make([]error, n) // everybody tries "Zoë" in some case
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = h.st.CreateUser(h.ctx, fmt.Sprintf("user%d", i), "x")
		}()
		go func() {
			defer wg.Done()
			nick := "Zoë"
			if i%2 == 1 {
				nick = "ZOË"
			}
			_, same[i] = h.st.CreateUser(h.ctx, nick, "x")
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for i, id := range ids {
		if errs[i] != nil {
			h.Fatalf("CreateUser(user%d): %v", i, errs[i])
		}
		if id < store.FirstUserID || seen[id] {
			h.Fatalf("CreateUser(user%d) = %d: below %d or given twice", i, id, store.FirstUserID)
		}
		seen[id] = true
	}
	won := 0
	for _, err := range same {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrNickTaken):
			h.Fatalf("CreateUser(Zoë) error = %v", err)
		}
	}
	if won != 1 {
		h.Fatalf("%d CreateUser calls for Zoë in some case succeeded, want exactly 1", won)
	}
}

func testRenameAndProfile(h *harness) {
	alice, bob := h.user("alice"), h.user("bob")
	if err := h.st.SetNick(h.ctx, alice, "BOB"); !errors.Is(err, store.ErrNickTaken) {
		h.Errorf("SetNick(alice, BOB) = %v, want ErrNickTaken", err)
	}
	if err := h.st.SetNick(h.ctx, alice, "Alicia"); err != nil {
		h.Fatal(err)
	}
	if err := h.st.SetPassword(h.ctx, bob, "new-hash"); err != nil {
		h.Fatal(err)
	}
	p := store.Profile{Sex: "female", Age: 30, Address: "Hangzhou 杭州", Status: "away", NoReceipts: true}
	if err := h.st.SetProfile(h.ctx, alice, store.Profile{Age: 1, NoTyping: true}); err != nil {
		h.Fatal(err)
	}
	if err := h.st.SetProfile(h.ctx, alice, p); err != nil { // the second replaces the first
		h.Fatal(err)
	}
	h.reopen()
	if u, err := h.st.UserByNick(h.ctx, "alicia"); err != nil || u.ID != alice || u.Nick != "Alicia" {
		h.Errorf("UserByNick(alicia) = %+v, %v", u, err)
	}
	if _, err := h.st.UserByNick(h.ctx, "alice"); !errors.Is(err, store.ErrNoUser) {
		h.Errorf("the old name still finds someone: %v", err)
	}
	if id := h.user("alice"); id <= bob { // the old name is free again
		h.Errorf("new alice got id %d", id)
	}
	if u, _ := h.st.UserByID(h.ctx, bob); u.PwHash != "new-hash" {
		h.Errorf("bob's hash %q after SetPassword", u.PwHash)
	}
	so, err := h.st.LoadSocial(h.ctx)
	if err != nil {
		h.Fatal(err)
	}
	if got := so.Profiles[alice]; got != p || len(so.Profiles) != 1 {
		h.Errorf("profiles %+v, want {%d: %+v}", so.Profiles, alice, p)
	}
}

// sortedPairs returns ps sorted.
func sortedPairs(ps []store.Pair) []store.Pair {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b store.Pair) int {
		if a.A != b.A {
			return int(a.A - b.A)
		}
		return int(a.B - b.B)
	})
	return out
}
