package serve

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"qchat/modes/serve/store"
	"qchat/protocol"
)

// account is what the server keeps in memory of every registered user, so
// that resolving a name, checking a password or routing a message never
// reads the database.
type account struct {
	id      int64
	nick    string
	pwhash  string
	created time.Time
	profile store.Profile
}

// directory maps ids and nicknames to accounts. It is loaded at start and
// kept in step with the store by the code that changes accounts.
//
// A name is looked up by its exact letters without regard to case
// (byNick), and a new name is refused when it looks like another account's
// (byLook, keyed by protocol.NickKeys): accounts that look alike but were
// made before that rule keep working, each under its own name.
type directory struct {
	mu      sync.RWMutex
	byID    map[int64]*account
	byNick  map[string]*account
	byLook  map[string][]*account
	claimed map[string]bool // keys of names being registered or taken (claim)

	// miss, when set (a node of a cluster), reads an account the
	// directory does not hold from the store: one made on another node
	// a moment ago, whose notice has not come yet.
	miss func(who string) *store.User
}

func loadDirectory(ctx context.Context, st store.Store) (*directory, error) {
	d := &directory{byID: make(map[int64]*account), byNick: make(map[string]*account),
		byLook: make(map[string][]*account), claimed: make(map[string]bool)}
	users, err := st.Users(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		d.addLocked(&account{id: u.ID, nick: u.Nick, pwhash: u.PwHash, created: u.Created})
	}
	return d, nil
}

func (d *directory) add(a *account) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addLocked(a)
}

func (d *directory) addLocked(a *account) {
	d.byID[a.id] = a
	d.byNick[store.NickKey(a.nick)] = a
	for _, k := range protocol.NickKeys(a.nick) {
		d.byLook[k] = append(d.byLook[k], a)
	}
}

// dropLookLocked removes a's current nickname from byLook.
func (d *directory) dropLookLocked(a *account) {
	for _, k := range protocol.NickKeys(a.nick) {
		rest := slices.DeleteFunc(d.byLook[k], func(o *account) bool { return o == a })
		if len(rest) == 0 {
			delete(d.byLook, k)
		} else {
			d.byLook[k] = rest
		}
	}
}

// errNickLookalike refuses a nickname that looks like another account's
// (protocol.NickKeys); store.ErrNickTaken, one that is another's in any case.
var errNickLookalike = protocol.Errorf(protocol.CodeNameTaken, "nickname too like one already taken")

// claim reserves nick for self (nil for a new account) until release is
// called: it fails when another account has that name in any case
// (store.ErrNickTaken), or one that looks like it, or another claim holds it
// (errNickLookalike). A claim makes the check and the change that follows
// one step for names.
func (d *directory) claim(nick string, self *account) (release func(), err error) {
	keys := protocol.NickKeys(nick)
	d.mu.Lock()
	defer d.mu.Unlock()
	if o := d.byNick[store.NickKey(nick)]; o != nil && o != self {
		return nil, store.ErrNickTaken
	}
	for _, k := range keys {
		if d.claimed[k] {
			return nil, errNickLookalike
		}
		for _, o := range d.byLook[k] {
			if o != self {
				return nil, errNickLookalike
			}
		}
	}
	for _, k := range keys {
		d.claimed[k] = true
	}
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, k := range keys {
			delete(d.claimed, k)
		}
	}, nil
}

// snapshot returns a copy of a's fields, safe to read without the lock.
func (d *directory) snapshot(a *account) account {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return *a
}

// rename changes a's nickname in memory (the store has it already).
func (d *directory) rename(a *account, nick string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.byNick, store.NickKey(a.nick))
	d.dropLookLocked(a)
	a.nick = nick
	d.byNick[store.NickKey(nick)] = a
	for _, k := range protocol.NickKeys(nick) {
		d.byLook[k] = append(d.byLook[k], a)
	}
}

// update changes a's fields under the lock.
func (d *directory) update(a *account, fn func(*account)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fn(a)
}

// find returns up to limit accounts whose id is text or whose nickname
// holds it (any case), by id.
func (d *directory) find(text string, limit int) []account {
	key := store.NickKey(text)
	d.mu.RLock()
	var out []account
	if id, ok := protocol.ParseID(text); ok {
		if a := d.byID[id]; a != nil {
			out = append(out, *a)
		}
	}
	for _, a := range d.byID {
		if strings.Contains(store.NickKey(a.nick), key) && (len(out) == 0 || out[0].id != a.id) {
			out = append(out, *a)
		}
	}
	d.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// lookup resolves "1000" or "alice" to an account, or nil.
func (d *directory) lookup(who string) *account {
	d.mu.RLock()
	var a *account
	if id, ok := protocol.ParseID(who); ok {
		a = d.byID[id]
	} else {
		a = d.byNick[store.NickKey(who)]
	}
	d.mu.RUnlock()
	if a != nil || d.miss == nil {
		return a
	}
	u := d.miss(who)
	if u == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if a = d.byID[u.ID]; a != nil { // came meanwhile
		return a
	}
	if o := d.byNick[store.NickKey(u.Nick)]; o != nil {
		return nil // renamed meanwhile: its notice will sort it out
	}
	a = &account{id: u.ID, nick: u.Nick, pwhash: u.PwHash, created: u.Created}
	d.addLocked(a)
	return a
}

func (d *directory) byId(id int64) *account {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.byID[id]
}

// nickOf returns the current nickname of id ("" if unknown).
func (d *directory) nickOf(id int64) string {
	if a := d.byId(id); a != nil {
		return a.nick
	}
	return ""
}

func (d *directory) count() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.byID)
}

// sortedIDs returns ids in increasing order.
func sortedIDs(ids []int64) []int64 {
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func idStr(id int64) string { return strconv.FormatInt(id, 10) }
