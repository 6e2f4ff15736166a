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
	"time"

	"qchat/history"
	"qchat/modes/client"
	"qchat/protocol"
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
	r := &receiver{cfg: cfg, pw: pw, out: client.NewPrinter(stdout, cfg.JSON), stderr: stderr}
	return r.run(ctx)
}

type receiver struct {
	cfg    Config
	pw     string
	out    *client.Printer
	stderr io.Writer
	rec    client.Recorder
	got    int
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
	cl, err := client.Dial(ctx, r.cfg.Server, client.Options{DialTimeout: r.cfg.DialTimeout})
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
	for {
		select {
		case <-ctx.Done():
			cl.Quit(context.Background())
			return ctx.Err()
		case l, ok := <-cl.Events():
			if !ok {
				return cl.Err()
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
