// Package recv is `qchat recv`: the unattended receiver for scripts. It
// logs in, prints every message that arrives (those that waited while it
// was offline first), acknowledges each once printed and saved, and exits
// after --count messages (status 0) or when --timeout passes first (status
// 3). A lost connection is healed by a client.Session: it says so once on
// stderr, reconnects with backoff and logs in again, and what arrived
// meanwhile comes once, in order; it is retried until the timeout. Only a
// wrong password or another login of the account ends it early.
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
	"qchat/modes/client/discover"
	"qchat/protocol"
	"qchat/xfer"
)

// Config is what `qchat recv` is told.
type Config struct {
	Server       string // host:port, or several comma-separated
	ServerOrder  string // several servers: client.OrderRandom ("" too) or client.OrderListed
	User         string
	Password     string // from QCHAT_PASSWORD
	PasswordFile string
	JSON         bool
	Count        int           // exit 0 after this many new messages (0: no limit)
	Timeout      time.Duration // give up after this long (0: never)
	NoHistory    bool
	DialTimeout  time.Duration
	Keepalive    time.Duration // ping a silent server after this long (0: 1m)
	ReadyFile    string        // written with the user id once logged in

	// Without Server: the LAN is searched (modes/client/discover).
	NoDiscovery   bool // --no-discovery: do not search
	DiscoveryPort int  // 0 for the well-known port

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

	// The connection to the server.
	NoTLS bool               // --no-tls: clear text, no STARTTLS
	Keys  *client.ServerKeys // checks the server's key; nil for the defaults (Notify: stderr)
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitKey     = 2 // the server's key was refused (changed, or unknown with --strict-server)
	exitTimeout = 3
)

// Run receives until the count, the timeout, or ctx ends.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) int {
	r := &receiver{cfg: cfg, out: client.NewPrinter(stdout, cfg.JSON), stderr: stderr}
	if cfg.User == "" || cfg.Server == "" && cfg.NoDiscovery {
		r.fail(client.CodeUsage, "--user is required, and --server (or QCHAT_SERVER) unless the LAN is searched (no --no-discovery)")
		return exitUsage
	}
	pw := cfg.Password
	if pw == "" && cfg.PasswordFile != "" {
		b, err := client.ReadPasswordFile(cfg.PasswordFile)
		if err != nil {
			r.fail(client.CodeUsage, err.Error())
			return exitUsage
		}
		pw = b
	}
	if pw == "" {
		r.fail(client.CodeUsage, "no password: set QCHAT_PASSWORD or use --password-file")
		return exitUsage
	}
	r.pw = pw
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	peer, err := xfer.Listen(cfg.PeerListen)
	if err != nil {
		r.fail(client.CodeFailed, err.Error())
		return exitFailed
	}
	defer peer.Close()
	if cfg.PeerAddrFile != "" {
		if err := client.WriteFileAtomic(cfg.PeerAddrFile, peer.LocalAddr()+"\n"); err != nil {
			r.fail(client.CodeFailed, "peer address file: "+err.Error())
			return exitFailed
		}
	}
	if r.cfg.Keys == nil {
		r.cfg.Keys = &client.ServerKeys{}
	}
	if r.cfg.Keys.Notify == nil {
		r.cfg.Keys.Notify = stderr
	}
	if r.cfg.Server == "" {
		var status int
		if r.cfg.Server, status = discover.Run(ctx, discover.Options{Config: discover.Config{Port: r.cfg.DiscoveryPort}, Keys: r.cfg.Keys},
			r.out, stderr, "qchat recv"); status != 0 {
			return status
		}
	}
	r.peer = peer
	return r.run(ctx)
}

type receiver struct {
	offline offlineQueue
	cfg     Config
	pw      string
	out     *client.Printer
	stderr  io.Writer
	rec     client.Recorder
	got     int
	peer    *xfer.Peer
}

// errDone ends the loop when the count is reached.
var errDone = errors.New("done")

func (r *receiver) run(ctx context.Context) int {
	cl := client.NewSession(client.SessionConfig{Addr: r.cfg.Server, Order: r.cfg.ServerOrder, Skipped: r.onConn, User: r.cfg.User, Password: r.pw,
		Options: client.Options{DialTimeout: r.cfg.DialTimeout, Peer: r.peer, PingInterval: r.cfg.Keepalive, NoTLS: r.cfg.NoTLS, Keys: r.cfg.Keys}})
	err := cl.Connect(ctx, func(err error, wait time.Duration) {
		fmt.Fprintf(r.stderr, "qchat recv: %s (trying again in %s)\n", protocol.Escape(err.Error()), wait.Round(time.Millisecond))
		if r.cfg.JSON {
			r.out.Emit(client.ConnRecord(client.ConnEvent{State: client.ConnReconnecting, Time: time.Now(), Server: r.cfg.Server, Err: err}), "")
		}
	})
	if err == nil {
		defer cl.Close()
		err = r.receiveAll(ctx, cl)
	}
	var keyErr *client.ServerKeyError
	switch {
	case errors.Is(err, errDone):
		return exitOK
	case errors.As(err, &keyErr): // at the start or at a reconnect: never retried
		if r.cfg.JSON {
			r.out.Emit(client.NewError("", client.CodeServerKey, keyErr.Error()), "")
		}
		fmt.Fprintln(r.stderr, keyErr.Warning())
		return exitKey
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.cfg.Count > 0 {
			r.fail(client.CodeTimeout, fmt.Sprintf("timeout after %s: %d of %d messages", r.cfg.Timeout, r.got, r.cfg.Count))
			return exitTimeout
		}
		return exitOK
	}
	code := client.CodeFailed
	var pe *protocol.Error
	var de *client.DialError
	var unr *client.UnreachableError
	switch {
	case errors.As(err, &unr): // several servers: each one's failure, whatever it was
		code = client.CodeUnreachable
	case errors.As(err, &pe):
		code = strconv.Itoa(pe.Code)
	case errors.As(err, &de):
		code = client.CodeUnreachable
	case client.IsFinal(err):
		code = client.CodeConnection
	}
	r.fail(code, err.Error())
	return exitFailed
}

