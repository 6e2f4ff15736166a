package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"qchat/history"
	"qchat/modes/client"
	"qchat/modes/client/discover"
	"qchat/protocol"
	"qchat/xfer"
)

// Config is what `qchat chat` is told by its flags and environment.
type Config struct {
	Server       string        // host:port, or several comma-separated (--server or QCHAT_SERVER)
	ServerOrder  string        // several servers: client.OrderRandom ("" too) or client.OrderListed
	User         string        // log in as this id or nickname at start
	Password     string        // from QCHAT_PASSWORD; never from a flag
	PasswordFile string        // first line is the password
	JSON         bool          // piped output as JSON lines
	Linger       time.Duration // keep receiving this long after stdin ends
	NoHistory    bool          // keep no history files
	Sync         bool          // --sync: log in, fill the history files from the server's archive, and leave
	Timeout      time.Duration // connect and reply timeout; piped, how long a lost server is waited for
	Keepalive    time.Duration // ping a silent server after this long (0: 1m)
	ReadyFile    string        // written once connected (and logged in, with User)

	// Without Server: the LAN is searched (modes/client/discover).
	NoDiscovery   bool // --no-discovery: do not search
	DiscoveryPort int  // 0 for the well-known port

	// Direct links and files.
	PeerListen     string        // address of the peer listener ("" for all interfaces, any port)
	PeerAddrFile   string        // where to write the peer listener's address (for scripts)
	Dir            string        // where accepted files are saved
	Overwrite      bool          // replace existing files instead of saving "name (1).ext"
	ConnectTimeout time.Duration // to make a direct link (or get it relayed)
	IdleTimeout    time.Duration // a link with no bytes moving for this long has failed
	ForceRelay     bool          // always go through the server's relay
	MaxChats       int           // direct chats open at once; more are refused (0: none)
	Rate           int64         // bytes per second of files sent, 0 for no limit

	// The connection to the server.
	NoTLS bool               // --no-tls: clear text, no STARTTLS
	Keys  *client.ServerKeys // checks the server's key; nil for the defaults (Notify: stderr)
}

// app is one run of chat.
type app struct {
	cfg    Config
	cl     *client.Session // heals: reconnects and logs in again by itself
	out    *client.Printer
	rec    client.Recorder
	term   *terminal // nil when piped
	stderr io.Writer

	links    links
	bgCtx    context.Context // background work (links, transfers); ends with the run
	bgCancel context.CancelFunc

	mu       sync.Mutex
	me       client.User
	cur      string                 // the target: a user id or "#group"; "" if none (conversations.go)
	unread   map[string]*unreadConv // conversations other than the target with unread messages
	arrivals uint64                 // messages counted as unread so far (their order)
	known    map[int64]string       // ids and nicknames seen, for completion and display
	groups   map[string]bool        // groups ("#name") seen, for completion
	rt       receiptState           // receipts and typing (receipts.go)

	seen     []string   // events printed so far, for /wait
	seenCond *sync.Cond // signalled (under mu) when seen grows or the connection ends
	waited   int        // /wait matched up to seen[:waited]
	// eventsDone is set when the event stream has ended.
	eventsDone bool
	// receiving is set (under mu) while the event loop handles a message:
	// shown (so /wait may have matched it) but maybe not yet saved and
	// acknowledged. Logging out waits for it, or the QUIT would overtake
	// the ACK and the server keep the message for next time.
	receiving bool

	events sync.WaitGroup // the event goroutine
	ready  chan struct{}  // closed once logged in with history open
	quit   bool           // /quit was given
	syncMu sync.Mutex     // one sync with the server's archive at a time (sync.go)
	// nextSecret reads the next input line as a secret (piped /passwd).
	nextSecret func(prompt string) (string, error)
}

