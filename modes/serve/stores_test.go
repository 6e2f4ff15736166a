package serve

import (
	"context"
	"testing"

	"qchat/modes/serve/store"
	"qchat/modes/serve/store/postgres"
	"qchat/modes/serve/store/storetest"
)

// testStore is the store of a test's servers: "" for SQLite in the data
// folder, or the URL of a fresh PostgreSQL schema (dropped after the test).
type testStore string

// eachStore runs fn once per store: on SQLite always, on PostgreSQL when
// QCHAT_TEST_POSTGRES names a database (else that half is skipped, saying
// so). A server test that touches the store runs here when it is cheap.
func eachStore(t *testing.T, fn func(t *testing.T, ts testStore)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "") })
	t.Run("postgres", func(t *testing.T) { fn(t, testStore(storetest.PostgresURL(t))) })
}

// server starts a server over data and this store.
func (ts testStore) server(t *testing.T, data string) *Server {
	t.Helper()
	return startTestServer(t, func(c *Config) { c.Data, c.Store = data, string(ts) })
}

// rawStore is a store opened by hand, for a look or a change between two
// servers.
type rawStore interface {
	store.Store
	storetest.Raw
}

// open opens the store as a server over data would (none may be running).
func (ts testStore) open(t *testing.T, data string) rawStore {
	t.Helper()
	if ts == "" {
		return openSQLite(t, data)
	}
	st, err := postgres.Open(context.Background(), string(ts), testLogger())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st
}

// rowCount counts what a query selects, on a server's own store.
func rowCount(t *testing.T, st store.Store, q string, args ...any) int {
	t.Helper()
	n, err := st.(storetest.Raw).QueryInt(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return int(n)
}
