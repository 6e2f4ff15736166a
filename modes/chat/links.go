package chat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"qchat/history"
	"qchat/modes/client"
	"qchat/protocol"
	"qchat/xfer"
)

// Direct links in chat: /chat opens a direct chat, /send offers files,
// /accept and /reject answer offers (with friend requests and invites),
// /close ends a direct chat. On a terminal, links are made and files move
// in the background while the user goes on typing; piped, each command
// waits for its outcome, so that its exit status says how it went.

// links is the app's state of direct links. Its own lock: its methods are
// called from the event loop, commands and background transfers.
type links struct {
	mu     sync.Mutex
	offers map[string]client.OfferEvent // offers to me waiting for an answer, by ticket
	chats  map[int64]*xfer.Chat         // open direct chats, by peer
	// retry holds offers I accepted whose transfer failed part-way: the
	// sender's next offer under the same name is its retry, taken without
	// asking again.
	retry map[string]retryable
	// offline holds the offline files the server told of (OFFLINE,
	// /files), by id, for /get.
	offline map[int64]client.OfflineFile
	bg      sync.WaitGroup // running background work (links, transfers)
}

const retryWindow = 10 * time.Minute

// retryable is what is left of an accepted offer whose transfer failed:
// a retry may offer at most that much, within retryWindow.
type retryable struct {
	at    time.Time
	files int
	bytes int64
}

type (
	// refusedRecord is an offer refused without asking (too many chats).
	refusedRecord struct {
		client.Head        // "refused"
		Kind        string `json:"kind"` // "chat"
		From        int64  `json:"from"`
		FromNick    string `json:"from_nick"`
		Reason      string `json:"reason"`
	}
	// closedRecord is a direct chat that ended.
	closedRecord struct {
		client.Head        // "closed"
		Kind        string `json:"kind"` // "chat"
		Peer        int64  `json:"peer"`
		PeerNick    string `json:"peer_nick"`
		Reason      string `json:"reason"` // "closed", or why it was lost
	}
	// offeringRecord is an offer of files made (/send), before the answer.
	offeringRecord struct {
		client.Result        // "offering"
		To            int64  `json:"to"`
		ToNick        string `json:"to_nick"`
		Name          string `json:"name"`
		Files         int    `json:"files"`
		Size          int64  `json:"size"`
	}
	// skippedRecord is a path /send leaves out, and why.
	skippedRecord struct {
		client.Head        // "skipped"
		Text        string `json:"text"`
	}
)

func retryKey(from int64, name string) string { return strconv.FormatInt(from, 10) + "\x00" + name }

func (a *app) connectOpts() xfer.ConnectOptions {
	return xfer.ConnectOptions{Timeout: a.cfg.ConnectTimeout, Idle: a.cfg.IdleTimeout, ForceRelay: a.cfg.ForceRelay}
}

// background runs fn as a command that does not block the prompt; its
// error is shown like a failed command's.
func (a *app) background(cmd string, fn func(ctx context.Context) error) {
	a.links.bg.Add(1)
	go func() {
		defer a.links.bg.Done()
		if err := fn(a.bgCtx); err != nil {
			a.fail(a.stderr, cmd, err)
		}
	}()
}

// run runs fn in the background on a terminal, or waits for it when piped.
func (a *app) run(ctx context.Context, cmd string, fn func(ctx context.Context) error) error {
	if a.term != nil {
		a.background(cmd, fn)
		return nil
	}
	return fn(ctx)
}

// onOffer handles an OFFER event (event loop).
func (a *app) onOffer(o client.OfferEvent) {
	a.remember(o.From, o.FromNick)
	lk := &a.links
	lk.mu.Lock()
	open := len(lk.chats)
	left, isRetry := lk.retry[retryKey(o.From, o.Name)]
	isRetry = isRetry && o.Purpose == "file" && time.Since(left.at) < retryWindow && o.Count <= left.files && o.Bytes <= left.bytes
	delete(lk.retry, retryKey(o.From, o.Name))
	if !isRetry {
		lk.offers[o.Ticket] = o
	}
	lk.mu.Unlock()
	switch {
	case o.Purpose == "chat" && open >= a.cfg.MaxChats:
		why := fmt.Sprintf("%d direct chats are open already", open)
		a.note(a.out.Emit(&refusedRecord{Head: client.NewHead("refused"), Kind: "chat", From: o.From, FromNick: o.FromNick, Reason: why},
			fmt.Sprintf("* refused a direct chat from %s: %s", a.nameOf(o.From), why)))
		a.background("/reject", func(ctx context.Context) error {
			a.forgetOffer(o.Ticket)
			_, err := a.cl.Answer(ctx, false, o)
			return err
		})
	case isRetry && o.Purpose == "file":
		a.note(a.out.Emit(nil, fmt.Sprintf("* %s offers %s again: resuming the transfer you accepted", a.nameOf(o.From), protocol.Escape(o.Name))))
		a.background("/accept", func(ctx context.Context) error { return a.acceptFiles(ctx, o) })
	default:
		a.note(a.out.Offer(o))
	}
}