// Run runs chat until /quit, end of input or a lost connection, and
// returns the exit status: 0 only if every command succeeded.
func Run(ctx context.Context, cfg Config, stdin io.Reader, stdout, stderr io.Writer) int {
	a := newApp(ctx, cfg, stdout, stderr)
	defer a.bgCancel()
	interactive := isTerminal(stdin) && isTerminal(stdout) && os.Getenv("TERM") != "" && os.Getenv("TERM") != "dumb"
	if cfg.Sync {
		// What --sync does is what these lines piped do.
		stdin, interactive = strings.NewReader("/sync\n/quit\n"), false
	}
	if !interactive {
		// Piped, Ctrl-C (SIGINT) ends the run like the end of input: what
		// arrived is printed, the links are closed, the exit status told.
		// On a terminal it cancels the running command instead.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt)
		defer stop()
	}
	if cfg.Server == "" && cfg.NoDiscovery {
		msg := "no server: use --server HOST:PORT or set QCHAT_SERVER (--no-discovery: the LAN is not searched)"
		if cfg.JSON {
			a.out.Emit(client.NewError("", client.CodeUsage, msg), "")
		}
		fmt.Fprintln(stderr, "qchat chat:", msg)
		return 2
	}
	peer, err := xfer.Listen(cfg.PeerListen)
	if err != nil {
		fmt.Fprintln(stderr, "qchat chat:", err)
		return 1
	}
	defer peer.Close()
	if cfg.PeerAddrFile != "" {
		if err := client.WriteFileAtomic(cfg.PeerAddrFile, peer.LocalAddr()+"\n"); err != nil {
			fmt.Fprintln(stderr, "qchat chat: peer address file:", err)
			return 1
		}
	}
	keys := cfg.Keys
	if keys == nil {
		keys = &client.ServerKeys{}
	}
	if keys.Notify == nil {
		keys.Notify = stderr
	}
	if cfg.Server == "" {
		var prompt *discover.Prompt
		if interactive {
			prompt = &discover.Prompt{In: stdin, Out: stdout}
		}
		var status int
		if cfg.Server, status = discover.Run(ctx, discover.Options{Config: discover.Config{Port: cfg.DiscoveryPort}, Keys: keys, Prompt: prompt},
			a.out, stderr, "qchat chat"); status != 0 {
			return status
		}
		a.cfg.Server = cfg.Server
	}
	// Piped, a lost server is waited for up to --timeout (each command
	// waits for it, then the run gives up); on a terminal the session
	// never gives up, and a command that needs the server while it is
	// down says so at once (lines typed meanwhile wait in the outbox).
	scfg := client.SessionConfig{Addr: cfg.Server, Order: cfg.ServerOrder, Skipped: func(ev client.ConnEvent) { a.out.Connection(ev) }, Options: client.Options{DialTimeout: cfg.Timeout, ReplyTimeout: cfg.Timeout,
		Peer: peer, PingInterval: cfg.Keepalive, NoTLS: cfg.NoTLS, Keys: keys}}
	if !interactive {
		scfg.GiveUp, scfg.WaitUp = cfg.Timeout, cfg.Timeout
	}
	cl := client.NewSession(scfg)
	err = cl.Connect(ctx, nil)
	var keyErr *client.ServerKeyError
	if errors.As(err, &keyErr) {
		if cfg.JSON {
			a.out.Emit(client.NewError("", client.CodeServerKey, keyErr.Error()), "")
		}
		fmt.Fprintln(stderr, keyErr.Warning())
		return 2
	}
	if err != nil {
		a.failStart(err)
		return 1
	}
	a.cl = cl
	defer cl.Close()
	a.events.Add(1)
	go a.eventLoop()

	var status int
	if interactive {
		status = a.runTerminal(ctx, stdin.(*os.File), stdout.(*os.File), stderr)
	} else {
		status = a.runPiped(ctx, stdin, stderr)
	}
	if errors.As(cl.Err(), &keyErr) {
		return 2 // the server's key was refused at a reconnect
	}
	return status
}

// newApp is an app before it connects.
func newApp(ctx context.Context, cfg Config, stdout, stderr io.Writer) *app {
	a := &app{cfg: cfg, known: make(map[int64]string), unread: make(map[string]*unreadConv), groups: make(map[string]bool),
		ready: make(chan struct{}), stderr: stderr, out: client.NewPrinter(stdout, cfg.JSON), rt: newReceiptState()}
	a.seenCond = sync.NewCond(&a.mu)
	a.links = links{offers: make(map[string]client.OfferEvent), chats: make(map[int64]*xfer.Chat), retry: make(map[string]retryable),
		offline: make(map[int64]client.OfflineFile)}
	if a.cfg.Dir == "" {
		a.cfg.Dir = "."
	}
	a.bgCtx, a.bgCancel = context.WithCancel(ctx)
	return a
}