// fail reports why recv ends: on stderr, and with --json as an error
// object on stdout.
func (r *receiver) fail(code, msg string) {
	if r.cfg.JSON {
		r.out.Emit(client.NewError("", code, msg), "")
	}
	fmt.Fprintln(r.stderr, "qchat recv:", protocol.Escape(msg))
}

// onConn tells of a change of the connection: a line for people on
// stderr, and the JSON record on stdout under --json.
func (r *receiver) onConn(ev client.ConnEvent) {
	if text := client.ConnText(ev); text != "" {
		fmt.Fprintln(r.stderr, "qchat recv:", text)
	}
	if r.cfg.JSON {
		r.out.Emit(client.ConnRecord(ev), "")
	}
}

// receiveAll prints and acknowledges what arrives until the count, the
// end of ctx or the end of the session; the connection heals beneath it.
func (r *receiver) receiveAll(ctx context.Context, cl *client.Session) error {
	me := cl.Me()
	if !r.cfg.NoHistory {
		dir, err := history.Dir(cl.Server(), me.ID)
		if err == nil {
			r.rec.Hist, err = history.Open(dir)
		}
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
	}
	if r.cfg.ReadyFile != "" {
		if err := client.WriteReadyFile(r.cfg.ReadyFile, me.ID); err != nil {
			return fmt.Errorf("ready file: %w", err)
		}
	}
	// Transfers run beside the event loop and report their files here;
	// a direct link goes on while the server connection heals.
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
		case ev, ok := <-cl.Events():
			if !ok {
				return cl.Err()
			}
			if ev.Conn != nil {
				r.onConn(*ev.Conn)
				continue
			}
			l := ev.Line
			if l.Kind == "OFFLINE" {
				if f, err := client.ParseOffline(l); err == nil {
					r.onOffline(tctx, cl, f, &transfers, files)
				}
				continue
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
			isNew, err := r.rec.Receive(cl, m, func(m client.Message) { r.out.Message(m, me) })
			if err != nil {
				if r.cfg.JSON {
					r.out.Emit(client.NewError("", client.CodeHistory, err.Error()), "")
				}
				fmt.Fprintln(r.stderr, "qchat recv:", protocol.Escape(err.Error()))
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
func (r *receiver) receive(ctx context.Context, cl *client.Session, o client.OfferEvent) []xfer.FileResult {
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
	fmt.Fprintf(r.stderr, "qchat recv: receiving %s from %s (%d) over a %s link (%s; NAT here: %s)\n", offerWhat(o), protocol.Escape(o.FromNick), o.From,
		l.Path, protocol.Escape(l.Route().Text()), cl.NAT())
	watched := client.WatchMoves(l, func(rt xfer.Route) {
		fmt.Fprintf(r.stderr, "qchat recv: the link with %s (%d) is now %s (%s)\n", protocol.Escape(o.FromNick), o.From, rt.Path, protocol.Escape(rt.Text()))
	})
	res, err := xfer.Receive(ctx, l, xfer.ReceiveOptions{Dir: r.cfg.Dir, Overwrite: r.cfg.Overwrite, MaxSize: r.cfg.MaxSize, Count: int64(o.Count), Bytes: o.Bytes}, newMeter(r.stderr, offerWhat(o)))
	<-watched
	from := client.User{ID: o.From, Nick: o.FromNick}
	for _, f := range res {
		if f.Err == nil {
			r.out.FileReceived(from, f, r.cfg.Dir, l.Route().Path)
		} else {
			fmt.Fprintf(r.stderr, "qchat recv: %s from %s (%d): %s\n", protocol.Escape(f.Name), protocol.Escape(o.FromNick), o.From, protocol.Escape(f.Err.Error()))
		}
	}
	if err != nil {
		fmt.Fprintf(r.stderr, "qchat recv: %s from %s (%d): %s (what arrived is kept in .part files; offering it again resumes)\n", offerWhat(o), protocol.Escape(o.FromNick), o.From, protocol.Escape(err.Error()))
	}
	return res
}
