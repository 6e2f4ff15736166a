package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"qchat/protocol"
	"qchat/xfer"
)

// Offline files: files left on the server for a user who was not there
// (serve --offline-files). The sender's SendFiles with
// TransferOptions.Offline leaves them (PUT); the recipient hears OFFLINE
// at login and takes one with TakeOffline (GET) or refuses it (DROP).
// Both ways the bytes cross a file link with the server at the other end
// (xfer.Host), through the relay's door, so that the manifest, resume and
// verification are those of a direct file.

// OfflineFile is a file waiting on the server: an OFFLINE event or a line
// of FILES.
type OfflineFile struct {
	ID       int64
	From     int64
	FromNick string
	Time     time.Time
	Size     int64
	Name     string // as the sender's side saved it (a safe relative path); escaped for display still
}

// ParseOffline reads an OFFLINE event.
func ParseOffline(l protocol.Line) (OfflineFile, error) {
	if l.Kind != "OFFLINE" || len(l.Args) != 6 {
		return OfflineFile{}, errors.New("malformed OFFLINE event")
	}
	return parseOfflineFields(l.Args)
}

func parseOfflineFields(a []string) (OfflineFile, error) {
	bad := errors.New("malformed offline file")
	id, ok1 := protocol.ParseID(a[0])
	from, ok2 := protocol.ParseID(a[1])
	t, err1 := protocol.ParseTime(a[3])
	size, err2 := strconv.ParseInt(a[4], 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || size < 0 || a[5] == "" {
		return OfflineFile{}, bad
	}
	return OfflineFile{ID: id, From: from, FromNick: a[2], Time: t, Size: size, Name: a[5]}, nil
}

// parseHostTicket reads the 260 of PUT and GET: "<ticket> <link-by>
// <server-key> <relay-secret>", a ticket for a link to the server itself
// (xfer.HostID), which goes through the relay's door only.
func parseHostTicket(text string, offerer bool) (xfer.Ticket, error) {
	f := strings.Fields(text)
	bad := fmt.Errorf("unexpected ticket reply %q", protocol.Clip(text, 80))
	if len(f) != 4 {
		return xfer.Ticket{}, bad
	}
	by, err := protocol.ParseTime(f[1])
	if err != nil || !protocol.ValidLinkKey(f[2]) {
		return xfer.Ticket{}, bad
	}
	return xfer.Ticket{ID: f[0], Purpose: "file", Peer: xfer.HostID, Expires: by, PeerKey: f[2], RelaySecret: f[3], Offerer: offerer}, nil
}

// OfflineFiles lists the offline files waiting for me (FILES).
func (s *Session) OfflineFiles(ctx context.Context) ([]OfflineFile, error) {
	r, err := s.Do(ctx, "FILES")
	if err != nil {
		return nil, err
	}
	out := make([]OfflineFile, 0, len(r.Lines))
	for _, l := range r.Lines {
		a := strings.SplitN(l, " ", 6)
		if len(a) != 6 {
			return nil, fmt.Errorf("unexpected FILES line %q", protocol.Clip(l, 80))
		}
		f, err := parseOfflineFields(a)
		if err != nil {
			return nil, fmt.Errorf("unexpected FILES line %q", protocol.Clip(l, 80))
		}
		out = append(out, f)
	}
	return out, nil
}

// DropOffline refuses an offline file: the server deletes it and tells
// its sender.
func (s *Session) DropOffline(ctx context.Context, id int64) error {
	_, err := s.Do(ctx, "DROP", strconv.FormatInt(id, 10))
	return err
}

// TakeOptions tune TakeOffline.
type TakeOptions struct {
	Receive xfer.ReceiveOptions // Dir, Overwrite, MaxSize; Count and Bytes are set from the file
	Connect xfer.ConnectOptions
	Retries int          // further tries after a link failed (default 3)
	Note    func(string) // hears of retries
	Link    func(*xfer.Link)
}

// TakeOffline takes an offline file into opts.Receive.Dir, as a direct
// file is taken (a .part, verified, renamed; never outside the folder),
// retrying with resume when the link or the server's connection breaks
// (a try waits for the session to be back). The server deletes the file
// and tells its sender once it is through.
func (s *Session) TakeOffline(ctx context.Context, f OfflineFile, opts TakeOptions, m xfer.Meter) ([]xfer.FileResult, error) {
	if opts.Retries == 0 {
		opts.Retries = 3
	}
	note := opts.Note
	if note == nil {
		note = func(string) {}
	}
	opts.Receive.Count, opts.Receive.Bytes = 1, f.Size
	opts.Connect.ForceRelay = true // the server is the other end
	var res []xfer.FileResult
	var lastErr error
	rt := retries{n: opts.Retries, note: note}
	for try := 0; try <= opts.Retries; try++ {
		if err := rt.wait(ctx, try, lastErr); err != nil {
			return res, err
		}
		cl, err := s.client(ctx, offerWait)
		if err != nil {
			return res, err
		}
		r, err := cl.Do(ctx, "GET", strconv.FormatInt(f.ID, 10))
		if err != nil {
			var pe *protocol.Error
			if errors.As(err, &pe) && pe.Code != protocol.CodeRateLimit || s.gone() {
				return res, err // no such file, off: final
			}
			lastErr = err
			continue
		}
		t, err := parseHostTicket(r.Text, false)
		if err != nil {
			return res, err
		}
		l, err := s.Link(ctx, t, opts.Connect)
		if err != nil {
			lastErr = err
			continue
		}
		if opts.Link != nil {
			opts.Link(l)
		}
		res, err = xfer.Receive(ctx, l, opts.Receive, m)
		if err == nil && len(res) == 1 && res[0].Err == nil {
			return res, nil
		}
		if errors.Is(err, xfer.ErrRefused) || ctx.Err() != nil {
			return res, err
		}
		if err == nil {
			err = errors.New("the file did not arrive")
			if len(res) == 1 {
				err = res[0].Err
			}
		}
		lastErr = err
	}
	return res, lastErr
}