func isTerminal(f any) bool {
	fd, ok := f.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(fd.Fd()))
}

// runPiped reads commands from stdin, each waiting for its result.
func (a *app) runPiped(ctx context.Context, stdin io.Reader, stderr io.Writer) int {
	failed := false
	if a.cfg.User != "" {
		if err := a.login(ctx, a.cfg.User, nil); err != nil {
			a.fail(stderr, "/login "+a.cfg.User, err)
			a.finish()
			return 1
		}
	}
	if err := a.writeReady(); err != nil {
		a.failOutside(stderr, "ready file", err)
		a.finish()
		return 1
	}
	// Lines are read on their own goroutine, so that a signal (ctx) ends
	// the run even while the input is silent. It reads one line ahead at
	// most: each command still runs to its end before the next one.
	lines := make(chan string)
	var scanErr error
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 0, 64<<10), protocol.MaxLine)
		for sc.Scan() {
			lines <- strings.TrimRight(sc.Text(), "\r")
		}
		scanErr = sc.Err()
	}()
	inputEnded := false
	next := func() (string, bool) {
		select {
		case l, ok := <-lines:
			inputEnded = !ok
			return l, ok
		case <-ctx.Done():
			return "", false
		}
	}
	a.nextSecret = func(string) (string, error) {
		l, ok := next()
		if !ok {
			return "", errors.New("input ended where a password was expected")
		}
		return l, nil
	}
	lineNo := 0
	for !a.quit {
		if err := a.cl.Err(); err != nil {
			// The session ended for good (gave up on the server, another
			// login took over): say what was not run.
			failed = true
			code, _ := errorCode(err)
			a.failOutside(stderr, "input", &codedError{code, fmt.Sprintf("stopped before input line %d (it and the lines after it were not run): %s",
				lineNo+1, err.Error())})
			break
		}
		line, ok := next()
		if !ok {
			break
		}
		lineNo++
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if err := a.exec(ctx, line); err != nil {
			failed = true
			a.fail(stderr, strings.TrimSpace(line), err)
		}
	}
	if inputEnded && scanErr != nil {
		failed = true
		a.failOutside(stderr, "input", &codedError{client.CodeInput, scanErr.Error()})
	}
	if !a.quit && a.cfg.Linger > 0 {
		select {
		case <-time.After(a.cfg.Linger):
		case <-a.cl.Done():
		case <-ctx.Done():
		}
	}
	a.finish()
	if a.cl.Err() != nil && !a.quit && !errors.Is(a.cl.Err(), client.ErrClosed) {
		failed = true
	}
	if failed {
		return 1
	}
	return 0
}

// finish ends the direct links, logs out and waits until every event
// received has been printed.
func (a *app) finish() {
	a.closeLinks()
	a.drainOutbox()
	a.mu.Lock()
	for a.receiving {
		a.seenCond.Wait()
	}
	a.mu.Unlock()
	a.cl.Quit(context.Background())
	a.events.Wait()
}

// drainOutbox gives messages still waiting for their answer a moment when
// connected, then names those that were not sent.
func (a *app) drainOutbox() {
	out := a.cl.Outbox()
	deadline := time.After(2 * time.Second)
	for _, p := range out.Waiting() {
		if !a.cl.Up() {
			break
		}
		select {
		case <-p.Done():
		case <-a.cl.Lost():
		case <-deadline:
		}
	}
	for _, p := range out.Waiting() {
		out.Finish(p, client.Sent{}, errors.New("no connection"))
		a.fail(a.stderr, "/msg", fmt.Errorf("not sent (the server never answered; it may or may not have arrived): %s to %s",
			protocol.Escape(protocol.Clip(p.Text, 60)), protocol.Escape(p.To)))
	}
}

