package storetest

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"qchat/modes/serve/store"
)

func (h *harness) social() *store.Social {
	h.Helper()
	so, err := h.st.LoadSocial(h.ctx)
	if err != nil {
		h.Fatalf("LoadSocial: %v", err)
	}
	return so
}

// pairs makes pairs of ids: a, b, c, d is {a b} {c d}.
func pairs(ids ...int64) []store.Pair {
	var out []store.Pair
	for i := 0; i+1 < len(ids); i += 2 {
		out = append(out, store.Pair{A: ids[i], B: ids[i+1]})
	}
	return out
}

func must(h *harness, what string, err error) {
	h.Helper()
	if err != nil {
		h.Fatalf("%s: %v", what, err)
	}
}

func testFriends(h *harness) {
	a, b, c, d := h.user("a"), h.user("b"), h.user("c"), h.user("d")
	must(h, "request a→b", h.st.AddFriendRequest(h.ctx, a, b))
	must(h, "request a→b again", h.st.AddFriendRequest(h.ctx, a, b))
	must(h, "request b→a", h.st.AddFriendRequest(h.ctx, b, a))
	must(h, "request c→a", h.st.AddFriendRequest(h.ctx, c, a))
	must(h, "request d→c", h.st.AddFriendRequest(h.ctx, d, c))
	must(h, "request d→a", h.st.AddFriendRequest(h.ctx, d, a))
	so := h.social()
	if want := pairs(a, b, b, a, c, a, d, a, d, c); !slices.Equal(sortedPairs(so.Requests), want) {
		h.Errorf("requests %v, want %v (once each)", so.Requests, want)
	}

	must(h, "a and b friends", h.st.MakeFriends(h.ctx, a, b)) // drops both requests
	must(h, "a and b friends again", h.st.MakeFriends(h.ctx, b, a))
	must(h, "c and d friends", h.st.MakeFriends(h.ctx, c, d))
	must(h, "drop c→a", h.st.DropFriendRequest(h.ctx, c, a))
	must(h, "a blocks d", h.st.Block(h.ctx, a, d, true)) // drops d's request to a
	must(h, "b blocks c", h.st.Block(h.ctx, b, c, true))
	must(h, "b blocks c again", h.st.Block(h.ctx, b, c, true))
	must(h, "b blocks d", h.st.Block(h.ctx, b, d, true))
	must(h, "b unblocks d", h.st.Block(h.ctx, b, d, false))
	h.reopen()
	so = h.social()
	if want := pairs(a, b, b, a, c, d, d, c); !slices.Equal(sortedPairs(so.Friends), want) {
		h.Errorf("friends %v, want %v (both ways, once)", so.Friends, want)
	}
	if len(so.Requests) != 0 {
		h.Errorf("requests %v left: friendship and block drop them", so.Requests)
	}
	if want := pairs(a, d, b, c); !slices.Equal(sortedPairs(so.Blocks), want) {
		h.Errorf("blocks %v, want %v", so.Blocks, want)
	}

	must(h, "unfriend", h.st.Unfriend(h.ctx, b, a))
	if so := h.social(); !slices.Equal(sortedPairs(so.Friends), pairs(c, d, d, c)) {
		h.Errorf("after Unfriend: friends %v", so.Friends)
	}
}

func testGroups(h *harness) {
	a, b, c, d := h.user("a"), h.user("b"), h.user("c"), h.user("d")
	created := time.Unix(time.Now().Unix(), 0)
	must(h, "create Team", h.st.CreateGroup(h.ctx, "Team", a, true, created, 0))
	if err := h.st.CreateGroup(h.ctx, "TEAM", b, false, created, 0); !errors.Is(err, store.ErrGroupTaken) {
		h.Errorf("CreateGroup(TEAM) = %v, want ErrGroupTaken", err)
	}
	must(h, "create open", h.st.CreateGroup(h.ctx, "open.1", b, false, created, 0))
	must(h, "invite b", h.st.AddInvite(h.ctx, "Team", b, a))
	must(h, "invite c", h.st.AddInvite(h.ctx, "Team", c, a))
	must(h, "invite c again, by b", h.st.AddInvite(h.ctx, "team", c, b)) // renewed
	must(h, "invite d", h.st.AddInvite(h.ctx, "Team", d, a))
	must(h, "b joins", h.st.AddMember(h.ctx, "Team", b, 0)) // drops its invite
	must(h, "b joins again", h.st.AddMember(h.ctx, "team", b, 0))
	must(h, "d refuses", h.st.DropInvite(h.ctx, "TEAM", d))
	must(h, "c joins open", h.st.AddMember(h.ctx, "open.1", c, 0))
	h.reopen()
	so := h.social()
	groups := fmt.Sprint(so.Groups)
	want := fmt.Sprint([]store.Group{{Name: "open.1", Owner: b, Invite: false, Created: created}, {Name: "Team", Owner: a, Invite: true, Created: created}})
	if groups != want {
		h.Errorf("groups %s, want %s", groups, want)
	}
	members := map[string][]int64{}
	for _, m := range so.Members {
		members[m.Key] = append(members[m.Key], m.User)
	}
	if got := fmt.Sprint(members); got != fmt.Sprint(map[string][]int64{"team": {a, b}, "open.1": {b, c}}) {
		h.Errorf("members %s (in joining order)", got)
	}
	if want := []store.Invite{{Key: "team", User: c, Inviter: b}}; !slices.Equal(so.Invites, want) {
		h.Errorf("invites %v, want %v", so.Invites, want)
	}

	// The owner leaves: b takes over. Then the last member leaves: the
	// group goes with its invites, and the name is free again.
	must(h, "a leaves", h.st.RemoveMember(h.ctx, "Team", a, b, false))
	must(h, "b leaves last", h.st.RemoveMember(h.ctx, "team", b, 0, true))
	so = h.social()
	if len(so.Groups) != 1 || so.Groups[0].Name != "open.1" {
		h.Errorf("groups after the last member left: %v", so.Groups)
	}
	if len(so.Invites) != 0 {
		h.Errorf("invites of a gone group stay: %v", so.Invites)
	}
	must(h, "create team again", h.st.CreateGroup(h.ctx, "team", d, false, created, 0))
	must(h, "open.1's owner leaves", h.st.RemoveMember(h.ctx, "open.1", b, c, false))
	so = h.social()
	for _, g := range so.Groups {
		if g.Name == "open.1" && g.Owner != c {
			h.Errorf("open.1's owner %d after b left, want %d", g.Owner, c)
		}
	}
	if len(so.Groups) != 2 || len(so.Members) != 2 {
		h.Errorf("groups %v, members %v", so.Groups, so.Members)
	}
}
