package serve

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"qchat/modes/serve/store"
	"qchat/protocol"
)

// social holds friendships, friend requests, blocks and groups in memory,
// loaded at start and written through to the store on every change. One
// mutex guards it; changes hold it across their store write (a few ms, and
// rare), so that memory and store never disagree and checks cannot race.
type social struct {
	mu       sync.RWMutex
	store    store.Store
	lastID   func() int64                // the last message id given out: where a new member's group cursor starts
	friends  map[int64]set               // both directions
	requests map[int64]map[int64]bool    // recipient -> senders waiting for an answer
	blocks   map[int64]set               // user -> whom it blocks
	nblocks  atomic.Int64                // blocks in all: 0 spares every presence check a look at them
	groups   map[string]*group           // by groupKey
	mine     map[int64]map[string]*group // user -> groups it is in

	miss func() // a node of a cluster: reloads everything from the store (clustered.go)
}

type set map[int64]struct{}

func (s set) has(id int64) bool { _, ok := s[id]; return ok }

// group is one multicast group.
type group struct {
	name    string // as created; shown as "#" + name
	owner   int64
	invite  bool // invite-only; otherwise anyone may JOIN
	created time.Time
	members []int64         // in joining order
	invited map[int64]int64 // invitee -> inviter
}

func (g *group) tag() string { return "#" + g.name }

func (g *group) isMember(user int64) bool {
	for _, m := range g.members {
		if m == user {
			return true
		}
	}
	return false
}

var (
	errGroupTaken = protocol.Errorf(protocol.CodeNameTaken, "a group of that name exists")
	errNoGroup    = protocol.Errorf(protocol.CodeNoSuchGroup, "no such group")
	errNotMember  = protocol.Errorf(protocol.CodeForbidden, "you are not a member of that group")
)

func loadSocial(ctx context.Context, st store.Store, dir *directory) (*social, error) {
	rows, err := st.LoadSocial(ctx)
	if err != nil {
		return nil, err
	}
	so := &social{
		store:    st,
		lastID:   func() int64 { return 0 },
		friends:  make(map[int64]set),
		requests: make(map[int64]map[int64]bool),
		blocks:   make(map[int64]set),
		groups:   make(map[string]*group),
		mine:     make(map[int64]map[string]*group),
	}
	loadedProfiles(dir, rows.Profiles)
	for _, p := range rows.Friends {
		so.link(so.friends, p.A, p.B)
	}
	for _, p := range rows.Requests {
		so.addRequest(p.A, p.B)
	}
	for _, p := range rows.Blocks {
		if !so.blocks[p.A].has(p.B) {
			so.nblocks.Add(1)
		}
		so.link(so.blocks, p.A, p.B)
	}
	for _, g := range rows.Groups {
		so.groups[store.GroupKey(g.Name)] = &group{name: g.Name, owner: g.Owner, invite: g.Invite, created: g.Created, invited: make(map[int64]int64)}
	}
	for _, m := range rows.Members {
		if g := so.groups[m.Key]; g != nil {
			so.join(g, m.User)
		}
	}
	for _, m := range rows.Invites {
		if g := so.groups[m.Key]; g != nil {
			g.invited[m.User] = m.Inviter
		}
	}
	return so, nil
}

func (so *social) link(m map[int64]set, a, b int64) {
	if m[a] == nil {
		m[a] = make(set)
	}
	m[a][b] = struct{}{}
}

func (so *social) addRequest(from, to int64) {
	if so.requests[to] == nil {
		so.requests[to] = make(map[int64]bool)
	}
	so.requests[to][from] = true
}

func (so *social) join(g *group, user int64) {
	if !g.isMember(user) {
		g.members = append(g.members, user)
	}
	if so.mine[user] == nil {
		so.mine[user] = make(map[string]*group)
	}
	so.mine[user][store.GroupKey(g.name)] = g
	delete(g.invited, user)
}

// blocked reports whether user blocks other.
func (so *social) blocked(user, other int64) bool {
	so.mu.RLock()
	defer so.mu.RUnlock()
	return so.blocks[user].has(other)
}

// areFriends reports whether a and b are friends.
func (so *social) areFriends(a, b int64) bool {
	so.mu.RLock()
	defer so.mu.RUnlock()
	return so.friends[a].has(b)
}

