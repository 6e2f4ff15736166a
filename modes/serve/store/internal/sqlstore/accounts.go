package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"qchat/modes/serve/store"
)

// CreateUser adds an account and returns its new id. The insert selects
// nothing when the name is taken, so that a refused name burns no id
// (PostgreSQL takes an identity value before it checks constraints); two
// nodes registering one name at once still meet the unique index.
func (s *Store) CreateUser(ctx context.Context, nick, pwhash string) (int64, error) {
	var id int64
	err := s.do(ctx, func(ctx context.Context, tx Querier) error {
		err := tx.QueryRow(ctx, `INSERT INTO users (nick, nickkey, pwhash, created)
			SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS BIGINT)
			WHERE NOT EXISTS (SELECT 1 FROM users WHERE nickkey = $2)
			RETURNING id`, nick, store.NickKey(nick), pwhash, time.Now().Unix()).Scan(&id)
		switch {
		case errors.Is(err, sql.ErrNoRows), err != nil && s.d.IsUnique(err):
			return store.ErrNickTaken
		}
		return err
	})
	return id, err
}

// UserByID looks an account up by id.
func (s *Store) UserByID(ctx context.Context, id int64) (store.User, error) {
	return s.user(ctx, `SELECT id, nick, pwhash, created FROM users WHERE id = $1`, id)
}

// UserByNick looks an account up by nickname (any case).
func (s *Store) UserByNick(ctx context.Context, nick string) (store.User, error) {
	return s.user(ctx, `SELECT id, nick, pwhash, created FROM users WHERE nickkey = $1`, store.NickKey(nick))
}

func (s *Store) user(ctx context.Context, q string, arg any) (store.User, error) {
	var u store.User
	var created int64
	err := s.d.Reader().QueryRow(ctx, q, arg).Scan(&u.ID, &u.Nick, &u.PwHash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return u, store.ErrNoUser
	}
	u.Created = time.Unix(created, 0)
	return u, err
}

// Users returns every account in id order.
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	var out []store.User
	err := EachRow(ctx, s.d.Reader(), `SELECT id, nick, pwhash, created FROM users ORDER BY id`, nil, func(r Rows) error {
		var u store.User
		var created int64
		err := r.Scan(&u.ID, &u.Nick, &u.PwHash, &created)
		u.Created = time.Unix(created, 0)
		out = append(out, u)
		return err
	})
	return out, err
}

// SetNick changes a user's nickname (unique without regard to case).
func (s *Store) SetNick(ctx context.Context, user int64, nick string) error {
	err := s.exec(ctx, Stmt{`UPDATE users SET nick = $1, nickkey = $2 WHERE id = $3`, []any{nick, store.NickKey(nick), user}})
	if err != nil && s.d.IsUnique(err) {
		return store.ErrNickTaken
	}
	return err
}

// SetPassword replaces a user's password hash.
func (s *Store) SetPassword(ctx context.Context, user int64, pwhash string) error {
	return s.exec(ctx, Stmt{`UPDATE users SET pwhash = $1 WHERE id = $2`, []any{pwhash, user}})
}

// SetProfile stores a user's profile.
func (s *Store) SetProfile(ctx context.Context, user int64, p store.Profile) error {
	return s.exec(ctx, Stmt{`INSERT INTO profiles ("user", sex, age, address, status, no_receipts, no_typing) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT ("user") DO UPDATE SET sex = excluded.sex, age = excluded.age,
		address = excluded.address, status = excluded.status,
		no_receipts = excluded.no_receipts, no_typing = excluded.no_typing`, []any{user, p.Sex, p.Age, p.Address, p.Status, p.NoReceipts, p.NoTyping}})
}

// ReserveIDs durably moves the message-id high-water mark (the counter
// msgid) up by n and returns the range (lo, hi] now reserved. One UPDATE:
// on PostgreSQL its row lock makes the writers of several nodes take
// their ranges one after the other.
func (s *Store) ReserveIDs(ctx context.Context, n int64) (lo, hi int64, err error) {
	err = s.do(ctx, func(ctx context.Context, tx Querier) error {
		return tx.QueryRow(ctx, `UPDATE counters SET value = value + $1 WHERE name = 'msgid' RETURNING value`, n).Scan(&hi)
	})
	return hi - n, hi, err
}
