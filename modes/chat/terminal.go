package chat

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/term"

	"qchat/modes/chat/internal/liner"
	"qchat/protocol"
)

// terminal is the interactive screen: liner (our copy, internal/liner)
// owns the prompt line; lines that arrive while the user types are
// printed above it by liner's own goroutine between two keys, which then
// redraws the prompt, the typed text and the cursor — also when only the
// prompt changed (a message came: the unread counts). Only used when stdin
// and stdout are both terminals and TERM is a real terminal.
type terminal struct {
	line *liner.State
	out  *os.File
	mu   sync.Mutex
	last string // key of the status line just above the prompt ("" if the last line is not one)
	// histf is the file of the line history (Up arrow): the account's
	// once logged in, before that one shared by the logged-out prompts.
	histf string
}

// printAbove prints one line above the prompt. Safe from any goroutine.
func (t *terminal) printAbove(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.line.PrintAbove(s)
	t.last = ""
}

// status shows a line that changes (a progress bar) above the prompt: the
// first time, and whenever other lines came since, it is printed like any
// line; after that it replaces itself. s must be safe for the terminal.
func (t *terminal) status(key, s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last != key {
		t.line.PrintAbove(s)
		t.last = key
		return
	}
	t.line.ReplaceAbove(s)
}

// askPassword asks without echo (REPL goroutine only).
func (t *terminal) askPassword(prompt string) (string, error) {
	pw, err := t.line.PasswordPrompt(prompt)
	if errors.Is(err, liner.ErrPromptAborted) {
		return "", errors.New("cancelled")
	}
	return pw, err
}

// columns is the terminal's width (80 when it cannot be had).
func (t *terminal) columns() int {
	if w, _, err := term.GetSize(int(t.out.Fd())); err == nil && w > 0 {
		return w
	}
	return 80
}

// width is the width output is laid out for: the terminal's, or 80.
func (a *app) width() int {
	if a.term != nil {
		return a.term.columns()
	}
	return 80
}

// runTerminal is the REPL.
func (a *app) runTerminal(ctx context.Context, stdin, stdout *os.File, stderr io.Writer) int {
	t := &terminal{out: stdout}
	t.line = liner.NewLiner()
	// Whatever happens, the terminal goes back to cooked mode.
	defer t.line.Close()
	t.line.SetCtrlCAborts(true)
	t.line.SetTabCompletionStyle(liner.TabPrints)
	t.line.SetWordCompleter(a.complete)
	t.line.SetPromptFunc(a.prompt)
	t.line.OnAltKey('a', a.newestUnread)
	t.line.OnEdit(a.onEdit)
	t.line.OnFocus(a.onFocus)
	a.term = t
	a.out.Above = t.printAbove

	if dir, err := dataRoot(); err == nil && !a.cfg.NoHistory {
		t.useHistory(filepath.Join(dir, "line_history"))
	}
	defer t.saveHistory()

	// Outside the prompt, Ctrl-C is a signal: it cancels the running
	// command instead of killing the process with the terminal raw.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var cancelCmd context.CancelFunc
	var cmdMu sync.Mutex
	go func() {
		for sig := range sigs {
			cmdMu.Lock()
			cancel := cancelCmd
			cmdMu.Unlock()
			if sig == os.Interrupt && cancel != nil {
				cancel()
				continue
			}
			if sig != os.Interrupt {
				t.saveHistory()
				t.line.Close()
				a.cl.Quit(context.Background())
				os.Exit(0)
			}
		}
	}()

	t.printAbove("qchat: connected to " + protocol.Escape(a.cl.Server()) + " — /help for commands and keys, Tab completes, Ctrl-D quits")
	if a.cfg.User != "" {
		if err := a.login(ctx, a.cfg.User, t.askPassword); err != nil {
			a.fail(stderr, "/login "+a.cfg.User, err)
		} else {
			me := a.cl.Me()
			t.printAbove("logged in as " + a.nameOf(me.ID))
		}
	}
	for !a.quit {
		input, err := t.line.Prompt(a.prompt())
		if errors.Is(err, liner.ErrPromptAborted) {
			a.typed("") // no longer typing it
			continue    // Ctrl-C at the prompt clears the line
		}
		if err != nil { // Ctrl-D or the terminal went away
			// The prompt line stays as it was; the shell's prompt comes on
			// a line of its own.
			t.out.WriteString("\n")
			t.printAbove("bye")
			break
		}
		t.mu.Lock()
		t.last = "" // the line just entered is above the prompt now
		t.mu.Unlock()
		a.submitted()
		if strings.TrimSpace(input) == "" {
			continue
		}
		t.line.AppendHistory(input)
		cctx, cancel := context.WithCancel(ctx)
		cmdMu.Lock()
		cancelCmd = cancel
		cmdMu.Unlock()
		if err := a.exec(cctx, input); err != nil {
			a.fail(stderr, strings.TrimSpace(input), err)
		}
		cmdMu.Lock()
		cancelCmd = nil
		cmdMu.Unlock()
		cancel()
		select {
		case <-a.cl.Done(): // ended for good (the event loop said why)
			a.quit = true
		default:
		}
	}
	a.out.Above = nil
	a.finish()
	return 0
}

// loggedIn switches to the account's line history and, in the
// background, learns friends, groups and past peers for completion
// (terminal only; the REPL goroutine).
func (t *terminal) loggedIn(a *app, historyDir string) {
	if historyDir != "" {
		t.useHistory(filepath.Join(historyDir, "line_history"))
	}
	a.events.Add(1)
	go func() {
		defer a.events.Done()
		a.learnSettings(a.bgCtx) // no answer: they stay on (the server enforces them anyway)
		a.learnWorld(a.bgCtx)
	}()
}

// useHistory saves the line history to the file it came from and loads
// the one at path instead. Between prompts only (liner holds its history
// during a Prompt).
func (t *terminal) useHistory(path string) {
	t.saveHistory()
	t.line.ClearHistory()
	t.histf = path
	if f, err := os.Open(path); err == nil {
		t.line.ReadHistory(f)
		f.Close()
	}
}

func (t *terminal) saveHistory() {
	if t.histf == "" {
		return
	}
	os.MkdirAll(filepath.Dir(t.histf), 0o700)
	f, err := os.OpenFile(t.histf, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return
	}
	t.line.WriteHistory(f)
	f.Close()
}

// dataRoot is $XDG_DATA_HOME/qchat (or ~/.local/share/qchat).
func dataRoot() (string, error) {
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "qchat"), nil
}
