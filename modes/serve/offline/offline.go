package offline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"qchat/modes/serve/store"
	"qchat/xfer"
)

// Store is what offline needs of store.Store.
type Store interface {
	AddOfflineFile(ctx context.Context, f store.OfflineFile) (int64, error)
	OfflineFile(ctx context.Context, id int64) (store.OfflineFile, error)
	OfflineFiles(ctx context.Context, q store.OfflineQuery) ([]store.OfflineFile, error)
	DropOfflineFile(ctx context.Context, id int64) (hashHeld bool, err error)
}

// Config is what the admin chose.
type Config struct {
	Quota  int64         // bytes one sender may have on the server: files waiting and uploads under way
	MaxAge time.Duration // a file not taken by then is deleted (and its sender told)
	// Now is the clock (nil: time.Now); Free the free space of a folder
	// (nil: xfer.FreeSpace). Tests set them.
	Now  func() time.Time
	Free func(dir string) (int64, bool)
}

// Files is the offline files of one server. Safe for concurrent use.
type Files struct {
	dir   string
	cfg   Config
	store Store

	// bytes orders what adds and removes files/<hash> with their rows:
	// a Keep of bytes kept already and the drop of their last row must
	// not cross. Held across store calls; never with mu.
	bytes sync.Mutex

	mu       sync.Mutex
	reserved map[int64]int64 // sender -> bytes of uploads under way
	taking   map[int64]bool  // file ids being taken now
}

// Errors of Reserve and Take, which the server maps to replies.
var (
	ErrNoRoom = errors.New("the server's disk has no room for it")
	ErrBusy   = errors.New("the file is being taken already")
)

// QuotaError is an upload that would take a sender past the quota.
type QuotaError struct {
	Want, Used, Quota int64 // Used counts files waiting and uploads under way
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%d bytes would pass your offline-files quota: %d of %d bytes in use", e.Want, e.Used, e.Quota)
}

// roomMargin is free space kept on the disk past any upload: the
// database and the logs live there too.
const roomMargin = 64 << 20

