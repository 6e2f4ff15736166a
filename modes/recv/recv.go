// Package recv is `qchat recv`: the unattended receiver for scripts. It
// logs in, prints every message that arrives (those that waited while it
// was offline first), acknowledges each once printed and saved, and exits
// after --count messages (status 0) or when --timeout passes first (status
// 3). A lost connection is retried with backoff until the timeout.
package recv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"qchat/history"
	"qchat/modes/client"
	"qchat/protocol"
	"qchat/xfer"
)

// Config is what `qchat recv` is told.
type Config struct {
	Server       string
	User         string
	Password     string // from QCHAT_PASSWORD
	PasswordFile string
	JSON         bool
	Count        int           // exit 0 after this many new messages (0: no limit)
	Timeout      time.Duration // give up after this long (0: never)
	NoHistory    bool
	DialTimeout  time.Duration
	ReadyFile    string // written with the user id once logged in

	// Files: offers are taken only with a folder to save them in.
	Dir            string   // where accepted files go ("" refuses every offer)
	From           []string // take offers only from these ids or nicknames (empty: from anyone)
	MaxSize        int64    // refuse offers of more bytes in all (0: no cap)
	Overwrite      bool     // replace existing files instead of "name (1).ext"
	PeerListen     string   // the peer listener's address ("" for any)
	PeerAddrFile   string   // where to write the peer listener's address (for scripts)
	ConnectTimeout time.Duration
	IdleTimeout    time.Duration
	ForceRelay     bool
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitTimeout = 3
)

// Run receives until the count, the timeout, or ctx ends.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) int {
	if cfg.Server == "" || cfg.User == "" {
		fmt.Fprintln(stderr, "qchat recv: --server (or QCHAT_SERVER) and --user are required")
		return exitUsage
	}
	pw := cfg.Password
	if pw == "" && cfg.PasswordFile != "" {
		b, err := client.ReadPasswordFile(cfg.PasswordFile)
		if err != nil {
			fmt.Fprintln(stderr, "qchat recv:", err)
			return exitUsage
		}
		pw = b
	}
	if pw == "" {
		fmt.Fprintln(stderr, "qchat recv: no password: set QCHAT_PASSWORD or use --password-file")
		return exitUsage
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	peer, err := xfer.Listen(cfg.PeerListen)
	if err != nil {
		fmt.Fprintln(stderr, "qchat recv:", err)
		return exitFailed
	}
	defer peer.Close()
	if cfg.PeerAddrFile != "" {
		if err := client.WriteFileAtomic(cfg.PeerAddrFile, peer.LocalAddr()+"\n"); err != nil {
			fmt.Fprintln(stderr, "qchat recv: peer address file:", err)
			return exitFailed
		}
	}
	r := &receiver{cfg: cfg, pw: pw, out: client.NewPrinter(stdout, cfg.JSON), stderr: stderr, peer: peer}
	return r.run(ctx)
}

type receiver struct {
	cfg    Config
	pw     string
	out    *client.Printer
	stderr io.Writer
	rec    client.Recorder
	got    int
	peer   *xfer.Peer
}

// errDone ends a session when the count is reached.
var errDone = errors.New("done")