// onCancel handles a CANCEL event.
func (a *app) onCancel(ticket, why string) {
	lk := &a.links
	lk.mu.Lock()
	o, ok := lk.offers[ticket]
	delete(lk.offers, ticket)
	lk.mu.Unlock()
	if ok {
		a.note(a.out.Cancel(o, why))
	}
}

func (a *app) forgetOffer(ticket string) {
	a.links.mu.Lock()
	delete(a.links.offers, ticket)
	a.links.mu.Unlock()
}

// answerOffer answers an offer found in PENDING (/accept, /reject).
func (a *app) answerOffer(ctx context.Context, accept bool, o client.OfferEvent) error {
	a.links.mu.Lock()
	if full, ok := a.links.offers[o.Ticket]; ok {
		o = full // with its time
	}
	a.links.mu.Unlock()
	a.forgetOffer(o.Ticket)
	if !accept {
		if _, err := a.cl.Answer(ctx, false, o); err != nil {
			return err
		}
		what := "the direct chat"
		if o.Purpose == "file" {
			what = "the offer of " + protocol.Escape(o.Name)
		}
		text := fmt.Sprintf("refused %s from %s", what, a.nameOf(o.From))
		a.emit(ctx, &okRecord{Result: client.NewResult("ok"), Text: text, ID: o.From, Nick: o.FromNick, Kind: o.Purpose}, text)
		return nil
	}
	if o.Purpose == "chat" {
		a.setTarget(strconv.FormatInt(o.From, 10))
		return a.run(ctx, "/accept", func(ctx context.Context) error {
			t, err := a.cl.Answer(ctx, true, o)
			if err != nil {
				return err
			}
			return a.openChat(ctx, t)
		})
	}
	return a.run(ctx, "/accept", func(ctx context.Context) error { return a.acceptFiles(ctx, o) })
}

// acceptFiles accepts a file offer and receives it into --dir.
func (a *app) acceptFiles(ctx context.Context, o client.OfferEvent) error {
	t, err := a.cl.Answer(ctx, true, o)
	if err != nil {
		return err
	}
	l, err := a.cl.Link(ctx, t, a.connectOpts())
	if err != nil {
		return fmt.Errorf("files from %s: %w", a.nameOf(o.From), err)
	}
	from := client.User{ID: o.From, Nick: o.FromNick}
	a.note(a.out.Link("file", from, l, a.cl.NAT()))
	watched := client.WatchMoves(l, func(r xfer.Route) {
		a.note(a.out.Moved("file", from, r, a.cl.NAT()))
	})
	res, err := xfer.Receive(ctx, l, xfer.ReceiveOptions{Dir: a.cfg.Dir, Overwrite: a.cfg.Overwrite, Count: int64(o.Count), Bytes: o.Bytes},
		a.newMeter("receiving "+protocol.Escape(o.Name)))
	<-watched
	failed, done := 0, 0
	var doneBytes int64
	for _, f := range res {
		if f.Err == nil {
			done++
			doneBytes += f.Size
			a.note(a.out.FileReceived(from, f, a.cfg.Dir, l.Route().Path))
		} else {
			failed++
			a.note(a.out.FileFailed(from, f.Name, f.Err))
		}
	}
	if err != nil || failed > 0 {
		if !errors.Is(err, xfer.ErrRefused) {
			a.links.mu.Lock()
			a.links.retry[retryKey(o.From, o.Name)] = retryable{time.Now(), o.Count - done, o.Bytes - doneBytes}
			a.links.mu.Unlock()
		}
		if err == nil {
			err = fmt.Errorf("%d of the files from %s did not arrive", failed, a.nameOf(o.From))
		}
		return err
	}
	return nil
}

