package postgres

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"qchat/modes/serve/store"
	"qchat/modes/serve/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.NeedPostgres(t)
	storetest.Run(t, func(t *testing.T) func() (store.Store, error) {
		url := storetest.PostgresURL(t)
		return func() (store.Store, error) { return Open(context.Background(), url, quiet) }
	})
}

var quiet = slog.New(slog.DiscardHandler)

func BenchmarkStore(b *testing.B) {
	storetest.NeedPostgres(b)
	storetest.Bench(b, func(b *testing.B) store.Store {
		st, err := Open(context.Background(), storetest.PostgresURL(b), quiet)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	})
}

// BenchmarkWAL is what PostgreSQL writes for a stored message: saved
// (batches of 16, as the saver commits under light load), then deleted
// once acknowledged with its client id kept (as after a login). It
// reports the WAL bytes per message, from pg_current_wal_lsn before and
// after (anything else writing to the cluster meanwhile counts too).
func BenchmarkWAL(b *testing.B) {
	storetest.NeedPostgres(b)
	ctx := context.Background()
	url := storetest.PostgresURL(b)
	st, err := Open(ctx, url, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	lsn := func() int64 {
		n, err := st.QueryInt(ctx, `SELECT pg_current_wal_lsn() - '0/0'::pg_lsn`)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	const batch = 16
	done := make(chan error, 1)
	now := time.Now()
	b.ResetTimer()
	before := lsn()
	for n := 0; n < b.N; n += batch {
		var items []store.Item
		var sent []store.SentID
		var ids []int64
		for i := n; i < min(n+batch, b.N); i++ {
			id := int64(i + 1)
			cid := "c." + strconv.Itoa(i)
			items = append(items, store.Item{Recipient: 1001, ID: id, Kind: "MSG", Sender: 1000, Nick: "alice", Time: now, Body: strings.Repeat("x", 64), CID: cid})
			sent = append(sent, store.SentID{Sender: 1000, CID: cid, ID: id, Time: now})
			ids = append(ids, id)
		}
		st.SaveInbox(items, func(err error) { done <- err })
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		st.DeleteInbox(1001, ids, sent...)
	}
	if _, _, err := st.ReserveIDs(ctx, 1); err != nil { // after the deletes
		b.Fatal(err)
	}
	b.ReportMetric(float64(lsn()-before)/float64(b.N), "WAL-bytes/msg")
}

// TestConnectionsKilled: when PostgreSQL closes the store's connections
// (as a restart of the database does), the next read and the next write
// go through on fresh ones; nothing is lost and nobody is told "failed".
func TestConnectionsKilled(t *testing.T) {
	storetest.NeedPostgres(t)
	ctx := context.Background()
	app := "qchat_test_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	url := storetest.PostgresURL(t)
	if strings.Contains(url, "://") {
		url += "&application_name=" + app
	} else {
		url += " application_name=" + app
	}
	st, err := Open(ctx, url, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	save := func(id int64) error {
		done := make(chan error, 1)
		st.SaveInbox([]store.Item{{Recipient: 1001, ID: id, Kind: "MSG", Sender: 1000, Nick: "a", Time: time.Now(), Body: "x"}},
			func(err error) { done <- err })
		return <-done
	}
	if err := save(1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Inbox(ctx, 1001); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, os.Getenv(storetest.EnvPostgres))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var killed int
	// Only the store's own: the pids first (MATERIALIZED: the planner may
	// not evaluate pg_terminate_backend on rows the filter drops).
	err = admin.QueryRow(ctx, `WITH mine AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE application_name = $1)
		SELECT count(*) FROM mine WHERE pg_terminate_backend(pid)`, app).Scan(&killed)
	if err != nil {
		t.Skipf("cannot end the store's connections (%v): needs a superuser or pg_signal_backend", err)
	}
	if killed < 2 {
		t.Fatalf("ended %d of the store's connections, want the writer's and a reader's", killed)
	}
	items, err := st.Inbox(ctx, 1001)
	if err != nil || len(items) != 1 {
		t.Fatalf("read after the connections went: %v, %v", items, err)
	}
	if err := save(2); err != nil {
		t.Fatalf("write after the connections went: %v", err)
	}
	if id, err := st.CreateUser(ctx, "after", "h"); err != nil || id != store.FirstUserID {
		t.Fatalf("CreateUser after the connections went: %d, %v", id, err)
	}
	if items, _ := st.Inbox(ctx, 1001); len(items) != 2 {
		t.Fatalf("inbox %v, want 2 items", items)
	}
}
