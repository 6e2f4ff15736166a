package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPostgres names the variable that points the tests at a PostgreSQL
// database: a URL or a key=value connection string, for a user that may
// create schemas there (CI: postgres://root@127.0.0.1:5432/test).
const EnvPostgres = "QCHAT_TEST_POSTGRES"

// SkipPostgres is why the PostgreSQL tests did not run.
const SkipPostgres = "PostgreSQL tests skipped: set " + EnvPostgres + " to a database URL (e.g. postgres://root@127.0.0.1:5432/test) to run them"

// NeedPostgres skips t, with a message naming QCHAT_TEST_POSTGRES, when
// that variable is not set.
func NeedPostgres(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvPostgres) == "" {
		t.Skip(SkipPostgres)
	}
}

// PostgresURL returns the URL of a fresh, empty schema in the database
// that QCHAT_TEST_POSTGRES names, dropped with everything in it when the
// test ends; it skips the test when the variable is not set.
func PostgresURL(t testing.TB) string {
	t.Helper()
	NeedPostgres(t)
	u, err := NewPostgresSchema(os.Getenv(EnvPostgres))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Drop(); err != nil {
			t.Errorf("drop test schema: %v", err)
		}
	})
	return u.URL
}

// PostgresSchema is a schema made for one test or one script.
type PostgresSchema struct {
	URL  string // base, with search_path set to the schema
	base string
	name string
}

// NewPostgresSchema makes an empty schema of a random name in the database
// of base and returns the URL that uses it.
func NewPostgresSchema(base string) (*PostgresSchema, error) {
	var b [6]byte
	rand.Read(b[:])
	name := "qchat_test_" + hex.EncodeToString(b[:])
	if err := adminExec(base, `CREATE SCHEMA `+name); err != nil {
		return nil, err
	}
	return &PostgresSchema{URL: withSearchPath(base, name), base: base, name: name}, nil
}

// Drop drops the schema and everything in it.
func (s *PostgresSchema) Drop() error {
	return adminExec(s.base, `DROP SCHEMA IF EXISTS `+s.name+` CASCADE`)
}

func adminExec(base, q string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, q)
	return err
}

// withSearchPath adds search_path to a URL or a key=value string.
func withSearchPath(base, schema string) string {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return base + " search_path=" + schema
}
