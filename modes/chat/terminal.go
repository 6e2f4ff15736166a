package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/peterh/liner"

	"qchat/protocol"
)

// terminal is the interactive screen: liner owns the prompt; lines that
// arrive while the user types are printed above it.
//
// liner has no call to print above its prompt. The trick (see
// LIBRARIES.md): clear the prompt line, write the message and a newline in
// one write(2), then send ourselves SIGWINCH; liner's own SIGWINCH handler
// redraws the prompt, the typed text and the cursor. Only used when stdin
// and stdout are both terminals and TERM is a real terminal.
type terminal struct {
	line   *liner.State
	out    *os.File
	mu     sync.Mutex
	inCmd  bool   // a command is running (no prompt on screen)
	last   string // key of the status line just above the prompt ("" if the last line is not one)
	histf  string
	colour bool
}

// printAbove prints one line above the prompt. Safe from any goroutine.
func (t *terminal) printAbove(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.printAboveLocked(s)
	t.last = ""
}

func (t *terminal) printAboveLocked(s string) {
	t.out.WriteString("\r\x1b[K" + s + "\n")
	if !t.inCmd {
		syscall.Kill(os.Getpid(), syscall.SIGWINCH)
	}
}

// status shows a line that changes (a progress bar) above the prompt: the
// first time, and whenever other lines came since, it is printed like any
// line; after that it is redrawn in place (save the cursor, go up a line,
// clear it, write, restore the cursor), which leaves the prompt and what
// the user is typing alone. s must be safe for the terminal.
func (t *terminal) status(key, s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last != key {
		t.printAboveLocked(s)
		t.last = key
		return
	}
	t.out.WriteString("\x1b7\x1b[1A\r\x1b[2K" + s + "\x1b8")
}

// askPassword asks without echo (REPL goroutine only).
func (t *terminal) askPassword(prompt string) (string, error) {
	pw, err := t.line.PasswordPrompt(prompt)
	if errors.Is(err, liner.ErrPromptAborted) {
		return "", errors.New("cancelled")
	}
	return pw, err
}

// runTerminal is the REPL.
func (a *app) runTerminal(ctx context.Context, stdin, stdout *os.File, stderr io.Writer) int {
	t := &terminal{out: stdout, colour: os.Getenv("NO_COLOR") == ""}
	t.line = liner.NewLiner()
	// Whatever happens, the terminal goes back to cooked mode.
	defer t.line.Close()
	t.line.SetCtrlCAborts(true)
	t.line.SetTabCompletionStyle(liner.TabPrints)
	t.line.SetWordCompleter(a.complete)
	a.term = t
	a.out.Above = t.printAbove

	if dir, err := dataRoot(); err == nil {
		t.histf = filepath.Join(dir, "line_history")
		if f, err := os.Open(t.histf); err == nil {
			t.line.ReadHistory(f)
			f.Close()
		}
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

	t.printAbove("qchat: connected to " + protocol.Escape(a.cl.Server()) + " — /help for commands, Tab completes, Ctrl-D quits")
	if a.cfg.User != "" {
		if err := a.login(ctx, a.cfg.User, t.askPassword); err != nil {
			a.fail(stderr, "login", err)
		} else {
			me := a.cl.Me()
			t.printAbove(fmt.Sprintf("logged in as %s (%d)", protocol.Escape(me.Nick), me.ID))
		}
	}
	for !a.quit {
		input, err := t.line.Prompt(a.prompt())
		if errors.Is(err, liner.ErrPromptAborted) {
			continue // Ctrl-C at the prompt clears the line
		}
		if err != nil { // Ctrl-D or the terminal went away
			break
		}
		if strings.TrimSpace(input) == "" {
			continue
		}
		t.line.AppendHistory(input)
		cctx, cancel := context.WithCancel(ctx)
		cmdMu.Lock()
		cancelCmd = cancel
		cmdMu.Unlock()
		t.mu.Lock()
		t.inCmd = true
		t.mu.Unlock()
		if err := a.exec(cctx, input); err != nil {
			a.fail(stderr, commandName(input), err)
		}
		t.mu.Lock()
		t.inCmd = false
		t.mu.Unlock()
		cmdMu.Lock()
		cancelCmd = nil
		cmdMu.Unlock()
		cancel()
		select {
		case <-a.cl.Done():
			t.printAbove("! connection lost: " + protocol.Escape(fmt.Sprint(a.cl.Err())))
			a.quit = true
		default:
		}
	}
	a.out.Above = nil
	a.finish()
	return 0
}

// prompt shows who I am and with whom I talk; no control characters (liner
// refuses them) and no colour.
func (a *app) prompt() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.me.ID == 0 {
		return "qchat> "
	}
	p := protocol.Escape(a.me.Nick)
	if a.cur != "" {
		peer := a.cur
		if id, ok := protocol.ParseID(a.cur); ok && a.known[id] != "" {
			peer = a.known[id]
		}
		p += " → " + protocol.Escape(peer)
	}
	return p + "> "
}

// complete completes command names and, where a command takes a user, ids
// and nicknames seen so far.
func (a *app) complete(line string, pos int) (head string, completions []string, tail string) {
	head, tail = line[:pos], line[pos:]
	start := strings.LastIndexByte(head, ' ') + 1
	word := head[start:]
	head = head[:start]
	fields := strings.Fields(head)
	if len(fields) == 0 {
		for _, c := range commands {
			if strings.HasPrefix(c.name, strings.ToLower(word)) {
				completions = append(completions, c.name+" ")
			}
		}
		return head, completions, tail
	}
	c := lookupCommand(strings.ToLower(fields[0]))
	if c == nil || c.userArg != len(fields) {
		return head, nil, tail
	}
	a.mu.Lock()
	for id, nick := range a.known {
		ids := strconv.FormatInt(id, 10)
		if strings.HasPrefix(ids, word) {
			completions = append(completions, ids+" ")
		}
		if nick != "" && strings.HasPrefix(strings.ToLower(nick), strings.ToLower(word)) && protocol.Escape(nick) == nick {
			completions = append(completions, nick+" ")
		}
	}
	a.mu.Unlock()
	sort.Strings(completions)
	return head, completions, tail
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
