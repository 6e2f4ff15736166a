package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"qchat/history"
	"qchat/modes/client"
	"qchat/protocol"
	"qchat/xfer"
)

// Config is what `qchat chat` is told by its flags and environment.
type Config struct {
	Server       string        // host:port (--server or QCHAT_SERVER)
	User         string        // log in as this id or nickname at start
	Password     string        // from QCHAT_PASSWORD; never from a flag
	PasswordFile string        // first line is the password
	JSON         bool          // piped output as JSON lines
	Linger       time.Duration // keep receiving this long after stdin ends
	NoHistory    bool          // keep no history files
	Timeout      time.Duration // connect and reply timeout
	ReadyFile    string        // written once connected (and logged in, with User)

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
}

// app is one run of chat.
type app struct {
	cfg    Config
	cl     *client.Client
	out    *client.Printer
	rec    client.Recorder
	term   *terminal // nil when piped
	stderr io.Writer

	links    links
	bgCtx    context.Context // background work (links, transfers); ends with the run
	bgCancel context.CancelFunc

	mu    sync.Mutex
	me    client.User
	cur   string           // current conversation: a user id or "#group"; "" if none
	known map[int64]string // ids and nicknames seen, for completion and display

	seen     []string   // events printed so far, for /wait
	seenCond *sync.Cond // signalled (under mu) when seen grows or the connection ends
	waited   int        // /wait matched up to seen[:waited]
	// eventsDone is set when the event stream has ended.
	eventsDone bool

	events sync.WaitGroup // the event goroutine
	ready  chan struct{}  // closed once logged in with history open
	quit   bool           // /quit was given
	// nextSecret reads the next input line as a secret (piped /passwd).
	nextSecret func(prompt string) (string, error)
}

// Run runs chat until /quit, end of input or a lost connection, and
// returns the exit status: 0 only if every command succeeded.
func Run(ctx context.Context, cfg Config, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{cfg: cfg, known: make(map[int64]string), ready: make(chan struct{}), stderr: stderr}
	a.seenCond = sync.NewCond(&a.mu)
	a.links = links{offers: make(map[string]client.OfferEvent), chats: make(map[int64]*xfer.Chat), retry: make(map[string]retryable)}
	if a.cfg.Dir == "" {
		a.cfg.Dir = "."
	}
	a.bgCtx, a.bgCancel = context.WithCancel(ctx)
	defer a.bgCancel()
	interactive := isTerminal(stdin) && isTerminal(stdout) && os.Getenv("TERM") != "" && os.Getenv("TERM") != "dumb"
	if !interactive {
		// Piped, Ctrl-C (SIGINT) ends the run like the end of input: what
		// arrived is printed, the links are closed, the exit status told.
		// On a terminal it cancels the running command instead.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt)
		defer stop()
	}
	a.out = client.NewPrinter(stdout, cfg.JSON)
	if cfg.Server == "" {
		fmt.Fprintln(stderr, "qchat chat: no server: use --server HOST:PORT or set QCHAT_SERVER")
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
	cl, err := client.Dial(ctx, cfg.Server, client.Options{DialTimeout: cfg.Timeout, ReplyTimeout: cfg.Timeout, Peer: peer})
	if err != nil {
		fmt.Fprintln(stderr, "qchat chat:", err)
		return 1
	}
	a.cl = cl
	defer cl.Close()
	a.events.Add(1)
	go a.eventLoop()

	if interactive {
		return a.runTerminal(ctx, stdin.(*os.File), stdout.(*os.File), stderr)
	}
	return a.runPiped(ctx, stdin, stderr)
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
			a.fail(stderr, "login", err)
			a.finish()
			return 1
		}
	}
	if err := a.writeReady(); err != nil {
		a.fail(stderr, "ready file", err)
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
	for !a.quit {
		line, ok := next()
		if !ok {
			break
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if err := a.exec(ctx, line); err != nil {
			failed = true
			a.fail(stderr, commandName(line), err)
		}
	}
	if inputEnded && scanErr != nil {
		failed = true
		a.fail(stderr, "input", scanErr)
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
	a.cl.Quit(context.Background())
	a.events.Wait()
}

// fail reports a failed command: on stderr, or as a JSON error record.
func (a *app) fail(stderr io.Writer, cmd string, err error) {
	code := 0
	var pe *protocol.Error
	msg := err.Error()
	if errors.As(err, &pe) {
		code, msg = pe.Code, pe.Text
	}
	if a.cfg.JSON {
		a.out.Emit(client.ErrorRecord{Type: "error", Command: cmd, Code: code, Error: msg}, "")
		return
	}
	if a.term != nil {
		a.out.Emit(nil, "! "+cmd+": "+protocol.Escape(msg))
		return
	}
	fmt.Fprintf(stderr, "qchat: %s: %s\n", cmd, protocol.Escape(msg))
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

// eventLoop prints what the server sends on its own, and acknowledges
// messages once shown and saved.
func (a *app) eventLoop() {
	defer a.events.Done()
	defer func() {
		a.mu.Lock()
		a.eventsDone = true
		a.seenCond.Broadcast()
		a.mu.Unlock()
	}()
	for l := range a.cl.Events() {
		switch {
		case client.IsAckable(l.Kind):
			m, err := client.ParseMessage(l)
			if err != nil {
				continue
			}
			<-a.ready // messages come only after login; history must be open
			me := a.cl.Me()
			if _, err := a.rec.Receive(a.cl, m, func(m client.Message) {
				a.remember(m.From, m.FromNick)
				a.mu.Lock()
				if a.cur == "" && m.IsChat() {
					a.cur = m.Conversation()
				}
				a.mu.Unlock()
				a.note(a.out.Message(m, me.ID))
			}); err != nil {
				a.out.Emit(client.ErrorRecord{Type: "error", Error: "history: " + err.Error()}, "! history: "+err.Error())
			}
		case l.Kind == "PRESENCE":
			p, err := client.PresenceEvent(l)
			if err != nil {
				continue
			}
			a.remember(p.ID, p.Nick)
			a.note(a.out.Presence(p))
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
		case l.Kind == "CANCEL":
			if t, why, err := client.ParseCancel(l); err == nil {
				a.onCancel(t, why)
			}
		case l.Kind == "BYE":
			a.note(a.out.Bye(l))
		case !l.IsEvent():
			a.note(a.out.Notice(l))
		}
	}
}

// remember notes an id and nickname for completion and display.
func (a *app) remember(id int64, nick string) {
	a.mu.Lock()
	a.known[id] = nick
	a.mu.Unlock()
}

// nameOf shows a user as "nick (id)" when the nickname is known.
func (a *app) nameOf(id int64) string {
	a.mu.Lock()
	nick := a.known[id]
	a.mu.Unlock()
	if nick == "" {
		return strconv.FormatInt(id, 10)
	}
	return protocol.Escape(nick) + " (" + strconv.FormatInt(id, 10) + ")"
}

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
	if !a.cfg.NoHistory {
		dir, err := history.Dir(a.cl.Server(), me.ID)
		if err == nil {
			a.rec.Hist, err = history.Open(dir)
		}
		if err != nil {
			err = fmt.Errorf("history: %w", err)
		}
	}
	close(a.ready)
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