// friendsOf returns user's friends, by id.
func (so *social) friendsOf(user int64) []int64 {
	so.mu.RLock()
	out := make([]int64, 0, len(so.friends[user]))
	for id := range so.friends[user] {
		out = append(out, id)
	}
	so.mu.RUnlock()
	return sortedIDs(out)
}

// friendOutcome says what ADD did.
type friendOutcome int

const (
	friendAsked      friendOutcome = iota // a request now waits for the other's answer
	friendAlready                         // they were friends already
	friendMade                            // the other had asked first: now friends
	friendDropped                         // the other blocks the asker: dropped, silently
	friendAskedAgain                      // a request waits already: the other is not asked twice
)

// requestFriend handles ADD from user to other.
func (so *social) requestFriend(ctx context.Context, user, other int64) (friendOutcome, error) {
	if user == other {
		return 0, protocol.Errorf(protocol.CodeSyntax, "you cannot befriend yourself")
	}
	so.mu.Lock()
	defer so.mu.Unlock()
	switch {
	case so.friends[user].has(other):
		return friendAlready, nil
	case so.requests[user][other]:
		if err := so.store.MakeFriends(ctx, user, other); err != nil {
			return 0, err
		}
		so.befriendLocked(user, other)
		return friendMade, nil
	case so.blocks[other].has(user):
		return friendDropped, nil
	case so.requests[other][user]:
		return friendAskedAgain, nil // asked before: not twice
	}
	if err := so.store.AddFriendRequest(ctx, user, other); err != nil {
		return 0, err
	}
	so.addRequest(user, other)
	return friendAsked, nil
}

func (so *social) befriendLocked(a, b int64) {
	so.link(so.friends, a, b)
	so.link(so.friends, b, a)
	delete(so.requests[a], b)
	delete(so.requests[b], a)
}

// answerFriend handles ACCEPT/REJECT friend from user to a request by other.
func (so *social) answerFriend(ctx context.Context, user, other int64, accept bool) error {
	so.mu.Lock()
	defer so.mu.Unlock()
	if !so.requests[user][other] {
		return protocol.Errorf(protocol.CodeSequence, "no friend request from %d", other)
	}
	if accept {
		if err := so.store.MakeFriends(ctx, user, other); err != nil {
			return err
		}
		so.befriendLocked(user, other)
		return nil
	}
	if err := so.store.DropFriendRequest(ctx, other, user); err != nil {
		return err
	}
	delete(so.requests[user], other)
	return nil
}

// unfriend handles REMOVE; false if they were not friends.
func (so *social) unfriend(ctx context.Context, user, other int64) (bool, error) {
	so.mu.Lock()
	defer so.mu.Unlock()
	if !so.friends[user].has(other) {
		return false, nil
	}
	if err := so.store.Unfriend(ctx, user, other); err != nil {
		return false, err
	}
	delete(so.friends[user], other)
	delete(so.friends[other], user)
	return true, nil
}

// block handles BLOCK and UNBLOCK. Blocking also drops the other's
// pending friend request.
func (so *social) block(ctx context.Context, user, other int64, on bool) error {
	if user == other {
		return protocol.Errorf(protocol.CodeSyntax, "you cannot block yourself")
	}
	so.mu.Lock()
	defer so.mu.Unlock()
	if so.blocks[user].has(other) == on {
		return nil
	}
	if err := so.store.Block(ctx, user, other, on); err != nil {
		return err
	}
	if on {
		so.link(so.blocks, user, other)
		delete(so.requests[user], other)
		so.nblocks.Add(1)
	} else {
		delete(so.blocks[user], other)
		so.nblocks.Add(-1)
	}
	return nil
}

// anyBlocks reports whether anybody blocks anybody (no lock).
func (so *social) anyBlocks() bool { return so.nblocks.Load() > 0 }

// blocksOf returns whom user blocks.
func (so *social) blocksOf(user int64) []int64 {
	so.mu.RLock()
	defer so.mu.RUnlock()
	out := make([]int64, 0, len(so.blocks[user]))
	for u := range so.blocks[user] {
		out = append(out, u)
	}
	return out
}

