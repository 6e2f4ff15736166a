package serve

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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
	profile Profile
}

// directory maps ids and nicknames to accounts. It is loaded at start and
// kept in step with the store by the code that changes accounts.
type directory struct {
	mu     sync.RWMutex
	byID   map[int64]*account
	byNick map[string]*account
}

func loadDirectory(ctx context.Context, st *Store) (*directory, error) {
	d := &directory{byID: make(map[int64]*account), byNick: make(map[string]*account)}
	rows, err := st.r.QueryContext(ctx, `SELECT id, nick, pwhash, created FROM users`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		a := new(account)
		var created int64
		if err := rows.Scan(&a.id, &a.nick, &a.pwhash, &created); err != nil {
			return nil, err
		}
		a.created = time.Unix(created, 0)
		d.addLocked(a)
	}
	return d, rows.Err()
}

func (d *directory) add(a *account) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addLocked(a)
}

func (d *directory) addLocked(a *account) {
	d.byID[a.id] = a
	d.byNick[nickKey(a.nick)] = a
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
	delete(d.byNick, nickKey(a.nick))
	a.nick = nick
	d.byNick[nickKey(nick)] = a
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
	key := nickKey(text)
	d.mu.RLock()
	var out []account
	if id, ok := protocol.ParseID(text); ok {
		if a := d.byID[id]; a != nil {
			out = append(out, *a)
		}
	}
	for _, a := range d.byID {
		if strings.Contains(nickKey(a.nick), key) && (len(out) == 0 || out[0].id != a.id) {
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
	defer d.mu.RUnlock()
	if id, ok := protocol.ParseID(who); ok {
		return d.byID[id]
	}
	return d.byNick[nickKey(who)]
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
