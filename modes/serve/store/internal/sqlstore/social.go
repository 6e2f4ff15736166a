package sqlstore

import (
	"context"
	"time"

	"qchat/modes/serve/store"
)

// The social part: profiles, friendships, friend requests, blocks,
// groups, memberships and invites. The server holds all of it in memory
// and writes every change through here, each one transaction, before it
// answers the client.

// LoadSocial reads every social row. Rows that come in an order (requests,
// members, invites) are sorted fully, so both databases give the same.
func (s *Store) LoadSocial(ctx context.Context) (*store.Social, error) {
	out := &store.Social{Profiles: make(map[int64]store.Profile)}
	db := s.d.Reader()
	q := func(query string, scan func(Rows) error) error {
		return EachRow(ctx, db, query, nil, scan)
	}
	pairs := func(dst *[]store.Pair) func(Rows) error {
		return func(r Rows) error {
			var p store.Pair
			err := r.Scan(&p.A, &p.B)
			*dst = append(*dst, p)
			return err
		}
	}
	err := q(`SELECT "user", sex, age, address, status, no_receipts, no_typing FROM profiles`, func(r Rows) error {
		var id int64
		var p store.Profile
		err := r.Scan(&id, &p.Sex, &p.Age, &p.Address, &p.Status, &p.NoReceipts, &p.NoTyping)
		out.Profiles[id] = p
		return err
	})
	if err == nil {
		err = q(`SELECT "user", friend FROM friends ORDER BY "user", friend`, pairs(&out.Friends))
	}
	if err == nil {
		err = q(`SELECT sender, recipient FROM friend_requests ORDER BY time, sender, recipient`, pairs(&out.Requests))
	}
	if err == nil {
		err = q(`SELECT "user", blocked FROM blocks ORDER BY "user", blocked`, pairs(&out.Blocks))
	}
	if err == nil {
		err = q(`SELECT name, owner, invite, created FROM chatgroups ORDER BY namekey`, func(r Rows) error {
			var g store.Group
			var created int64
			err := r.Scan(&g.Name, &g.Owner, &g.Invite, &created)
			g.Created = time.Unix(created, 0)
			out.Groups = append(out.Groups, g)
			return err
		})
	}
	if err == nil {
		err = q(`SELECT namekey, "user" FROM members ORDER BY joined, namekey, "user"`, func(r Rows) error {
			var m store.Member
			err := r.Scan(&m.Key, &m.User)
			out.Members = append(out.Members, m)
			return err
		})
	}
	if err == nil {
		err = q(`SELECT namekey, "user", inviter FROM invites ORDER BY time, namekey, "user"`, func(r Rows) error {
			var m store.Invite
			err := r.Scan(&m.Key, &m.User, &m.Inviter)
			out.Invites = append(out.Invites, m)
			return err
		})
	}
	return out, err
}

func st(q string, args ...any) Stmt { return Stmt{q, args} }

// AddFriendRequest records that from asked to to.
func (s *Store) AddFriendRequest(ctx context.Context, from, to int64) error {
	return s.exec(ctx, st(`INSERT INTO friend_requests (sender, recipient, time) VALUES ($1, $2, $3)
		ON CONFLICT (sender, recipient) DO NOTHING`, from, to, time.Now().UnixMilli()))
}

// DropFriendRequest forgets a request (answered, or refused).
func (s *Store) DropFriendRequest(ctx context.Context, from, to int64) error {
	return s.exec(ctx, st(`DELETE FROM friend_requests WHERE sender = $1 AND recipient = $2`, from, to))
}

// MakeFriends records a friendship both ways and drops the requests
// between the two.
func (s *Store) MakeFriends(ctx context.Context, a, b int64) error {
	now := time.Now().Unix()
	const add = `INSERT INTO friends ("user", friend, since) VALUES ($1, $2, $3) ON CONFLICT ("user", friend) DO NOTHING`
	return s.exec(ctx, st(add, a, b, now), st(add, b, a, now),
		st(`DELETE FROM friend_requests WHERE (sender = $1 AND recipient = $2) OR (sender = $2 AND recipient = $1)`, a, b))
}

