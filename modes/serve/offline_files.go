package serve

import (
	"context"
	"crypto/subtle"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"qchat/modes/serve/offline"
	"qchat/modes/serve/store"
	"qchat/protocol"
	"qchat/xfer"
)

// Offline files (serve --offline-files): a user leaves files on the server
// for someone who is not there (PUT), who is told at login (OFFLINE) and
// takes them (GET) or refuses them (DROP); the sender hears of either,
// or of the expiry, by a stored NOTICE. The bytes cross over a file link
// with the server itself at the other end (xfer.Host): the client comes to
// the relay's door with a ticket of the server's, and the link is the
// same TLS with pinned keys, manifest, resume and verification as a file
// to a peer. modes/serve/offline keeps the bytes and the rules.

// offlineSide is the server's part: the files, its link key, and the
// tickets it handed out for links to itself.
type offlineSide struct {
	files    *offline.Files
	host     *xfer.Host
	mu       sync.Mutex
	tickets  map[string]*hostTicket
	expiring atomic.Bool // an expiry pass is running
	lastPass time.Time   // of the expiry (sweeper only)
}

// hostTicket is a granted link to the server: an upload (PUT) or a
// download (GET) for one user.
type hostTicket struct {
	id, secret string
	user       int64
	key        string // the user's link key
	linkBy     time.Time
	used       bool
	// PUT
	put          bool
	to           int64
	count, bytes int64
	hold         *offline.Hold // the quota held for it
	// GET
	file store.OfflineFile
	done func(taken bool) error

	ended sync.Once
}

// end gives back what an unused or finished ticket held (once).
func (t *hostTicket) end(taken bool) error {
	var err error
	t.ended.Do(func() {
		if t.hold != nil {
			t.hold.Release()
		}
		if t.done != nil {
			err = t.done(taken)
		}
	})
	return err
}

// openOffline starts offline files when the config asks for them.
func openOffline(ctx context.Context, cfg Config, st store.Store) (*offlineSide, error) {
	if cfg.OfflineQuota <= 0 {
		return nil, nil
	}
	files, err := offline.Open(ctx, cfg.Data, offline.Config{Quota: cfg.OfflineQuota, MaxAge: cfg.OfflineMaxAge,
		Now: cfg.offlineNow, Free: cfg.offlineFree}, st)
	if err != nil {
		return nil, err
	}
	host, err := xfer.NewHost()
	if err != nil {
		return nil, err
	}
	return &offlineSide{files: files, host: host, tickets: make(map[string]*hostTicket)}, nil
}

var errNoOffline = protocol.Errorf(protocol.CodeNotYet, "this server keeps no offline files (serve --offline-files)")

// offlineErr maps what offline says to the reply a client sees.
func offlineErr(err error) error {
	var qe *offline.QuotaError
	switch {
	case errors.As(err, &qe):
		return protocol.Errorf(protocol.CodeTooLong, "over your offline-files quota: %d bytes more would make %d of the %d you may leave", qe.Want, qe.Used+qe.Want, qe.Quota)
	case errors.Is(err, offline.ErrNoRoom):
		return protocol.Errorf(protocol.CodeRateLimit, "the server's disk has no room for it now; try later")
	case errors.Is(err, offline.ErrBusy):
		return protocol.Errorf(protocol.CodeRateLimit, "that file is being taken already")
	case errors.Is(err, store.ErrNoOfflineFile):
		return protocol.Errorf(protocol.CodeSequence, "no such offline file waits for you")
	}
	return err
}

// grant hands out a ticket for a link to the server: 260 <ticket>
// <link-by> <server-key> <relay-secret>.
func (s *session) grant(c *protocol.Command, ht *hostTicket) error {
	off := s.srv.off
	s.srv.offers.mu.Lock()
	key := s.srv.offers.keys[s]
	s.srv.offers.mu.Unlock()
	if key == "" {
		ht.end(false)
		return errNoLinkKey
	}
	ht.id, ht.secret, ht.user, ht.key = newTicket(), newTicket(), s.loggedIn(), key
	ht.linkBy = time.Now().Add(linkWindow)
	off.mu.Lock()
	off.tickets[ht.id] = ht
	off.mu.Unlock()
	s.replyf(c.Tag, protocol.CodeTicket, "%s %s %s %s", ht.id, protocol.FormatTime(ht.linkBy), off.host.Fingerprint(), ht.secret)
	return nil
}

