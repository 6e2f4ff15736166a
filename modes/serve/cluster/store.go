package cluster

import (
	"context"
	"time"

	"qchat/modes/serve/store"
)

// watched is a store that tells the other nodes of every account and
// social change once it is committed (Cluster.Changed), so that what one
// node changes takes effect for the sessions of all.
type watched struct {
	store.Store
	c *Cluster
}

// Watch returns st, telling the cluster's other nodes of each committed
// change of an account ("user") or of friends, requests, blocks, groups
// and profiles ("social").
func (c *Cluster) Watch(st store.Store) store.Store { return &watched{Store: st, c: c} }

func (w *watched) user(id int64, err error) error {
	if err == nil {
		w.c.Changed("user", id)
	}
	return err
}

func (w *watched) social(err error) error {
	if err == nil {
		w.c.Changed("social", 0)
	}
	return err
}

func (w *watched) CreateUser(ctx context.Context, nick, pwhash string) (int64, error) {
	id, err := w.Store.CreateUser(ctx, nick, pwhash)
	return id, w.user(id, err)
}

func (w *watched) SetNick(ctx context.Context, user int64, nick string) error {
	return w.user(user, w.Store.SetNick(ctx, user, nick))
}

func (w *watched) SetPassword(ctx context.Context, user int64, pwhash string) error {
	return w.user(user, w.Store.SetPassword(ctx, user, pwhash))
}

func (w *watched) SetProfile(ctx context.Context, user int64, p store.Profile) error {
	return w.social(w.Store.SetProfile(ctx, user, p))
}

func (w *watched) AddFriendRequest(ctx context.Context, from, to int64) error {
	return w.social(w.Store.AddFriendRequest(ctx, from, to))
}

func (w *watched) DropFriendRequest(ctx context.Context, from, to int64) error {
	return w.social(w.Store.DropFriendRequest(ctx, from, to))
}

func (w *watched) MakeFriends(ctx context.Context, a, b int64) error {
	return w.social(w.Store.MakeFriends(ctx, a, b))
}

func (w *watched) Unfriend(ctx context.Context, a, b int64) error {
	return w.social(w.Store.Unfriend(ctx, a, b))
}

func (w *watched) Block(ctx context.Context, user, other int64, block bool) error {
	return w.social(w.Store.Block(ctx, user, other, block))
}

func (w *watched) CreateGroup(ctx context.Context, name string, owner int64, invite bool, created time.Time, from int64) error {
	return w.social(w.Store.CreateGroup(ctx, name, owner, invite, created, from))
}

func (w *watched) AddMember(ctx context.Context, name string, user int64, from int64) error {
	return w.social(w.Store.AddMember(ctx, name, user, from))
}

func (w *watched) RemoveMember(ctx context.Context, name string, user, newOwner int64, last bool) error {
	return w.social(w.Store.RemoveMember(ctx, name, user, newOwner, last))
}

func (w *watched) AddInvite(ctx context.Context, name string, user, inviter int64) error {
	return w.social(w.Store.AddInvite(ctx, name, user, inviter))
}

func (w *watched) DropInvite(ctx context.Context, name string, user int64) error {
	return w.social(w.Store.DropInvite(ctx, name, user))
}