// Unfriend ends a friendship both ways.
func (s *Store) Unfriend(ctx context.Context, a, b int64) error {
	return s.exec(ctx, st(`DELETE FROM friends WHERE ("user" = $1 AND friend = $2) OR ("user" = $2 AND friend = $1)`, a, b))
}

// Block records that user blocks other; unblock undoes it.
func (s *Store) Block(ctx context.Context, user, other int64, block bool) error {
	if block {
		return s.exec(ctx, st(`INSERT INTO blocks ("user", blocked) VALUES ($1, $2) ON CONFLICT ("user", blocked) DO NOTHING`, user, other),
			st(`DELETE FROM friend_requests WHERE sender = $1 AND recipient = $2`, other, user))
	}
	return s.exec(ctx, st(`DELETE FROM blocks WHERE "user" = $1 AND blocked = $2`, user, other))
}

// CreateGroup creates a group with its owner as the first member.
func (s *Store) CreateGroup(ctx context.Context, name string, owner int64, invite bool, created time.Time, from int64) error {
	key := store.GroupKey(name)
	err := s.exec(ctx,
		st(`INSERT INTO chatgroups (name, namekey, owner, invite, created) VALUES ($1, $2, $3, $4, $5)`,
			name, key, owner, invite, created.Unix()),
		st(`INSERT INTO members (namekey, "user", joined, acked, since) VALUES ($1, $2, $3, $4, $4)`, key, owner, created.UnixMilli(), from))
	if err != nil && s.d.IsUnique(err) {
		return store.ErrGroupTaken
	}
	return err
}

// AddMember adds user to a group and drops an invite it answered.
func (s *Store) AddMember(ctx context.Context, name string, user int64, from int64) error {
	key := store.GroupKey(name)
	return s.exec(ctx,
		st(`INSERT INTO members (namekey, "user", joined, acked, since) VALUES ($1, $2, $3, $4, $4)
			ON CONFLICT (namekey, "user") DO NOTHING`, key, user, time.Now().UnixMilli(), from),
		st(`DELETE FROM invites WHERE namekey = $1 AND "user" = $2`, key, user))
}

// RemoveMember takes user out of a group.
func (s *Store) RemoveMember(ctx context.Context, name string, user, newOwner int64, last bool) error {
	key := store.GroupKey(name)
	return s.do(ctx, func(ctx context.Context, tx Querier) error {
		stmts := []Stmt{st(`DELETE FROM members WHERE namekey = $1 AND "user" = $2`, key, user)}
		if newOwner != 0 {
			stmts = append(stmts, st(`UPDATE chatgroups SET owner = $1 WHERE namekey = $2`, newOwner, key))
		}
		if last {
			stmts = append(stmts, st(`DELETE FROM chatgroups WHERE namekey = $1`, key),
				st(`DELETE FROM invites WHERE namekey = $1`, key))
		}
		return tx.ExecBatch(ctx, append(stmts, dropPassedRows(key, last)...))
	})
}

// AddInvite records an invitation into a group (again: renewed).
func (s *Store) AddInvite(ctx context.Context, name string, user, inviter int64) error {
	return s.exec(ctx, st(`INSERT INTO invites (namekey, "user", inviter, time) VALUES ($1, $2, $3, $4)
		ON CONFLICT (namekey, "user") DO UPDATE SET inviter = excluded.inviter, time = excluded.time`,
		store.GroupKey(name), user, inviter, time.Now().UnixMilli()))
}

// DropInvite forgets an invitation (refused).
func (s *Store) DropInvite(ctx context.Context, name string, user int64) error {
	return s.exec(ctx, st(`DELETE FROM invites WHERE namekey = $1 AND "user" = $2`, store.GroupKey(name), user))
}