// /chat ID: ask ID for a direct chat.
func (a *app) cmdChat(ctx context.Context, args []string) error {
	u, err := a.peer(ctx, args[0])
	if err != nil {
		return err
	}
	id := u.ID
	if a.directChat(id) != nil {
		return fmt.Errorf("a direct chat with %s is open already", a.nameOf(id))
	}
	a.setTarget(strconv.FormatInt(id, 10))
	if a.term != nil {
		a.out.Emit(nil, fmt.Sprintf("* asked %s for a direct chat", a.nameOf(id)))
	}
	return a.run(ctx, "/chat", func(ctx context.Context) error {
		t, err := a.cl.Offer(ctx, strconv.FormatInt(id, 10), "chat", nil)
		if err != nil {
			return named(err, u)
		}
		return a.openChat(ctx, t)
	})
}

// openChat connects the link of an accepted chat ticket and starts the chat.
func (a *app) openChat(ctx context.Context, t xfer.Ticket) error {
	l, err := a.cl.Link(ctx, t, a.connectOpts())
	if err != nil {
		return fmt.Errorf("direct chat with %s: %w", a.nameOf(t.Peer), err)
	}
	peer := client.User{ID: t.Peer, Nick: a.nickOf(t.Peer)}
	c := xfer.StartChat(l, func(m xfer.DirectMessage) {
		a.recordDirect(peer.ID, peer, m, false)
		a.note(a.out.Direct(peer, m))
		a.arrived(strconv.FormatInt(peer.ID, 10))
	}, func(err error) {
		a.links.mu.Lock()
		if c := a.links.chats[peer.ID]; c != nil && c.Link() == l {
			delete(a.links.chats, peer.ID) // not a newer chat that replaced this one
		}
		a.links.mu.Unlock()
		why := "closed"
		if err != nil {
			why = "lost: " + err.Error()
		}
		a.note(a.out.Emit(&closedRecord{Head: client.NewHead("closed"), Kind: "chat", Peer: peer.ID, PeerNick: peer.Nick, Reason: why},
			fmt.Sprintf("* direct chat with %s %s", a.nameOf(peer.ID), protocol.Escape(why))))
	})
	a.links.mu.Lock()
	if old := a.links.chats[peer.ID]; old != nil {
		defer old.Close()
	}
	a.links.chats[peer.ID] = c
	a.links.mu.Unlock()
	a.note(a.out.Link("chat", peer, l, a.cl.NAT()))
	client.WatchMoves(l, func(r xfer.Route) {
		a.note(a.out.Moved("chat", peer, r, a.cl.NAT()))
	})
	return nil
}

// directChat returns the open direct chat with id, or nil.
func (a *app) directChat(id int64) *xfer.Chat {
	a.links.mu.Lock()
	defer a.links.mu.Unlock()
	return a.links.chats[id]
}

// sendDirect sends text over the direct chat c (from /msg or a plain line).
func (a *app) sendDirect(ctx context.Context, c *xfer.Chat, text string) error {
	id, now := client.DirectID(), time.Now()
	if err := c.Send(id, now, text); err != nil {
		return err
	}
	me := a.cl.Me()
	a.recordDirect(c.Peer, me, xfer.DirectMessage{ID: id, Time: now, Text: text}, true)
	plain := fmt.Sprintf("sent direct to %s", a.nameOf(c.Peer))
	if a.term != nil {
		plain = fmt.Sprintf("%s → %s [direct]: %s", a.out.Stamp(now), a.nameOf(c.Peer), protocol.Escape(text))
	}
	rec := &sentRecord{Result: client.NewResult("sent"), ID: id, To: c.Peer, ToNick: a.nickOf(c.Peer), Status: "direct"}
	rec.Time = protocol.FormatTime(now)
	a.emit(ctx, rec, plain)
	return nil
}

// recordDirect appends a direct message to the history of the
// conversation with peer.
func (a *app) recordDirect(peer int64, from client.User, m xfer.DirectMessage, out bool) {
	if a.rec.Hist == nil {
		return
	}
	conv := strconv.FormatInt(peer, 10)
	if _, err := a.rec.Hist.Append(conv, history.Record{Time: m.Time, ID: m.ID, Out: out, From: from.ID, Nick: from.Nick, Text: m.Text}); err != nil {
		a.historyFailed(err)
	}
}