// pendingItem is one request waiting for user's answer.
type pendingItem struct {
	kind  string // "friend" or "invite"
	from  int64
	group string // "#name" for invites
}

// pending lists what waits for user's answer: friend requests, then invites.
func (so *social) pending(user int64) []pendingItem {
	so.mu.RLock()
	defer so.mu.RUnlock()
	var out []pendingItem
	for from := range so.requests[user] {
		out = append(out, pendingItem{kind: "friend", from: from})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].from < out[j].from })
	var inv []pendingItem
	for _, g := range so.groups {
		if from, ok := g.invited[user]; ok {
			inv = append(inv, pendingItem{kind: "invite", from: from, group: g.tag()})
		}
	}
	sort.Slice(inv, func(i, j int) bool { return inv[i].group < inv[j].group })
	return append(out, inv...)
}

// group returns the group named name (with or without '#').
func (so *social) group(name string) (*group, error) {
	n, err := protocol.GroupName(name)
	if err != nil {
		return nil, err
	}
	so.mu.RLock()
	g := so.groups[store.GroupKey(n)]
	so.mu.RUnlock()
	if g == nil && so.miss != nil {
		so.miss() // made on another node a moment ago?
		so.mu.RLock()
		g = so.groups[store.GroupKey(n)]
		so.mu.RUnlock()
	}
	if g == nil {
		return nil, errNoGroup
	}
	return g, nil
}

// createGroup handles CREATE.
func (so *social) createGroup(ctx context.Context, user int64, name string, invite bool) (*group, error) {
	n, err := protocol.GroupName(name)
	if err != nil {
		return nil, err
	}
	so.mu.Lock()
	defer so.mu.Unlock()
	if so.groups[store.GroupKey(n)] != nil {
		return nil, errGroupTaken
	}
	g := &group{name: n, owner: user, invite: invite, created: time.Now(), invited: make(map[int64]int64)}
	if err := so.store.CreateGroup(ctx, n, user, invite, g.created, so.lastID()); err != nil {
		if errors.Is(err, store.ErrGroupTaken) { // by a group that is not in memory
			return nil, errGroupTaken
		}
		return nil, err
	}
	so.groups[store.GroupKey(n)] = g
	so.join(g, user)
	return g, nil
}

// joinGroup handles JOIN (open groups, or a pending invite) and ACCEPT invite.
func (so *social) joinGroup(ctx context.Context, user int64, name string, needInvite bool) (g *group, inviter int64, err error) {
	if g, err = so.group(name); err != nil {
		return nil, 0, err
	}
	so.mu.Lock()
	defer so.mu.Unlock()
	if g.isMember(user) {
		return g, 0, protocol.Errorf(protocol.CodeSequence, "you are already in %s", g.tag())
	}
	inviter, invited := g.invited[user]
	if !invited && (g.invite || needInvite) {
		if needInvite {
			return g, 0, protocol.Errorf(protocol.CodeSequence, "no invite to %s", g.tag())
		}
		return g, 0, protocol.Errorf(protocol.CodeForbidden, "%s is invite-only", g.tag())
	}
	if err := so.store.AddMember(ctx, g.name, user, so.lastID()); err != nil {
		return g, 0, err
	}
	so.join(g, user)
	return g, inviter, nil
}

// inviteOutcome says what INVITE did.
type inviteOutcome int

const (
	invited       inviteOutcome = iota
	inviteDropped               // the invitee blocks the inviter: silently dropped
	invitedAgain                // an invite waits already: the invitee is not asked twice
)

// invite handles INVITE: any member may invite into its group.
func (so *social) invite(ctx context.Context, user int64, name string, other int64) (*group, inviteOutcome, error) {
	g, err := so.group(name)
	if err != nil {
		return nil, 0, err
	}
	so.mu.Lock()
	defer so.mu.Unlock()
	switch {
	case !g.isMember(user):
		return g, 0, errNotMember
	case g.isMember(other):
		return g, 0, protocol.Errorf(protocol.CodeSequence, "%d is already in %s", other, g.tag())
	case so.blocks[other].has(user):
		return g, inviteDropped, nil
	}
	if _, ok := g.invited[other]; ok {
		return g, invitedAgain, nil // asked before: not twice
	}
	if err := so.store.AddInvite(ctx, g.name, other, user); err != nil {
		return g, 0, err
	}
	g.invited[other] = user
	return g, invited, nil
}