// fail reports a failed command (the line as typed): on stderr, on a
// terminal above the prompt; with --json also as an error object on
// stdout.
func (a *app) fail(stderr io.Writer, line string, err error) {
	code, msg := errorCode(err)
	if a.cfg.JSON {
		a.out.Emit(client.NewError(line, code, msg), "")
	}
	if a.term != nil {
		a.out.Emit(nil, "! "+commandName(line)+": "+protocol.Escape(msg))
		return
	}
	fmt.Fprintf(stderr, "qchat: %s: %s\n", commandName(line), protocol.Escape(msg))
}

// failOutside reports a failure outside any command (what: "input",
// "connection"): as fail does, without a command in the JSON object.
func (a *app) failOutside(stderr io.Writer, what string, err error) {
	code, msg := errorCode(err)
	if a.cfg.JSON {
		a.out.Emit(client.NewError("", code, msg), "")
	}
	if a.term != nil {
		a.out.Emit(nil, "! "+what+": "+protocol.Escape(msg))
		return
	}
	fmt.Fprintf(stderr, "qchat: %s: %s\n", what, protocol.Escape(msg))
}

// failStart reports what ended the run before any command: on stderr, and
// with --json as an error object on stdout.
func (a *app) failStart(err error) {
	code, msg := errorCode(err)
	if a.cfg.JSON {
		a.out.Emit(client.NewError("", code, msg), "")
	}
	fmt.Fprintln(a.stderr, "qchat chat:", protocol.Escape(msg))
}

func commandName(line string) string {
	f := strings.Fields(line)
	if len(f) == 0 || !strings.HasPrefix(f[0], "/") || strings.HasPrefix(f[0], "//") {
		return "/msg" // text for the current conversation ("//x" sends "/x")
	}
	return f[0]
}

// writeReady writes the ready file for scripts waiting on it.
func (a *app) writeReady() error {
	if a.cfg.ReadyFile == "" {
		return nil
	}
	return client.WriteReadyFile(a.cfg.ReadyFile, a.cl.Me().ID)
}

// note records a printed event for /wait.
func (a *app) note(line string) {
	a.mu.Lock()
	a.seen = append(a.seen, line)
	a.seenCond.Broadcast()
	a.mu.Unlock()
}

// setReceiving marks the event loop inside (or out of) one message.
func (a *app) setReceiving(on bool) {
	a.mu.Lock()
	a.receiving = on
	a.seenCond.Broadcast()
	a.mu.Unlock()
}