// PUT <id|nick> <count> <bytes> <name>
//
// Answered 260 <ticket> <link-by> <server-key> <relay-secret>: the
// sender then comes to RELAY with it and sends the files over the link,
// as to a peer. 552 over the quota, 452 no room on the disk, 502 off.
func (s *session) cmdPut(c *protocol.Command) error {
	off := s.srv.off
	if off == nil {
		return errNoOffline
	}
	count, ok1 := protocol.ParseID(c.Args[1])
	size, err := strconv.ParseInt(c.Args[2], 10, 64)
	if !ok1 || count > xfer.MaxOfferFiles || err != nil || size < 0 || c.Args[2][0] == '+' {
		return protocol.Errorf(protocol.CodeSyntax, "usage: PUT <id|nick> <count> <bytes> <name> (count 1 to %d, bytes >= 0)", xfer.MaxOfferFiles)
	}
	if err := protocol.CheckText(c.Args[3], 255); err != nil {
		return err
	}
	a, err := s.target(c.Args[0])
	if err != nil {
		return err
	}
	if a.id == s.loggedIn() {
		return protocol.Errorf(protocol.CodeSyntax, "files for yourself? no")
	}
	hold, err := off.files.Reserve(context.Background(), s.loggedIn(), size)
	if err != nil {
		return offlineErr(err)
	}
	s.srv.log.Info("offline put", "conn", s.id, "user", s.loggedIn(), "to", a.id, "files", count, "bytes", size)
	return s.grant(c, &hostTicket{put: true, to: a.id, count: count, bytes: size, hold: hold})
}

// GET <file-id>
//
// Answered like PUT; over the link the server sends the file, as a peer
// would. 503 when no such file waits for you.
func (s *session) cmdGet(c *protocol.Command) error {
	off, id, err := s.offlineFileArg(c)
	if err != nil {
		return err
	}
	row, done, err := off.files.Take(context.Background(), id, s.loggedIn())
	if err != nil {
		return offlineErr(err)
	}
	return s.grant(c, &hostTicket{file: row, done: done})
}

// offlineFileArg checks that offline files are on and reads the
// <file-id> of GET and DROP.
func (s *session) offlineFileArg(c *protocol.Command) (*offlineSide, int64, error) {
	if s.srv.off == nil {
		return nil, 0, errNoOffline
	}
	id, ok := protocol.ParseID(c.Args[0])
	if !ok {
		return nil, 0, protocol.Errorf(protocol.CodeSyntax, "usage: %s <file-id>", c.Verb)
	}
	return s.srv.off, id, nil
}

// DROP <file-id>
//
// The recipient refuses an offline file: it is deleted and its sender
// told (NOTICE offline-refused).
func (s *session) cmdDrop(c *protocol.Command) error {
	off, id, err := s.offlineFileArg(c)
	if err != nil {
		return err
	}
	row, err := off.files.Refuse(context.Background(), id, s.loggedIn())
	if err != nil {
		return offlineErr(err)
	}
	s.srv.offlineNotice(row, "offline-refused")
	s.replyf(c.Tag, protocol.CodeOK, "refused %s from %d", protocol.Escape(row.Name), row.Sender)
	return nil
}

// FILES
//
// The offline files waiting for you, one line each, as the OFFLINE event:
// <file-id> <from> <from_nick> <time> <bytes> <name>.
func (s *session) cmdFiles(c *protocol.Command) error {
	if s.srv.off == nil {
		return errNoOffline
	}
	rows, err := s.srv.offlineFor(s.loggedIn())
	if err != nil {
		return err
	}
	lines := make([]string, len(rows))
	for i, r := range rows {
		lines[i] = s.srv.offlineLine(r)
	}
	s.replyLines(c.Tag, protocol.CodeList, lines, strconv.Itoa(len(lines))+" offline files")
	return nil
}

