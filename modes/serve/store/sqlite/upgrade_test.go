package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// loadDump makes dir/qchat.db from SQL statements.
func loadDump(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "qchat.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func mustOpen(t *testing.T, dir string) *Store {
	t.Helper()
	st, err := Open(dir, "normal", quiet)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return st
}

func inbox(t *testing.T, st *Store, user int64) string {
	t.Helper()
	items, err := st.Inbox(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range items {
		out = append(out, fmt.Sprintf("%d:%s:%s", m.ID, m.Kind, m.Body))
	}
	return strings.Join(out, " ")
}

func count(t *testing.T, st *Store, q string, args ...any) int64 {
	t.Helper()
	n, err := st.QueryInt(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestUpgradeBeforeVersions: the data folder of a server run by the last
// qchat before schema versions (testdata/before-versions.sql) opens in
// place: everything it held is there, account and message ids continue,
// and the schema is at the last version. Opening it again changes nothing.
func TestUpgradeBeforeVersions(t *testing.T) {
	ctx := context.Background()
	dump, err := os.ReadFile("testdata/before-versions.sql")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The client id kept in it was fresh when the dump was made; keep it
	// fresh (a day later the store forgets it, as it should).
	loadDump(t, dir, string(dump), fmt.Sprintf(`UPDATE sent_ids SET time = %d`, time.Now().UnixMilli()))
	for round := range 2 {
		st := mustOpen(t, dir)
		if v := count(t, st, `SELECT MAX(version) FROM schema_version`); v != int64(migrations[len(migrations)-1].Version) {
			t.Errorf("round %d: schema version %d", round, v)
		}
		users, err := st.Users(ctx)
		if err != nil || len(users) != 4 || users[0].Nick != "alice" || users[3].ID != 1003 || !strings.HasPrefix(users[1].PwHash, "$2a$04$") {
			t.Fatalf("round %d: users %+v, %v", round, users, err)
		}
		so, err := st.LoadSocial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for what, got := range map[string]string{
			"profiles": fmt.Sprint(so.Profiles),
			"friends":  fmt.Sprint(so.Friends),
			"requests": fmt.Sprint(so.Requests),
			"blocks":   fmt.Sprint(so.Blocks),
			"groups":   fmt.Sprintf("%d %s %d %v %s %d %v", len(so.Groups), so.Groups[0].Name, so.Groups[0].Owner, so.Groups[0].Invite, so.Groups[1].Name, so.Groups[1].Owner, so.Groups[1].Invite),
			"members":  fmt.Sprint(so.Members),
			"invites":  fmt.Sprint(so.Invites),
		} {
			want := map[string]string{
				"profiles": "map[1000:{ 33 Hangzhou hello from before false false}]", // receipts and typing on
				"friends":  "[{1000 1001} {1001 1000}]",
				"requests": "[{1002 1000}]",
				"blocks":   "[{1003 1002}]",
				"groups":   "2 open 1003 false Team 1000 true",
				"members":  "[{team 1000} {team 1001} {open 1000} {open 1003}]",
				"invites":  "[{team 1002 1000}]",
			}[what]
			if got != want {
				t.Errorf("round %d: %s %s, want %s", round, what, got, want)
			}
		}
		for user, want := range map[int64]string{
			1000: "2:NOTICE:friend-accepted 3:REQUEST:friend 5:NOTICE:invite-accepted #Team 10:GMSG:#open open hello",
			1001: "1:REQUEST:friend 4:REQUEST:invite #Team 7:MSG:stored one 8:GMSG:#Team group stored",
			1002: "6:REQUEST:invite #Team",
			1003: "",
		} {
			if got := inbox(t, st, user); got != want {
				t.Errorf("round %d: inbox of %d: %s, want %s", round, user, got, want)
			}
		}
		for _, tc := range []struct {
			sender int64
			cid    string
			want   string
		}{
			{1000, "k.1", "7 [1001] false"},
			{1000, "k.2", "8 [1001] false"},
			{1003, "k.4", "11 [] true"},
		} {
			f, err := st.FindSent(ctx, tc.sender, tc.cid)
			if got := fmt.Sprint(f.ID, " ", f.Pending, " ", f.Acked); err != nil || got != tc.want {
				t.Errorf("round %d: FindSent(%d, %s) = %s, %v; want %s", round, tc.sender, tc.cid, got, err, tc.want)
			}
		}
		if round == 0 {
			// Message ids continue above what the old server had reserved,
			// account ids after dave's.
			if lo, _, err := st.ReserveIDs(ctx, 1); err != nil || lo < 1048576 {
				t.Errorf("ReserveIDs after the upgrade starts at %d, %v; the old server had reserved up to 1048576", lo, err)
			}
			if id, err := st.CreateUser(ctx, "erin", "h"); err != nil || id != 1004 {
				t.Errorf("CreateUser(erin) = %d, %v; want 1004", id, err)
			}
			if _, err := st.CreateUser(ctx, "ALICE", "h"); err == nil {
				t.Error("alice's name was taken again after the upgrade")
			}
			st.MoveCursor(1001, "team", 8, false)
			st.MoveCursor(1000, "open", 10, false)
			if _, _, err := st.ReserveIDs(ctx, 1); err != nil { // waits for the moves
				t.Fatal(err)
			}
			if n := count(t, st, `SELECT COUNT(*) FROM group_msgs`); n != 0 {
				t.Errorf("%d group rows after every member took them", n)
			}
			if f, _ := st.FindSent(ctx, 1000, "k.2"); f.ID != 8 || !f.Acked {
				t.Errorf("FindSent(k.2) after the row went: %+v", f)
			}
			// What round 1 checks was there before these changes.
			st.Exec(t, `INSERT INTO group_msgs (id, namekey, sender, nick, time, body, cid) VALUES (8, 'team', 1000, 'alice', 1796226062782, '#Team group stored', 'k.2')`)
			st.Exec(t, `INSERT INTO group_msgs (id, namekey, sender, nick, time, body, cid) VALUES (10, 'open', 1003, 'dave', 1796226062824, '#open open hello', '')`)
			st.Exec(t, `UPDATE members SET acked = 4 WHERE namekey = 'team' AND "user" = 1001`)
			st.Exec(t, `UPDATE members SET acked = 9 WHERE namekey = 'open' AND "user" = 1000`)
			st.Exec(t, `DELETE FROM sent_ids WHERE cid = 'k.2'`)
			st.Exec(t, `DELETE FROM users WHERE id = 1004`)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Exec runs a statement for a test.
func (s *Store) Exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if err := s.ExecSQL(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestMigrateGroupCopies: a data folder of the version before group
// cursors (a copy of each group message per member in the inbox) is
// upgraded at open: one row per message, each member's cursor below its
// first copy still waiting, a copy for a former member left as it was.
func TestMigrateGroupCopies(t *testing.T) {
	dir := t.TempDir()
	loadDump(t, dir,
		`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
		`CREATE TABLE inbox (recipient INTEGER NOT NULL, id INTEGER NOT NULL, kind TEXT NOT NULL, sender INTEGER NOT NULL,
			nick TEXT NOT NULL, time INTEGER NOT NULL, body TEXT NOT NULL, cid TEXT NOT NULL DEFAULT '', PRIMARY KEY (recipient, id))`,
		`CREATE TABLE members (namekey TEXT NOT NULL, user INTEGER NOT NULL, joined INTEGER NOT NULL, PRIMARY KEY (namekey, user))`,
		`INSERT INTO meta VALUES ('msgid_hi', '2000')`,
		`INSERT INTO members VALUES ('team', 1000, 1), ('team', 1001, 1), ('team', 1002, 1)`,
		// message 10 waits for 1001 and 1002; 11 only for 1001 (1002 took
		// it); 12 for 1003, who has left #Team since; 13 is private.
		`INSERT INTO inbox VALUES (1001, 10, 'GMSG', 1000, 'alice', 1, '#Team one', 'k.1'),
			(1002, 10, 'GMSG', 1000, 'alice', 1, '#Team one', 'k.1'),
			(1001, 11, 'GMSG', 1000, 'alice', 2, '#Team two', ''),
			(1003, 12, 'GMSG', 1000, 'alice', 3, '#Team three', ''),
			(1001, 13, 'MSG', 1000, 'alice', 4, 'private', '')`,
	)

	st := mustOpen(t, dir)
	if n := count(t, st, `SELECT COUNT(*) FROM group_msgs`); n != 2 {
		t.Errorf("group_msgs: %d rows, want 2 (messages 10 and 11, once each)", n)
	}
	if n := count(t, st, `SELECT COUNT(*) FROM inbox WHERE kind = 'GMSG'`); n != 1 {
		t.Errorf("inbox keeps %d group copies, want 1 (the former member's)", n)
	}
	cursor := func(user int64) int64 {
		return count(t, st, `SELECT acked FROM members WHERE namekey = 'team' AND "user" = $1`, user)
	}
	if c0, c1, c2 := cursor(1000), cursor(1001), cursor(1002); c0 != 2000 || c1 != 9 || c2 != 9 {
		t.Errorf("cursors %d %d %d, want 2000 (nothing waited) 9 9 (below message 10)", c0, c1, c2)
	}
	if got, want := inbox(t, st, 1001), "10:GMSG:#Team one 11:GMSG:#Team two 13:MSG:private"; got != want {
		t.Errorf("1001's inbox after the upgrade: %s, want %s", got, want)
	}
	// 1002 gets 11 again (its cursor is below 10): a duplicate it drops by
	// id, never a loss.
	if got, want := inbox(t, st, 1002), "10:GMSG:#Team one 11:GMSG:#Team two"; got != want {
		t.Errorf("1002's inbox after the upgrade: %s, want %s", got, want)
	}
	if got, want := inbox(t, st, 1003), "12:GMSG:#Team three"; got != want {
		t.Errorf("1003's inbox after the upgrade: %s, want %s", got, want)
	}
	f, err := st.FindSent(context.Background(), 1000, "k.1")
	if err != nil || f.ID != 10 || !slices.Equal(f.Pending, []int64{1001, 1002}) {
		t.Errorf("FindSent(k.1) = %+v, %v; want id 10 pending for 1001 and 1002", f, err)
	}
	if lo, _, err := st.ReserveIDs(context.Background(), 1); err != nil || lo != 2000 {
		t.Errorf("ReserveIDs after the upgrade = %d, %v; want from 2000", lo, err)
	}
	st.Close()
	// Opening it again changes nothing.
	st = mustOpen(t, dir)
	defer st.Close()
	if n := count(t, st, `SELECT COUNT(*) FROM group_msgs`); n != 2 {
		t.Errorf("after a second open: %d rows, want 2", n)
	}
}