// eventLoop prints what the server sends on its own, and acknowledges
// messages once shown and saved.
func (a *app) eventLoop() {
	defer a.events.Done()
	defer func() {
		a.mu.Lock()
		a.eventsDone = true
		a.seenCond.Broadcast()
		a.mu.Unlock()
		if err := a.cl.Err(); err != nil && !errors.Is(err, client.ErrClosed) || client.IsFinal(err) {
			// Ended for good: the reason, once (not after /quit).
			msg := "session ended, no reconnect: " + client.ConnErrText(err)
			var keyErr *client.ServerKeyError
			if errors.As(err, &keyErr) {
				msg = "session ended, no reconnect:\n" + keyErr.Warning()
			}
			if a.term != nil {
				msg += " (Enter leaves)"
			}
			code, _ := errorCode(err)
			a.failOutside(a.stderr, "connection", &codedError{code, msg})
		}
	}()
	for ev := range a.cl.Events() {
		if ev.Conn != nil {
			if ev.Conn.State == client.ConnBack {
				a.reconnected()
			}
			if line := a.out.Connection(*ev.Conn); line != "" {
				a.note(line)
			}
			continue
		}
		l := ev.Line
		switch {
		case client.IsAckable(l.Kind):
			m, err := client.ParseMessage(l)
			if err != nil {
				continue
			}
			<-a.ready // messages come only after login; history must be open
			me := a.cl.Me()
			a.setReceiving(true)
			if _, err := a.rec.Receive(a.cl, m, func(m client.Message) {
				a.remember(m.From, m.FromNick)
				a.note(a.out.Message(m, me))
				if m.IsChat() {
					a.arrived(m.Conversation())
				}
				a.shownMessage(m, len(a.cl.Events()) > 0) // a READ goes before the ACK
			}); err != nil {
				a.historyFailed(err)
			}
			a.setReceiving(false)
		case l.Kind == "RECEIPT":
			if r, err := client.ParseReceipt(l); err == nil {
				a.onReceipt(r)
			}
		case l.Kind == "TYPING":
			if t, err := client.ParseTyping(l); err == nil {
				a.onTyping(t)
			}
		case l.Kind == "PRESENCE":
			p, err := client.PresenceEvent(l)
			if err != nil {
				continue
			}
			a.remember(p.ID, p.Nick)
			a.note(a.out.Presence(p))
		case l.Kind == "PRESENCES":
			if c, err := client.PresencesEvent(l); err == nil {
				a.note(a.out.Presences(c))
			}
		case l.Kind == "NUDGE" && len(l.Args) == 3:
			from, ok := protocol.ParseID(l.Args[0])
			t, err := protocol.ParseTime(l.Args[2])
			if !ok || err != nil {
				continue
			}
			a.remember(from, l.Args[1])
			a.note(a.out.Nudge(from, l.Args[1], t, a.term != nil))
		case l.Kind == "OFFER":
			if o, err := client.ParseOffer(l); err == nil {
				a.onOffer(o)
			}
		case l.Kind == "OFFLINE":
			if f, err := client.ParseOffline(l); err == nil {
				a.onOfflineFile(f)
			}
		case l.Kind == "CANCEL":
			if t, why, err := client.ParseCancel(l); err == nil {
				a.onCancel(t, why)
			}
		case l.Kind == "BYE":
			a.note(a.out.Bye(l))
		case !l.IsEvent():
			a.note(a.out.Notice(l))
		}
		if len(a.cl.Events()) == 0 {
			a.flushRead()
		}
	}
}

// remember notes an id and nickname for completion and display.
func (a *app) remember(id int64, nick string) {
	a.mu.Lock()
	a.known[id] = nick
	a.mu.Unlock()
}

// rememberIfUnknown notes a nickname unless one is known for id already
// (an old one, from history).
func (a *app) rememberIfUnknown(id int64, nick string) {
	a.mu.Lock()
	if a.known[id] == "" {
		a.known[id] = nick
	}
	a.mu.Unlock()
}

// rememberGroup notes a group ("#name") for completion.
func (a *app) rememberGroup(g string) {
	a.mu.Lock()
	a.groups[g] = true
	a.mu.Unlock()
}

// nameOf shows a user as "nick (id)" when the nickname is known.
func (a *app) nameOf(id int64) string { return client.Name(id, a.nickOf(id)) }

// login logs in and opens the user's history.
func (a *app) login(ctx context.Context, user string, ask func(prompt string) (string, error)) error {
	pw, err := a.password("password for "+user+": ", ask)
	if err != nil {
		return err
	}
	me, err := a.cl.Login(ctx, user, pw)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.me = me
	a.known[me.ID] = me.Nick
	a.mu.Unlock()
	dir := ""
	if !a.cfg.NoHistory {
		dir, err = history.Dir(a.cl.Server(), me.ID)
		if err == nil {
			a.rec.Hist, err = history.Open(dir)
		}
		if err != nil {
			dir, err = "", fmt.Errorf("history: %w", err)
		}
	}
	close(a.ready)
	if a.term != nil {
		a.term.loggedIn(a, dir)
	}
	if err == nil {
		a.syncAtLogin(ctx)
	}
	return err
}

// password finds the password: QCHAT_PASSWORD, --password-file, the
// terminal prompt (ask), or the controlling terminal.
func (a *app) password(prompt string, ask func(string) (string, error)) (string, error) {
	switch {
	case a.cfg.Password != "":
		return a.cfg.Password, nil
	case a.cfg.PasswordFile != "":
		return client.ReadPasswordFile(a.cfg.PasswordFile)
	case ask != nil:
		return ask(prompt)
	}
	return ttyPassword(prompt)
}