// Open makes the offline folder below data, and sweeps what no row holds
// and uploads abandoned for longer than the maximum age.
func Open(ctx context.Context, data string, cfg Config, st Store) (*Files, error) {
	if cfg.Quota <= 0 {
		return nil, errors.New("offline files need a quota above 0")
	}
	if cfg.MaxAge <= 0 {
		return nil, errors.New("offline files need a maximum age above 0")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Free == nil {
		cfg.Free = xfer.FreeSpace
	}
	f := &Files{dir: filepath.Join(data, "offline"), cfg: cfg, store: st,
		reserved: make(map[int64]int64), taking: make(map[int64]bool)}
	for _, d := range []string{f.filesDir(), f.incomingDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("offline files: %w", err)
		}
	}
	if err := f.sweep(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *Files) filesDir() string    { return filepath.Join(f.dir, "files") }
func (f *Files) incomingDir() string { return filepath.Join(f.dir, "incoming") }

// Path is where a file's bytes are, by hash.
func (f *Files) Path(hash string) string { return filepath.Join(f.filesDir(), hash) }

// validHash accepts 64 lower-case hex digits only: a hash names a file.
func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// sweep removes files no row holds and incoming folders older than the
// maximum age.
func (f *Files) sweep(ctx context.Context) error {
	rows, err := f.store.OfflineFiles(ctx, store.OfflineQuery{})
	if err != nil {
		return err
	}
	held := make(map[string]bool, len(rows))
	for _, r := range rows {
		held[r.Hash] = true
	}
	ents, err := os.ReadDir(f.filesDir())
	if err != nil {
		return fmt.Errorf("offline files: %w", err)
	}
	for _, e := range ents {
		if !held[e.Name()] {
			os.Remove(filepath.Join(f.filesDir(), e.Name()))
		}
	}
	return f.sweepIncoming()
}

// sweepIncoming removes the incoming folders in which nothing changed for
// the maximum age: uploads given up long ago. An upload under way writes
// its .part all the time.
func (f *Files) sweepIncoming() error {
	ents, err := os.ReadDir(f.incomingDir())
	if err != nil {
		return fmt.Errorf("offline files: %w", err)
	}
	cut := f.cfg.Now().Add(-f.cfg.MaxAge)
	for _, e := range ents {
		d := filepath.Join(f.incomingDir(), e.Name())
		latest := time.Time{}
		filepath.WalkDir(d, func(_ string, de fs.DirEntry, err error) error {
			if err == nil {
				if fi, err := de.Info(); err == nil && fi.ModTime().After(latest) {
					latest = fi.ModTime()
				}
			}
			return nil
		})
		if !latest.IsZero() && latest.Before(cut) {
			os.RemoveAll(d)
		}
	}
	return nil
}

// Hold is a share of a sender's quota held for an upload under way.
type Hold struct {
	f      *Files
	sender int64
	left   int64
}

// Reserve checks that sender may upload bytes more (the quota, counting
// what waits and what is under way) and that the disk has room, and holds
// that much of the quota for the upload. A *QuotaError or ErrNoRoom
// otherwise.
func (f *Files) Reserve(ctx context.Context, sender, bytes int64) (*Hold, error) {
	rows, err := f.store.OfflineFiles(ctx, store.OfflineQuery{Sender: sender})
	if err != nil {
		return nil, err
	}
	var used int64
	for _, r := range rows {
		used += r.Size
	}
	if free, ok := f.cfg.Free(f.dir); ok && free < bytes+roomMargin {
		return nil, ErrNoRoom
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	used += f.reserved[sender]
	if bytes > f.cfg.Quota-used {
		return nil, &QuotaError{Want: bytes, Used: used, Quota: f.cfg.Quota}
	}
	f.reserved[sender] += bytes
	return &Hold{f: f, sender: sender, left: bytes}, nil
}

// free gives back n bytes of the hold (at most what it holds).
func (h *Hold) free(n int64) {
	f := h.f
	f.mu.Lock()
	defer f.mu.Unlock()
	n = min(n, h.left)
	h.left -= n
	if f.reserved[h.sender] -= n; f.reserved[h.sender] <= 0 {
		delete(f.reserved, h.sender)
	}
}

// Release gives back what the hold still holds: the upload is over.
func (h *Hold) Release() { h.free(h.left) }

// Incoming is the folder uploads from sender to recipient go into (made
// if needed): the same one each time, so that an upload cut short resumes
// from what it left there.
func (f *Files) Incoming(sender, recipient int64) (string, error) {
	d := filepath.Join(f.incomingDir(), strconv.FormatInt(sender, 10)+"-"+strconv.FormatInt(recipient, 10))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	now := f.cfg.Now()
	os.Chtimes(d, now, now) // in use: not swept
	return d, nil
}

// Keep moves a file xfer received and verified into the store by its hash
// (saved is its path below incoming) and records it for recipient; its
// size moves from the upload's hold to the rows. The row is committed
// when Keep returns: the sender may be told OK.
func (f *Files) Keep(ctx context.Context, h *Hold, recipient int64, incoming, saved, hash string) (store.OfflineFile, error) {
	sender := h.sender
	if !validHash(hash) {
		return store.OfflineFile{}, fmt.Errorf("not a file hash: %q", hash)
	}
	src := filepath.Join(incoming, filepath.FromSlash(saved))
	fi, err := os.Lstat(src)
	if err != nil || !fi.Mode().IsRegular() {
		return store.OfflineFile{}, fmt.Errorf("keep %s: not a received file", saved)
	}
	dst := f.Path(hash)
	f.bytes.Lock()
	defer f.bytes.Unlock()
	if _, err := os.Lstat(dst); err == nil {
		os.Remove(src) // the same bytes are kept already
	} else if err := os.Rename(src, dst); err != nil {
		return store.OfflineFile{}, fmt.Errorf("keep %s: %w", saved, errors.Unwrap(err))
	}
	removeEmptyParents(incoming, filepath.Dir(src))
	row := store.OfflineFile{Sender: sender, Recipient: recipient, Name: saved, Size: fi.Size(), Hash: hash, Created: f.cfg.Now()}
	if row.ID, err = f.store.AddOfflineFile(ctx, row); err != nil {
		// The bytes stay: another row may hold them. What no row holds
		// goes at the next start.
		return store.OfflineFile{}, err
	}
	h.free(row.Size)
	return row, nil
}

// removeEmptyParents removes dir and its parents up to (not including)
// top while they are empty (the folders of a received folder's files).
func removeEmptyParents(top, dir string) {
	for dir != top && strings.HasPrefix(dir, top+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// For lists the files waiting for recipient, oldest first, less those
// being taken now (Take until done): a recipient that just took one never
// sees it again.
func (f *Files) For(ctx context.Context, recipient int64) ([]store.OfflineFile, error) {
	rows, err := f.store.OfflineFiles(ctx, store.OfflineQuery{Recipient: recipient})
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := rows[:0]
	for _, r := range rows {
		if !f.taking[r.ID] {
			out = append(out, r)
		}
	}
	return out, nil
}

// Take looks up file id for recipient to download and marks it busy
// until done is called: done(true) once the recipient has it (the row and,
// when no other row holds them, the bytes go), done(false) when the try
// failed (it stays). store.ErrNoOfflineFile for a file that is not
// recipient's; ErrBusy while another try runs.
func (f *Files) Take(ctx context.Context, id, recipient int64) (store.OfflineFile, func(taken bool) error, error) {
	row, err := f.store.OfflineFile(ctx, id)
	if err != nil {
		return row, nil, err
	}
	if row.Recipient != recipient {
		return store.OfflineFile{}, nil, store.ErrNoOfflineFile
	}
	f.mu.Lock()
	if f.taking[id] {
		f.mu.Unlock()
		return row, nil, ErrBusy
	}
	f.taking[id] = true
	f.mu.Unlock()
	done := func(taken bool) error {
		defer func() {
			f.mu.Lock()
			delete(f.taking, id)
			f.mu.Unlock()
		}()
		if !taken {
			return nil
		}
		return f.drop(context.WithoutCancel(ctx), row)
	}
	return row, done, nil
}

// Refuse drops file id for its recipient (it does not want it).
func (f *Files) Refuse(ctx context.Context, id, recipient int64) (store.OfflineFile, error) {
	row, err := f.store.OfflineFile(ctx, id)
	if err != nil {
		return row, err
	}
	if row.Recipient != recipient {
		return store.OfflineFile{}, store.ErrNoOfflineFile
	}
	f.mu.Lock()
	busy := f.taking[id]
	f.mu.Unlock()
	if busy {
		return row, ErrBusy
	}
	return row, f.drop(ctx, row)
}

// drop deletes a row, and the bytes when no other row holds them.
func (f *Files) drop(ctx context.Context, row store.OfflineFile) error {
	f.bytes.Lock()
	defer f.bytes.Unlock()
	held, err := f.store.DropOfflineFile(ctx, row.ID)
	if err != nil {
		return err
	}
	if !held {
		if err := os.Remove(f.Path(row.Hash)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Expire drops the files older than the maximum age (none that is being
// taken) and returns them, for their senders to be told; uploads given up
// for as long go too.
func (f *Files) Expire(ctx context.Context) ([]store.OfflineFile, error) {
	f.sweepIncoming()
	rows, err := f.store.OfflineFiles(ctx, store.OfflineQuery{Before: f.cfg.Now().Add(-f.cfg.MaxAge)})
	if err != nil {
		return nil, err
	}
	var gone []store.OfflineFile
	for _, r := range rows {
		f.mu.Lock()
		busy := f.taking[r.ID]
		f.mu.Unlock()
		if busy {
			continue
		}
		if err := f.drop(ctx, r); err != nil {
			if errors.Is(err, store.ErrNoOfflineFile) {
				continue // taken or refused meanwhile
			}
			return gone, err
		}
		gone = append(gone, r)
	}
	return gone, nil
}