// /close ID: end the direct chat with ID.
func (a *app) cmdClose(ctx context.Context, args []string) error {
	id, err := a.resolve(ctx, args[0])
	if err != nil {
		return err
	}
	c := a.directChat(id)
	if c == nil {
		return fmt.Errorf("no direct chat with %s is open", a.nameOf(id))
	}
	return c.Close()
}

// /send ID PATH...: offer files and folders to ID and send them once
// accepted (resuming what an earlier try left).
func (a *app) cmdSend(ctx context.Context, args []string) error {
	to, err := a.peer(ctx, args[0])
	if err != nil {
		return err
	}
	id := to.ID
	paths := expandHome(splitPaths(args[1]))
	if len(paths) == 0 {
		return errors.New("usage: /send ID PATH...")
	}
	o, err := xfer.NewOffer(paths...)
	if err != nil {
		return err
	}
	for _, s := range o.Skipped {
		a.out.Emit(&skippedRecord{Head: client.NewHead("skipped"), Text: s}, "* not sent: "+protocol.Escape(s))
	}
	count, total, name := o.Summary()
	a.emit(ctx, &offeringRecord{Result: client.NewResult("offering"), To: to.ID, ToNick: to.Nick, Name: name, Files: count, Size: total},
		fmt.Sprintf("* offering %s to %s", client.OfferLabel(count, total, protocol.Escape(name)), a.nameOf(id)))
	return a.run(ctx, "/send", func(ctx context.Context) error {
		res, err := a.cl.SendFiles(ctx, strconv.FormatInt(id, 10), o, client.TransferOptions{
			Connect: a.connectOpts(), Rate: a.cfg.Rate,
			Note:  func(s string) { a.note(a.out.Emit(nil, "* "+protocol.Escape(s))) },
			Link:  func(l *xfer.Link) { a.note(a.out.Link("file", to, l, a.cl.NAT())) },
			Moved: func(r xfer.Route) { a.note(a.out.Moved("file", to, r, a.cl.NAT())) },
		}, a.newMeter("sending "+protocol.Escape(name)))
		var pe *protocol.Error
		if errors.As(err, &pe) && (pe.Code == protocol.CodeOffline || pe.Code == protocol.CodeTimeout) && len(res.Failed()) == len(o.Items) {
			// Nothing went: leave it all on the server, if it keeps files.
			return a.leaveOffline(ctx, to, o, pe)
		}
		failed := 0
		for _, f := range res.Files {
			if f.Err == nil {
				a.note(a.out.FileSent(to, f, res.Path))
			} else {
				failed++
				a.note(a.out.FileFailed(to, f.Name, f.Err))
			}
		}
		if err == nil && failed > 0 {
			err = fmt.Errorf("%d of %s did not get through", failed, client.Plural(count, "file"))
		}
		return named(err, to)
	})
}

// splitPaths splits /send's paths at spaces; a path with spaces is quoted
// ("my file.txt" or 'my file.txt').
func splitPaths(s string) []string {
	var out []string
	var cur []rune
	quote := rune(0)
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '"' || r == '\''):
			quote, inWord = r, true
		case quote == 0 && r == ' ':
			if inWord {
				out = append(out, string(cur))
				cur, inWord = cur[:0], false
			}
		default:
			cur, inWord = append(cur, r), true
		}
	}
	if inWord {
		out = append(out, string(cur))
	}
	return out
}

// expandHome turns a leading "~/" (or a lone "~") of each path into the
// home folder, as a shell would.
func expandHome(paths []string) []string {
	home, err := os.UserHomeDir()
	if err != nil {
		return paths
	}
	for i, p := range paths {
		if p == "~" || strings.HasPrefix(p, "~/") {
			paths[i] = filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return paths
}

// nickOf is the nickname known for id, or "".
func (a *app) nickOf(id int64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.known[id]
}

// closeLinks ends the direct chats and waits for background work (which
// ends with the app's context).
func (a *app) closeLinks() {
	a.links.mu.Lock()
	chats := make([]*xfer.Chat, 0, len(a.links.chats))
	for _, c := range a.links.chats {
		chats = append(chats, c)
	}
	a.links.mu.Unlock()
	for _, c := range chats {
		c.Close()
	}
	a.bgCancel()
	a.links.bg.Wait()
}
