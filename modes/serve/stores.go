package serve

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"qchat/modes/serve/store"
	"qchat/modes/serve/store/postgres"
	"qchat/modes/serve/store/sqlite"
)

// openStore opens the store cfg names: SQLite in the data folder (Store
// empty), or PostgreSQL at the URL in Store. It returns the store and how
// to name it in a log line (no password).
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (store.Store, string, error) {
	switch {
	case cfg.Cluster != "" && !IsPostgresURL(cfg.Store):
		return nil, "", fmt.Errorf("--cluster needs a postgres://... store: the nodes share one database")
	case cfg.Cluster != "":
		st, err := postgres.OpenNode(ctx, cfg.Store, log)
		return st, postgres.Redact(cfg.Store), err
	case cfg.Store == "" || cfg.Store == "sqlite":
		st, err := sqlite.Open(cfg.Data, cfg.Sync, log)
		return st, "sqlite", err
	case IsPostgresURL(cfg.Store):
		st, err := postgres.Open(ctx, cfg.Store, log)
		return st, postgres.Redact(cfg.Store), err
	}
	return nil, "", fmt.Errorf("store %q: want sqlite, or a postgres://... URL", cfg.Store)
}

// IsPostgresURL says whether s names a PostgreSQL database.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}