// offlineFor lists the files for user, less those from senders it blocks.
func (srv *Server) offlineFor(user int64) ([]store.OfflineFile, error) {
	rows, err := srv.off.files.For(context.Background(), user)
	if err != nil {
		return nil, err
	}
	out := rows[:0]
	for _, r := range rows {
		if !srv.soc.blocked(user, r.Sender) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (srv *Server) offlineLine(r store.OfflineFile) string {
	return idStr(r.ID) + " " + idStr(r.Sender) + " " + srv.dir.nickOf(r.Sender) + " " + protocol.FormatTime(r.Created) + " " +
		strconv.FormatInt(r.Size, 10) + " " + protocol.Escape(r.Name)
}

// sendOffline tells a session that just logged in of the files waiting
// for it (OFFLINE events).
func (srv *Server) sendOffline(s *session) {
	if srv.off == nil {
		return
	}
	rows, err := srv.offlineFor(s.loggedIn())
	if err != nil {
		srv.log.Error("offline files", "user", s.loggedIn(), "err", err)
		return
	}
	var b []byte
	for _, r := range rows {
		b = srv.appendOfflineEvent(b, r)
	}
	if len(b) > 0 {
		s.send(b)
	}
}

func (srv *Server) appendOfflineEvent(b []byte, r store.OfflineFile) []byte {
	return protocol.AppendEvent(b, "OFFLINE", idStr(r.ID), idStr(r.Sender), srv.dir.nickOf(r.Sender), protocol.FormatTime(r.Created),
		strconv.FormatInt(r.Size, 10), protocol.Escape(r.Name))
}

// offlineNotice tells a file's sender what became of it: a stored NOTICE
// from the recipient ("offline-taken <file-id> <name>", offline-refused,
// offline-expired), which waits for a sender who is offline.
func (srv *Server) offlineNotice(r store.OfflineFile, what string) {
	srv.po.notify(r.Sender, "NOTICE", r.Recipient, srv.dir.nickOf(r.Recipient), what+" "+idStr(r.ID)+" "+protocol.Escape(r.Name))
}

// take finds a granted ticket for RELAY by its id and secret and takes it
// (once). mine says whether the ticket is one of the server's own; ht is
// nil when it is, but not with that secret, used, or late.
func (off *offlineSide) take(ticket, secret string) (*hostTicket, bool) {
	off.mu.Lock()
	defer off.mu.Unlock()
	ht := off.tickets[ticket]
	if ht == nil {
		return nil, false
	}
	if ht.used || time.Now().After(ht.linkBy) || subtle.ConstantTimeCompare([]byte(ht.secret), []byte(secret)) != 1 {
		return nil, true
	}
	ht.used = true
	delete(off.tickets, ticket)
	return ht, true
}

// relayToHost runs RELAY for a ticket of the server's own: the session's
// connection becomes the link, served on a goroutine of its own.
func (s *session) relayToHost(ht *hostTicket) {
	me := &relayHalf{conn: s.conn}
	s.handOver(me)
	srv := s.srv
	srv.relays.add(me.conn)
	srv.relays.wg.Add(1)
	go func() {
		defer srv.relays.wg.Done()
		defer srv.relays.remove(me.conn)
		defer me.conn.Close()
		srv.serveHostLink(me, ht)
	}()
}

// hostIdle is the idle timeout of a link to the server.
const hostIdle = 30 * time.Second

// serveHostLink runs one link to the server: the upload of PUT or the
// download of GET.
func (srv *Server) serveHostLink(me *relayHalf, ht *hostTicket) {
	taken := false
	defer func() {
		if err := ht.end(taken); err != nil {
			srv.log.Error("offline file", "id", ht.file.ID, "err", err)
		}
	}()
	if _, err := me.conn.Write([]byte("200 relay open\n")); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := xfer.Ticket{ID: ht.id, Purpose: "file", Peer: ht.user, Expires: ht.linkBy, Offerer: !ht.put, PeerKey: ht.key}
	link, err := srv.off.host.Link(ctx, me.conn, me.pending, t, hostIdle)
	if err != nil {
		srv.log.Info("offline link failed", "user", ht.user, "err", err)
		return
	}
	if ht.put {
		srv.receiveOffline(ctx, link, ht)
		return
	}
	link.SetRate(srv.cfg.OfflineRate)
	o := &xfer.Offer{Items: []xfer.Item{{Local: srv.off.files.Path(ht.file.Hash), Name: ht.file.Name, Size: ht.file.Size}}, Total: ht.file.Size}
	res, err := xfer.Send(ctx, link, o, nil)
	taken = len(res.Files) == 1 && res.Files[0].Err == nil
	srv.log.Info("offline get", "user", ht.user, "file", ht.file.ID, "taken", taken, "err", err)
	if taken {
		// Gone from the server before its sender hears so.
		if err := ht.end(true); err != nil {
			srv.log.Error("offline file", "id", ht.file.ID, "err", err)
		}
		srv.offlineNotice(ht.file, "offline-taken")
	}
}

// receiveOffline takes an upload into the sender's incoming folder for the
// recipient; each file verified is kept by hash and recorded before the
// sender hears OK, and the recipient, when online, is told at once.
func (srv *Server) receiveOffline(ctx context.Context, link *xfer.Link, ht *hostTicket) {
	off := srv.off
	dir, err := off.files.Incoming(ht.user, ht.to)
	if err != nil {
		srv.log.Error("offline incoming folder", "err", err)
		return
	}
	kept := 0
	_, err = xfer.Receive(ctx, link, xfer.ReceiveOptions{Dir: dir, Overwrite: true, Count: ht.count, Bytes: ht.bytes, DropOnWriteError: true,
		Keep: func(saved, hash string) (string, error) {
			row, err := off.files.Keep(ctx, ht.hold, ht.to, dir, saved, hash)
			if err != nil {
				srv.log.Error("keep offline file", "user", ht.user, "err", err)
				return "", errors.New("the server could not keep it")
			}
			kept++
			if to := srv.hub.session(ht.to); to != nil && !srv.soc.blocked(ht.to, ht.user) {
				to.send(srv.appendOfflineEvent(nil, row))
			}
			return saved, nil
		}}, nil)
	srv.log.Info("offline put done", "user", ht.user, "to", ht.to, "kept", kept, "err", err)
}

// expireTickets forgets granted tickets whose link never came. Sweeper.
func (off *offlineSide) expireTickets(now time.Time) {
	var late []*hostTicket
	off.mu.Lock()
	for id, ht := range off.tickets {
		if now.After(ht.linkBy) {
			late = append(late, ht)
			delete(off.tickets, id)
		}
	}
	off.mu.Unlock()
	for _, ht := range late {
		ht.end(false)
	}
}

// offlineSweep runs from the sweeper: tickets every tick, the expiry of
// old files once a minute, on a goroutine of its own (it reads the store).
func (srv *Server) offlineSweep(now time.Time) {
	off := srv.off
	if off == nil {
		return
	}
	off.expireTickets(now)
	if now.Sub(off.lastPass) < time.Minute || !off.expiring.CompareAndSwap(false, true) {
		return
	}
	off.lastPass = now
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		defer off.expiring.Store(false)
		srv.expireOffline()
	}()
}

// expireOffline deletes the files past the maximum age and tells their
// senders.
func (srv *Server) expireOffline() {
	gone, err := srv.off.files.Expire(context.Background())
	for _, r := range gone {
		srv.log.Info("offline file expired", "id", r.ID, "from", r.Sender, "to", r.Recipient)
		srv.offlineNotice(r, "offline-expired")
	}
	if err != nil {
		srv.log.Error("expire offline files", "err", err)
	}
}
