package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Spent resumption tokens, kept in the database where nodes share it:
// one row per token used, until it expires (modes/serve/resume keeps
// them in a file of the data folder on one server; a cluster's nodes ask
// here too, so that a token is good for one login on all of them).

// TokensTable is version 8 of both dialects.
func TokensTable(bigint string) func(ctx context.Context, tx Querier) error {
	return func(ctx context.Context, tx Querier) error {
		return ExecEach(ctx, tx,
			`CREATE TABLE resume_spent (
				id      TEXT PRIMARY KEY,
				expires `+bigint+` NOT NULL)`,
			`CREATE INDEX resume_spent_expires ON resume_spent (expires)`)
	}
}

// SpendToken records a token used; false when it was recorded before.
func (s *Store) SpendToken(ctx context.Context, id string, expires time.Time) (bool, error) {
	first := false
	err := s.do(ctx, func(ctx context.Context, tx Querier) error {
		var got string
		err := tx.QueryRow(ctx, `INSERT INTO resume_spent (id, expires) VALUES ($1, $2)
			ON CONFLICT (id) DO NOTHING RETURNING id`, id, expires.Unix()).Scan(&got)
		switch {
		case errors.Is(err, sql.ErrNoRows): // pgx's ErrNoRows is sql.ErrNoRows too
			return nil
		case err != nil:
			return err
		}
		first = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("spend resumption token: %w", err)
	}
	return first, nil
}

// PruneTokens forgets the tokens that expired before before.
func (s *Store) PruneTokens(ctx context.Context, before time.Time) error {
	err := s.do(ctx, func(ctx context.Context, tx Querier) error {
		return tx.Exec(ctx, `DELETE FROM resume_spent WHERE expires < $1`, before.Unix())
	})
	if err != nil {
		return fmt.Errorf("prune resumption tokens: %w", err)
	}
	return nil
}
