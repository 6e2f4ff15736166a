package serve

import (
	"context"
	"sort"
	"strconv"
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
