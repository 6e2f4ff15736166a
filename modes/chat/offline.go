package chat

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"qchat/modes/client"
	"qchat/protocol"
	"qchat/xfer"
)

// Offline files in chat: /send to someone who is offline (or does not
// answer) leaves the files on the server when it keeps offline files
// (serve --offline-files), saying so; the recipient is told when it logs
// in (or at once), and takes them with /get ID, /accept FROM file or
// /files; /reject FROM file refuses them.

// onOfflineFile handles an OFFLINE event (event loop).
func (a *app) onOfflineFile(f client.OfflineFile) {
	a.remember(f.From, f.FromNick)
	a.links.mu.Lock()
	a.links.offline[f.ID] = f
	a.links.mu.Unlock()
	a.note(a.out.Offline(f))
}

// offlineFiles lists the files waiting for me on the server, and keeps
// them for /get. A server without offline files has none.
func (a *app) offlineFiles(ctx context.Context) ([]client.OfflineFile, error) {
	fs, err := a.cl.OfflineFiles(ctx)
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeNotYet {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a.links.mu.Lock()
	clear(a.links.offline)
	for _, f := range fs {
		a.links.offline[f.ID] = f
	}
	a.links.mu.Unlock()
	return fs, nil
}

// /files: the offline files waiting for me.
func (a *app) cmdFiles(ctx context.Context, args []string) error {
	fs, err := a.cl.OfflineFiles(ctx)
	if err != nil {
		return err
	}
	a.links.mu.Lock()
	clear(a.links.offline)
	for _, f := range fs {
		a.links.offline[f.ID] = f
	}
	a.links.mu.Unlock()
	obj, plain := a.out.OfflineList(fs)
	a.emit(ctx, obj, plain)
	return nil
}

// /get FILE-ID: take an offline file into --dir.
func (a *app) cmdGet(ctx context.Context, args []string) error {
	id, ok := protocol.ParseID(args[0])
	if !ok {
		return errUsage{lookupCommand("/get")}
	}
	a.links.mu.Lock()
	f, ok := a.links.offline[id]
	a.links.mu.Unlock()
	if !ok {
		if _, err := a.offlineFiles(ctx); err != nil {
			return err
		}
		a.links.mu.Lock()
		f, ok = a.links.offline[id]
		a.links.mu.Unlock()
		if !ok {
			return fmt.Errorf("no offline file %d waits for you (/files lists them)", id)
		}
	}
	return a.run(ctx, "/get", func(ctx context.Context) error { return a.takeOffline(ctx, f) })
}

// takeOffline takes one offline file into --dir, resuming after a break.
func (a *app) takeOffline(ctx context.Context, f client.OfflineFile) error {
	from := client.User{ID: f.From, Nick: f.FromNick}
	res, err := a.cl.TakeOffline(ctx, f, client.TakeOptions{
		Receive: xfer.ReceiveOptions{Dir: a.cfg.Dir, Overwrite: a.cfg.Overwrite},
		Connect: a.connectOpts(),
		Note:    func(s string) { a.note(a.out.Emit(nil, "* "+protocol.Escape(s))) },
	}, a.newMeter("taking "+protocol.Escape(f.Name)))
	for _, r := range res {
		if r.Err == nil {
			a.links.mu.Lock()
			delete(a.links.offline, f.ID)
			a.links.mu.Unlock()
			a.note(a.out.FileReceived(from, r, a.cfg.Dir, "server"))
		} else if err == nil {
			a.note(a.out.FileFailed(from, r.Name, r.Err))
		}
	}
	if err != nil {
		return fmt.Errorf("%s from %s: %w", protocol.Escape(f.Name), a.nameOf(f.From), err)
	}
	return nil
}

// answerOffline takes (/accept FROM [file]) or refuses (/reject) the
// offline files from a user that the server told of (OFFLINE at login or
// since, /files), when no direct offer of theirs waits; false when there
// are none.
func (a *app) answerOffline(ctx context.Context, accept bool, from int64) (bool, error) {
	var mine []client.OfflineFile
	a.links.mu.Lock()
	for _, f := range a.links.offline {
		if f.From == from {
			mine = append(mine, f)
		}
	}
	a.links.mu.Unlock()
	slices.SortFunc(mine, func(x, y client.OfflineFile) int { return cmp.Compare(x.ID, y.ID) })
	if len(mine) == 0 {
		return false, nil
	}
	if !accept {
		for _, f := range mine {
			if err := a.cl.DropOffline(ctx, f.ID); err != nil {
				return true, err
			}
			a.links.mu.Lock()
			delete(a.links.offline, f.ID)
			a.links.mu.Unlock()
			text := fmt.Sprintf("refused %s, the file %s left on the server", protocol.Escape(f.Name), a.nameOf(from))
			a.emit(ctx, &okRecord{Result: client.NewResult("ok"), Text: text, ID: from, Nick: f.FromNick, Kind: "file"}, text)
		}
		return true, nil
	}
	return true, a.run(ctx, "/accept", func(ctx context.Context) error {
		var errs []error
		for _, f := range mine {
			if err := a.takeOffline(ctx, f); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

// leaveOffline leaves files on the server for to, who is offline or did
// not answer (why: the server's refusal of the offer), when the server
// keeps offline files; when it does not, the refusal stands as it was.
func (a *app) leaveOffline(ctx context.Context, to client.User, o *xfer.Offer, refusal *protocol.Error) error {
	why := "is not online"
	if refusal.Code == protocol.CodeTimeout {
		why = "did not answer"
	}
	count, total, name := o.Summary()
	res, err := a.cl.SendFiles(ctx, strconv.FormatInt(to.ID, 10), o, client.TransferOptions{
		Connect: a.connectOpts(), Rate: a.cfg.Rate, Offline: true,
		Note: func(s string) { a.note(a.out.Emit(nil, "* "+protocol.Escape(s))) },
		Link: func(*xfer.Link) {
			a.note(a.out.Emit(nil, fmt.Sprintf("* %s %s: leaving %s on the server for them", a.nameOf(to.ID), why, client.OfferLabel(count, total, protocol.Escape(name)))))
		},
	}, a.newMeter("leaving "+protocol.Escape(name)))
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeNotYet {
		return named(refusal, to) // as without offline files
	}
	failed := 0
	for _, f := range res.Files {
		if f.Err == nil {
			a.note(a.out.FileLeft(to, f))
		} else {
			failed++
			a.note(a.out.FileFailed(to, f.Name, f.Err))
		}
	}
	if err == nil && failed > 0 {
		err = fmt.Errorf("%d of %s could not be left on the server", failed, client.Plural(count, "file"))
	}
	return named(err, to)
}
