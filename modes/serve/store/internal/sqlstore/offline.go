package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"qchat/modes/serve/store"
)

// Offline files (serve --offline-files): one row per file a user left on
// the server for another, until the recipient takes or refuses it or it
// expires. The bytes live in the data folder under their hash
// (modes/serve/offline); a hash may be held by several rows.

const offlineColumns = `id, sender, recipient, name, size, hash, created`

func scanOffline(r Row) (store.OfflineFile, error) {
	var f store.OfflineFile
	var ms int64
	err := r.Scan(&f.ID, &f.Sender, &f.Recipient, &f.Name, &f.Size, &f.Hash, &ms)
	f.Created = time.UnixMilli(ms)
	return f, err
}

// AddOfflineFile records a file left for its recipient and returns its id.
func (s *Store) AddOfflineFile(ctx context.Context, f store.OfflineFile) (int64, error) {
	var id int64
	err := s.do(ctx, func(ctx context.Context, tx Querier) error {
		return tx.QueryRow(ctx, `INSERT INTO offline_files (sender, recipient, name, size, hash, created)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			f.Sender, f.Recipient, f.Name, f.Size, f.Hash, f.Created.UnixMilli()).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("record offline file: %w", err)
	}
	return id, nil
}

// OfflineFile looks one file up by id.
func (s *Store) OfflineFile(ctx context.Context, id int64) (store.OfflineFile, error) {
	f, err := scanOffline(s.d.Reader().QueryRow(ctx, `SELECT `+offlineColumns+` FROM offline_files WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) { // pgx's ErrNoRows is sql.ErrNoRows too
		return f, store.ErrNoOfflineFile
	}
	return f, err
}

// OfflineFiles returns the files that match q, oldest first.
func (s *Store) OfflineFiles(ctx context.Context, q store.OfflineQuery) ([]store.OfflineFile, error) {
	where, args := `TRUE`, []any{}
	switch {
	case q.Recipient != 0:
		where, args = `recipient = $1`, append(args, q.Recipient)
	case q.Sender != 0:
		where, args = `sender = $1`, append(args, q.Sender)
	case !q.Before.IsZero():
		where, args = `created < $1`, append(args, q.Before.UnixMilli())
	}
	var out []store.OfflineFile
	err := EachRow(ctx, s.d.Reader(), `SELECT `+offlineColumns+` FROM offline_files WHERE `+where+` ORDER BY id`, args, func(r Rows) error {
		f, err := scanOffline(r)
		out = append(out, f)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read offline files: %w", err)
	}
	return out, nil
}

// DropOfflineFile deletes a file's row and says whether another row
// still holds its hash (then its bytes must stay). ErrNoOfflineFile when
// the row is gone already: whoever dropped it first owns the outcome.
func (s *Store) DropOfflineFile(ctx context.Context, id int64) (hashHeld bool, err error) {
	err = s.do(ctx, func(ctx context.Context, tx Querier) error {
		var hash string
		if err := tx.QueryRow(ctx, `DELETE FROM offline_files WHERE id = $1 RETURNING hash`, id).Scan(&hash); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNoOfflineFile
			}
			return err
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM offline_files WHERE hash = $1`, hash).Scan(&n); err != nil {
			return err
		}
		hashHeld = n > 0
		return nil
	})
	return hashHeld, err
}

// OfflineTable is version 7 of both dialects: the
// offline files, found by recipient, by sender (the quota), by age (the
// expiry) and by hash (bytes shared by several rows). id is the dialect's
// id column (never reused), bigint its type for a number.
func OfflineTable(id, bigint string) func(ctx context.Context, tx Querier) error {
	return func(ctx context.Context, tx Querier) error {
		return ExecEach(ctx, tx,
			`CREATE TABLE offline_files (
				id        `+id+`,
				sender    `+bigint+` NOT NULL,
				recipient `+bigint+` NOT NULL,
				name      TEXT NOT NULL,
				size      `+bigint+` NOT NULL,
				hash      TEXT NOT NULL,
				created   `+bigint+` NOT NULL)`,
			`CREATE INDEX offline_files_recipient ON offline_files (recipient, id)`,
			`CREATE INDEX offline_files_sender ON offline_files (sender)`,
			`CREATE INDEX offline_files_created ON offline_files (created)`,
			`CREATE INDEX offline_files_hash ON offline_files (hash)`)
	}
}
