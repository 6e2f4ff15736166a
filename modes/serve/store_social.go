package serve

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// The social part of the store: profiles, friendships, friend requests,
// blocks, groups, memberships and invites. The server holds all of it in
// memory (see social.go) and writes every change through these methods,
// each one transaction, before it answers the client.

// Profile is the public part of an account a user may change.
type Profile struct {
	Sex     string // "", "male", "female" or "other"
	Age     int    // 0 when not given
	Address string
	Status  string // a status line, shown with presence
}

// Friendship, request, block, group, member and invite rows as loaded.
type (
	pairRow  struct{ a, b int64 }
	groupRow struct {
		name    string
		owner   int64
		invite  bool
		created time.Time
	}
	memberRow struct {
		key  string
		user int64
	}
	inviteRow struct {
		key           string
		user, inviter int64
	}
)

// socialRows is everything social.go loads at start.
type socialRows struct {
	profiles map[int64]Profile
	friends  []pairRow // both directions are stored
	requests []pairRow // a = sender, b = recipient
	blocks   []pairRow // a blocks b
	groups   []groupRow
	members  []memberRow
	invites  []inviteRow
}

func groupKey(name string) string { return strings.ToLower(name) }

// loadSocial reads every social row.
func (s *Store) loadSocial(ctx context.Context) (*socialRows, error) {
	out := &socialRows{profiles: make(map[int64]Profile)}
	q := func(query string, scan func(*sql.Rows) error) error {
		rows, err := s.r.QueryContext(ctx, query)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	pairs := func(dst *[]pairRow) func(*sql.Rows) error {
		return func(r *sql.Rows) error {
			var p pairRow
			err := r.Scan(&p.a, &p.b)
			*dst = append(*dst, p)
			return err
		}
	}
	err := q(`SELECT user, sex, age, address, status FROM profiles`, func(r *sql.Rows) error {
		var id int64
		var p Profile
		err := r.Scan(&id, &p.Sex, &p.Age, &p.Address, &p.Status)
		out.profiles[id] = p
		return err
	})
	if err == nil {
		err = q(`SELECT user, friend FROM friends`, pairs(&out.friends))
	}
	if err == nil {
		err = q(`SELECT sender, recipient FROM friend_requests ORDER BY time`, pairs(&out.requests))
	}
	if err == nil {
		err = q(`SELECT user, blocked FROM blocks`, pairs(&out.blocks))
	}
	if err == nil {
		err = q(`SELECT name, owner, invite, created FROM chatgroups`, func(r *sql.Rows) error {
			var g groupRow
			var created int64
			err := r.Scan(&g.name, &g.owner, &g.invite, &created)
			g.created = time.Unix(created, 0)
			out.groups = append(out.groups, g)
			return err
		})
	}
	if err == nil {
		err = q(`SELECT namekey, user FROM members ORDER BY joined`, func(r *sql.Rows) error {
			var m memberRow
			err := r.Scan(&m.key, &m.user)
			out.members = append(out.members, m)
			return err
		})
	}
	if err == nil {
		err = q(`SELECT namekey, user, inviter FROM invites ORDER BY time`, func(r *sql.Rows) error {
			var m inviteRow
			err := r.Scan(&m.key, &m.user, &m.inviter)
			out.invites = append(out.invites, m)
			return err
		})
	}
	return out, err
}

// exec runs statements in one transaction and waits for the commit.
func (s *Store) exec(ctx context.Context, stmts ...stmt) error {
	return s.do(ctx, func(tx *sql.Tx) error {
		for _, st := range stmts {
			if _, err := tx.Exec(st.q, st.args...); err != nil {
				return err
			}
		}
		return nil
	})
}

type stmt struct {
	q    string
	args []any
}

func sq(q string, args ...any) stmt { return stmt{q, args} }

// SetProfile stores a user's profile.
func (s *Store) SetProfile(ctx context.Context, user int64, p Profile) error {
	return s.exec(ctx, sq(`INSERT INTO profiles (user, sex, age, address, status) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user) DO UPDATE SET sex = excluded.sex, age = excluded.age,
		address = excluded.address, status = excluded.status`, user, p.Sex, p.Age, p.Address, p.Status))
}

// SetNick changes a user's nickname (unique without regard to case).
func (s *Store) SetNick(ctx context.Context, user int64, nick string) error {
	err := s.exec(ctx, sq(`UPDATE users SET nick = ?, nickkey = ? WHERE id = ?`, nick, nickKey(nick), user))
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return ErrNickTaken
	}
	return err
}