func (r *receiver) run(ctx context.Context) int {
	backoff := 100 * time.Millisecond
	for {
		err := r.session(ctx)
		switch {
		case errors.Is(err, errDone):
			return exitOK
		case ctx.Err() != nil:
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.cfg.Count > 0 {
				fmt.Fprintf(r.stderr, "qchat recv: timeout after %s: %d of %d messages\n", r.cfg.Timeout, r.got, r.cfg.Count)
				return exitTimeout
			}
			return exitOK
		case isFinal(err):
			fmt.Fprintln(r.stderr, "qchat recv:", err)
			return exitFailed
		}
		fmt.Fprintf(r.stderr, "qchat recv: %v; reconnecting in %s\n", err, backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// isFinal tells errors that a retry cannot fix (a refused login).
func isFinal(err error) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code >= 500
}

// session is one connection: login, then messages until done or lost.
func (r *receiver) session(ctx context.Context) error {
	cl, err := client.Dial(ctx, r.cfg.Server, client.Options{DialTimeout: r.cfg.DialTimeout, Peer: r.peer})
	if err != nil {
		return err
	}
	defer cl.Close()
	me, err := cl.Login(ctx, r.cfg.User, r.pw)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if !r.cfg.NoHistory && r.rec.Hist == nil {
		dir, err := history.Dir(cl.Server(), me.ID)
		if err == nil {
			r.rec.Hist, err = history.Open(dir)
		}
		if err != nil {
			return &protocol.Error{Code: 599, Text: "history: " + err.Error()}
		}
	}
	if r.cfg.ReadyFile != "" {
		if err := client.WriteReadyFile(r.cfg.ReadyFile, me.ID); err != nil {
			return &protocol.Error{Code: 599, Text: "ready file: " + err.Error()}
		}
	}
	// Transfers run beside the event loop and report their files here.
	files := make(chan []xfer.FileResult)
	tctx, stopTransfers := context.WithCancel(ctx)
	var transfers sync.WaitGroup
	var running atomic.Int32 // transfers receiving now
	defer func() {
		stopTransfers()
		go func() {
			for range files {
			}
		}()
		transfers.Wait()
		close(files)
	}()
	for {
		select {
		case <-ctx.Done():
			cl.Quit(context.Background())
			return ctx.Err()
		case res := <-files:
			for _, f := range res {
				if f.Err == nil {
					r.got++
				}
			}
			if r.cfg.Count > 0 && r.got >= r.cfg.Count {
				cl.Quit(context.Background())
				return errDone
			}
		case l, ok := <-cl.Events():
			if !ok {
				return cl.Err()
			}
			if l.Kind == "OFFER" {
				if o, err := client.ParseOffer(l); err == nil {
					why := r.refusal(o)
					if why == "" && running.Load() >= maxTransfers {
						why = fmt.Sprintf("busy: %d transfers running", maxTransfers)
					}
					if why != "" {
						fmt.Fprintf(r.stderr, "qchat recv: refused %s from %s (%d): %s\n", offerWhat(o), protocol.Escape(o.FromNick), o.From, why)
						transfers.Add(1)
						go func() {
							defer transfers.Done()
							cl.Answer(tctx, false, o)
						}()
						continue
					}
					transfers.Add(1)
					running.Add(1)
					go func() {
						defer transfers.Done()
						defer running.Add(-1)
						res := r.receive(tctx, cl, o)
						select {
						case files <- res:
						case <-tctx.Done():
						}
					}()
				}
				continue
			}
			if l.Kind == "NUDGE" && len(l.Args) == 3 {
				from, ok := protocol.ParseID(l.Args[0])
				if t, err := protocol.ParseTime(l.Args[2]); ok && err == nil {
					r.out.Nudge(from, l.Args[1], t, false)
				}
				continue
			}
			if !client.IsAckable(l.Kind) {
				continue
			}
			m, err := client.ParseMessage(l)
			if err != nil {
				continue
			}
			isNew, err := r.rec.Receive(cl, m, func(m client.Message) { r.out.Message(m, me.ID) })
			if err != nil {
				fmt.Fprintln(r.stderr, "qchat recv:", err)
			}
			if isNew && m.IsChat() { // requests and notices are shown, not counted
				r.got++
				if r.cfg.Count > 0 && r.got >= r.cfg.Count {
					cl.Quit(context.Background())
					return errDone
				}
			}
		}
	}
}

// maxTransfers bounds the offers recv takes at once; more are refused as
// busy (the sender may offer again later).
const maxTransfers = 4

// offerWhat names an offer for a log line.
func offerWhat(o client.OfferEvent) string {
	if o.Purpose == "chat" {
		return "a direct chat"
	}
	return client.OfferLabel(o.Count, o.Bytes, protocol.Escape(o.Name))
}

// refusal says why an offer is refused, or "" to take it.
func (r *receiver) refusal(o client.OfferEvent) string {
	switch {
	case o.Purpose != "file":
		return "qchat recv takes files, not chats"
	case r.cfg.Dir == "":
		return "no --dir to save files in"
	case len(r.cfg.From) > 0 && !r.allowed(o):
		return "not in --from"
	case r.cfg.MaxSize > 0 && o.Bytes > r.cfg.MaxSize:
		return fmt.Sprintf("%s is more than --max-size %s", client.FormatBytes(o.Bytes), client.FormatBytes(r.cfg.MaxSize))
	}
	return ""
}

func (r *receiver) allowed(o client.OfferEvent) bool {
	for _, f := range r.cfg.From {
		if f == strconv.FormatInt(o.From, 10) || strings.EqualFold(f, o.FromNick) {
			return true
		}
	}
	return false
}

// receive takes one file offer into --dir and prints each file.
func (r *receiver) receive(ctx context.Context, cl *client.Client, o client.OfferEvent) []xfer.FileResult {
	t, err := cl.Answer(ctx, true, o)
	if err != nil {
		fmt.Fprintf(r.stderr, "qchat recv: accept %s: %s\n", offerWhat(o), protocol.Escape(err.Error()))
		return nil
	}
	l, err := cl.Link(ctx, t, xfer.ConnectOptions{Timeout: r.cfg.ConnectTimeout, Idle: r.cfg.IdleTimeout, ForceRelay: r.cfg.ForceRelay})
	if err != nil {
		fmt.Fprintf(r.stderr, "qchat recv: %s from %s (%d): %s\n", offerWhat(o), protocol.Escape(o.FromNick), o.From, protocol.Escape(err.Error()))
		return nil
	}
	fmt.Fprintf(r.stderr, "qchat recv: receiving %s from %s (%d) over a %s link (%s)\n", offerWhat(o), protocol.Escape(o.FromNick), o.From, l.Path, protocol.Escape(l.Via))
	res, err := xfer.Receive(ctx, l, xfer.ReceiveOptions{Dir: r.cfg.Dir, Overwrite: r.cfg.Overwrite, MaxSize: r.cfg.MaxSize}, newMeter(r.stderr, offerWhat(o)))
	from := client.User{ID: o.From, Nick: o.FromNick}
	for _, f := range res {
		if f.Err == nil {
			r.out.FileReceived(from, f, r.cfg.Dir, l.Path)
		} else {
			fmt.Fprintf(r.stderr, "qchat recv: %s from %s (%d): %s\n", protocol.Escape(f.Name), protocol.Escape(o.FromNick), o.From, protocol.Escape(f.Err.Error()))
		}
	}
	if err != nil {
		fmt.Fprintf(r.stderr, "qchat recv: %s from %s (%d): %s (what arrived is kept in .part files; offering it again resumes)\n", offerWhat(o), protocol.Escape(o.FromNick), o.From, protocol.Escape(err.Error()))
	}
	return res
}
