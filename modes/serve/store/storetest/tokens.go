package storetest

import "time"

// Spent resumption tokens: the first use of an id is first, every later
// one is not, also after a restart; pruning forgets only those expired.
func testSpentTokens(h *harness) {
	now := time.Unix(1_800_000_000, 0)
	first := func(id string, exp time.Time) bool {
		h.Helper()
		ok, err := h.st.SpendToken(h.ctx, id, exp)
		if err != nil {
			h.Fatalf("SpendToken(%s): %v", id, err)
		}
		return ok
	}
	if !first("1000.aaaa", now.Add(time.Hour)) {
		h.Fatal("the first use of a token is not first")
	}
	if first("1000.aaaa", now.Add(time.Hour)) {
		h.Fatal("a token used twice")
	}
	if !first("1000.bbbb", now.Add(-time.Hour)) || !first("1001.aaaa", now.Add(time.Hour)) {
		h.Fatal("another token is not first")
	}
	h.reopen()
	if first("1000.aaaa", now.Add(time.Hour)) {
		h.Fatal("a token used before a restart, again after it")
	}
	if err := h.st.PruneTokens(h.ctx, now); err != nil {
		h.Fatal(err)
	}
	if !first("1000.bbbb", now.Add(-time.Hour)) {
		h.Fatal("an expired token was not pruned")
	}
	if first("1000.aaaa", now.Add(time.Hour)) {
		h.Fatal("pruning forgot a token not yet expired")
	}
}