// SetPassword replaces a user's password hash.
func (s *Store) SetPassword(ctx context.Context, user int64, pwhash string) error {
	return s.exec(ctx, sq(`UPDATE users SET pwhash = ? WHERE id = ?`, pwhash, user))
}

// AddFriendRequest records that from asked to to.
func (s *Store) AddFriendRequest(ctx context.Context, from, to int64) error {
	return s.exec(ctx, sq(`INSERT OR IGNORE INTO friend_requests (sender, recipient, time) VALUES (?, ?, ?)`,
		from, to, time.Now().UnixMilli()))
}

// DropFriendRequest forgets a request (answered, or refused).
func (s *Store) DropFriendRequest(ctx context.Context, from, to int64) error {
	return s.exec(ctx, sq(`DELETE FROM friend_requests WHERE sender = ? AND recipient = ?`, from, to))
}

// MakeFriends records a friendship both ways and drops the requests
// between the two.
func (s *Store) MakeFriends(ctx context.Context, a, b int64) error {
	now := time.Now().Unix()
	return s.exec(ctx,
		sq(`INSERT OR IGNORE INTO friends (user, friend, since) VALUES (?, ?, ?)`, a, b, now),
		sq(`INSERT OR IGNORE INTO friends (user, friend, since) VALUES (?, ?, ?)`, b, a, now),
		sq(`DELETE FROM friend_requests WHERE (sender = ? AND recipient = ?) OR (sender = ? AND recipient = ?)`, a, b, b, a))
}

// Unfriend ends a friendship both ways.
func (s *Store) Unfriend(ctx context.Context, a, b int64) error {
	return s.exec(ctx, sq(`DELETE FROM friends WHERE (user = ? AND friend = ?) OR (user = ? AND friend = ?)`, a, b, b, a))
}

// Block records that user blocks other; unblock undoes it.
func (s *Store) Block(ctx context.Context, user, other int64, block bool) error {
	if block {
		return s.exec(ctx, sq(`INSERT OR IGNORE INTO blocks (user, blocked) VALUES (?, ?)`, user, other),
			sq(`DELETE FROM friend_requests WHERE sender = ? AND recipient = ?`, other, user))
	}
	return s.exec(ctx, sq(`DELETE FROM blocks WHERE user = ? AND blocked = ?`, user, other))
}

// CreateGroup creates a group with its owner as the first member.
func (s *Store) CreateGroup(ctx context.Context, name string, owner int64, invite bool, created time.Time) error {
	err := s.exec(ctx,
		sq(`INSERT INTO chatgroups (name, namekey, owner, invite, created) VALUES (?, ?, ?, ?, ?)`,
			name, groupKey(name), owner, invite, created.Unix()),
		sq(`INSERT INTO members (namekey, user, joined) VALUES (?, ?, ?)`, groupKey(name), owner, created.UnixMilli()))
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return errGroupTaken
	}
	return err
}

// AddMember adds user to a group and drops an invite it answered.
func (s *Store) AddMember(ctx context.Context, name string, user int64) error {
	return s.exec(ctx,
		sq(`INSERT OR IGNORE INTO members (namekey, user, joined) VALUES (?, ?, ?)`, groupKey(name), user, time.Now().UnixMilli()),
		sq(`DELETE FROM invites WHERE namekey = ? AND user = ?`, groupKey(name), user))
}

// RemoveMember takes user out of a group. A new owner, when not 0, takes
// over; when the last member leaves, the group is deleted.
func (s *Store) RemoveMember(ctx context.Context, name string, user, newOwner int64, last bool) error {
	key := groupKey(name)
	stmts := []stmt{sq(`DELETE FROM members WHERE namekey = ? AND user = ?`, key, user)}
	if newOwner != 0 {
		stmts = append(stmts, sq(`UPDATE chatgroups SET owner = ? WHERE namekey = ?`, newOwner, key))
	}
	if last {
		stmts = append(stmts, sq(`DELETE FROM chatgroups WHERE namekey = ?`, key), sq(`DELETE FROM invites WHERE namekey = ?`, key))
	}
	return s.exec(ctx, stmts...)
}

// AddInvite records an invitation into a group.
func (s *Store) AddInvite(ctx context.Context, name string, user, inviter int64) error {
	return s.exec(ctx, sq(`INSERT OR REPLACE INTO invites (namekey, user, inviter, time) VALUES (?, ?, ?, ?)`,
		groupKey(name), user, inviter, time.Now().UnixMilli()))
}

// DropInvite forgets an invitation (refused).
func (s *Store) DropInvite(ctx context.Context, name string, user int64) error {
	return s.exec(ctx, sq(`DELETE FROM invites WHERE namekey = ? AND user = ?`, groupKey(name), user))
}