// refuseInvite handles REJECT invite; it returns who invited.
func (so *social) refuseInvite(ctx context.Context, user int64, name string) (*group, int64, error) {
	g, err := so.group(name)
	if err != nil {
		return nil, 0, err
	}
	so.mu.Lock()
	defer so.mu.Unlock()
	inviter, ok := g.invited[user]
	if !ok {
		return g, 0, protocol.Errorf(protocol.CodeSequence, "no invite to %s", g.tag())
	}
	if err := so.store.DropInvite(ctx, g.name, user); err != nil {
		return g, 0, err
	}
	delete(g.invited, user)
	return g, inviter, nil
}

// removeMember handles LEAVE (by the member) and KICK (by the owner). When
// the owner leaves, the longest-standing member owns the group; when the
// last member leaves, the group is gone.
func (so *social) removeMember(ctx context.Context, by int64, name string, user int64) (*group, error) {
	g, err := so.group(name)
	if err != nil {
		return nil, err
	}
	so.mu.Lock()
	defer so.mu.Unlock()
	switch {
	case by != user && g.owner != by:
		return g, protocol.Errorf(protocol.CodeForbidden, "only the owner of %s may remove members", g.tag())
	case !g.isMember(user) && by == user:
		return g, errNotMember
	case !g.isMember(user):
		return g, protocol.Errorf(protocol.CodeSequence, "%d is not in %s", user, g.tag())
	}
	rest := make([]int64, 0, len(g.members))
	for _, m := range g.members {
		if m != user {
			rest = append(rest, m)
		}
	}
	var newOwner int64
	if g.owner == user && len(rest) > 0 {
		newOwner = rest[0]
	}
	if err := so.store.RemoveMember(ctx, g.name, user, newOwner, len(rest) == 0); err != nil {
		return g, err
	}
	g.members = rest
	if newOwner != 0 {
		g.owner = newOwner
	}
	delete(so.mine[user], store.GroupKey(g.name))
	if len(rest) == 0 {
		delete(so.groups, store.GroupKey(g.name))
	}
	return g, nil
}

// members returns a group's members (for a member only).
func (so *social) members(user int64, name string) (*group, []int64, error) {
	g, err := so.group(name)
	if err != nil {
		return nil, nil, err
	}
	so.mu.RLock()
	defer so.mu.RUnlock()
	if !g.isMember(user) {
		return g, nil, errNotMember
	}
	return g, append([]int64(nil), g.members...), nil
}

// recipients returns who gets user's message to group name: its members
// but user and those who block user. Only a member may post.
func (so *social) recipients(user int64, name string) (*group, []int64, error) {
	g, err := so.group(name)
	if err != nil {
		return nil, nil, err
	}
	so.mu.RLock()
	defer so.mu.RUnlock()
	if !g.isMember(user) {
		return g, nil, errNotMember
	}
	to := make([]int64, 0, len(g.members))
	for _, m := range g.members {
		if m != user && !so.blocks[m].has(user) {
			to = append(to, m)
		}
	}
	return g, to, nil
}

// groupsOf returns snapshots of user's groups, by name.
func (so *social) groupsOf(user int64) []group {
	so.mu.RLock()
	out := make([]group, 0, len(so.mine[user]))
	for _, g := range so.mine[user] {
		out = append(out, group{name: g.name, owner: g.owner, invite: g.invite, members: g.members[:len(g.members):len(g.members)]})
	}
	so.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return store.GroupKey(out[i].name) < store.GroupKey(out[j].name) })
	return out
}

// groupKeysOf returns the keys of user's groups.
func (so *social) groupKeysOf(user int64) []string {
	so.mu.RLock()
	defer so.mu.RUnlock()
	keys := make([]string, 0, len(so.mine[user]))
	for k := range so.mine[user] {
		keys = append(keys, k)
	}
	return keys
}

// ownerOf returns g's owner now.
func (so *social) ownerOf(g *group) int64 {
	so.mu.RLock()
	defer so.mu.RUnlock()
	return g.owner
}
