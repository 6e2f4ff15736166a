package chat

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
)

// TestTerminal drives the real REPL in a pseudo-terminal, as a person at
// an xterm would, against a server played by the test, and looks at the
// screen (screen_test.go) after each step: the prompt shows the target
// and the unread counts as soon as messages arrive, while what is typed
// stays whole; Alt-A jumps to the newest unread conversation; Tab
// completes a Chinese nickname and a path; Ctrl-D leaves a newline and
// says bye; and nothing on the screen is garbled.
func TestTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process in a pseudo-terminal")
	}
	tt := startTerminal(t)
	scr, typ, prompt, dir := tt.scr, tt.typ, tt.prompt, tt.dir
	sc := tt.login(t, []string{"210-1003 小明 offline", "210 1 friends"}, []string{"210-#team 3 open", "210 1 groups"})

	// Typing, then messages arrive: the first conversation becomes the
	// target, the others count as unread, and the typed text stays.
	typ("hello wor")
	prompt("alice> hello wor")
	sc.Send(t, "MSG 7 1001 bob "+fakeserver.WireTime+" hi alice")
	prompt("alice → bob> hello wor")
	sc.Send(t, "MSG 8 1002 carol "+fakeserver.WireTime+" lunch?", "GMSG 9 1001 bob "+fakeserver.WireTime+" #team standup")
	prompt("alice → bob [2 unread: carol 1, #team 1]> hello wor")
	// bob's message came into the conversation on screen while alice
	// types: it is read (READ before its ACK, to ride on bob's 250).
	wantLines := func(want ...string) {
		t.Helper()
		for _, w := range want {
			got := sc.Next(t)
			for got == "TYPING 1001 on" && w != got {
				got = sc.Next(t) // typing said again: a slow machine took typingRefresh
			}
			if got != w {
				t.Errorf("the client wrote %q, want %q", got, w)
			}
		}
	}
	wantLines("READ 1001 7", "ACK 7", "ACK 8", "ACK 9")

	// Typing: bob's shows in the prompt; alice's line to bob says hers.
	sc.Send(t, "TYPING 1001 bob on")
	prompt("alice → bob [bob is typing…] [2 unread: carol 1, #team 1]> hello wor")
	typ("ld")
	wantLines("TYPING 1001 on")
	// bob's message ends his typing. The window lost focus (the report,
	// then a key, so that the prompt says when it was taken): not read
	// until it has focus again.
	typ("\x1b[O!")
	prompt("alice → bob [bob is typing…] [2 unread: carol 1, #team 1]> hello world!")
	sc.Send(t, "MSG 10 1001 bob "+fakeserver.WireTime+" you there?")
	prompt("alice → bob [2 unread: carol 1, #team 1]> hello world!")
	wantLines("ACK 10")
	typ("\x1b[I")
	wantLines("READ 1001 10")
	// Enter: the message goes (no TYPING off: it ends it), and its 250
	// says bob read it at once.
	typ("\r")
	cmd := sc.Expect(t, "MSG")
	sc.Reply(t, cmd.Tag, "250 11 delivered 1001 "+fakeserver.WireTime+" read")
	prompt("alice → bob ✓✓ read [2 unread: carol 1, #team 1]> ")
	sc.Send(t, "TYPING 1001 bob on", "TYPING 1001 bob off")
	prompt("alice → bob ✓✓ read [2 unread: carol 1, #team 1]> ")
	typ("hello wor")
	wantLines("TYPING 1001 on")

	// Alt-A: the newest unread conversation, with its last lines.
	typ("\x1ba")
	prompt("alice → #team [1 unread: carol 1]> hello wor")
	typ("l")
	wantLines("TYPING 1001 off") // a group: no typing, and none to bob any more

	// Tab completes a Chinese nickname (a friend who is offline) and a path.
	typ("\x15/msg 小\t")
	prompt("alice → #team [1 unread: carol 1]> /msg 小明 ")
	typ("\x15/send bob do\t")
	prompt("alice → #team [1 unread: carol 1]> /send bob docs/")
	typ("re\t")
	prompt("alice → #team [1 unread: carol 1]> /send bob docs/report.pdf ")

	// A command, kept in the account's line history.
	typ("\x15/status\r")
	prompt("alice → #team [1 unread: carol 1]> ")

	// Ctrl-D on an empty line: a newline, bye, and the terminal is the shell's.
	typ("\x04")
	sc.Answer(t, "QUIT", "221 bye")
	tt.exit(t)

	// The whole screen, line by line: nothing garbled, nothing split.
	want := []string{
		`^qchat: connected to test — /help for commands and keys, Tab completes, Ctrl-D quits$`,
		`^logged in as alice \(1000\)$`,
		`^\[2026-11-22 \d\d:\d\d\] bob \(1001\): hi alice$`,
		`^\[2026-11-22 \d\d:\d\d\] carol \(1002\): lunch\?$`,
		`^\[2026-11-22 \d\d:\d\d\] #team bob \(1001\): standup$`,
		`^\[2026-11-22 \d\d:\d\d\] bob \(1001\): you there\?$`,
		`^alice → bob \[2 unread: carol 1, #team 1\]> hello world!$`,
		`^\[2026-11-22 \d\d:\d\d\] → bob \(1001\): hello world!  \[delivered, read\]$`,
		`^\* talking to #team$`,
		`^\[2026-11-22 \d\d:\d\d\] bob \(1001\): standup$`, // its last lines, from history
		`^alice → #team \[1 unread: carol 1\]> /status$`,
		`^logged in as alice \(1000\) on test \(127\.0\.0\.1:\d+\)$`,
		`^target: #team$`,
		`^unread: carol 1 \(/next\)$`,
		`^alice → #team \[1 unread: carol 1\]>$`,
		`^bye$`,
	}
	got := scr.lines()
	if len(got) != len(want) {
		t.Errorf("the screen has %d lines, want %d:\n%s", len(got), len(want), scr)
	}
	for i := range min(len(got), len(want)) {
		if !regexp.MustCompile(want[i]).MatchString(got[i]) {
			t.Errorf("screen line %d is %q, want %s", i+1, got[i], want[i])
		}
	}
	if len(scr.garbled) > 0 {
		t.Errorf("sequences no terminal knows: %q", scr.garbled)
	}
	if !scr.endsInLine {
		t.Errorf("the output does not end with a line end: the shell's prompt would be glued to it: %q", scr.raw.String()[max(0, scr.raw.Len()-40):])
	}
	// The line history is the account's, in its history folder.
	if b, err := os.ReadFile(filepath.Join(dir, "data", "qchat", "test", "1000", "line_history")); err != nil || string(b) != "hello world!\n/status\n" {
		t.Errorf("alice's line history: %q, %v; want hello world! and /status", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "data", "qchat", "line_history")); err == nil && strings.Contains(string(b), "/status") {
		t.Errorf("the logged-out line history holds alice's line: %q", b)
	}
}

// TestTerminalBurst: messages pour in while the user types, one key
// between two messages: every message line is on the screen once and
// whole, and so is what was typed, after the prompt.
func TestTerminalBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process in a pseudo-terminal")
	}
	tt := startTerminal(t)
	sc := tt.login(t, []string{"210 0 friends"}, []string{"210 0 groups"})
	const n = 40
	typed := "what a busy evening 你好"
	keys := []rune(typed)
	for i := range n {
		sc.Send(t, fmt.Sprintf("MSG %d 1002 carol %s message %d of the burst", i+1, fakeserver.WireTime, i+1))
		if i < len(keys) {
			tt.typ(string(keys[i]))
		}
	}
	tt.prompt("alice → carol> " + typed)
	// Ctrl-U, Ctrl-D: the line cleared, then leave.
	tt.typ("\x15\x04")
	// Every message acknowledged in order; carol's conversation read (alice
	// types in it) up to the last message, in READs that only go up;
	// alice's typing said, and at Ctrl-U its end.
	acked, read, typing := 0, int64(0), ""
	for {
		got := sc.Next(t)
		cmd, _ := protocol.ParseCommand([]byte(got))
		var id int64
		switch {
		case cmd.Verb == "QUIT":
			sc.Reply(t, cmd.Tag, "221 bye")
		case cmd.Verb == "ACK":
			if want := fmt.Sprintf("ACK %d", acked+1); got != want {
				t.Fatalf("the client wrote %q, want %q", got, want)
			}
			acked++
			continue
		case strings.HasPrefix(got, "READ 1002 "):
			fmt.Sscan(strings.TrimPrefix(got, "READ 1002 "), &id)
			if id <= read || id > int64(acked+1) {
				t.Fatalf("the client wrote %q after READ %d and %d ACKs", got, read, acked)
			}
			read = id
			continue
		case got == "TYPING 1002 on" && typing != "off", got == "TYPING 1002 off" && typing == "on":
			typing = strings.TrimPrefix(got, "TYPING 1002 ")
			continue
		default:
			t.Fatalf("the client wrote %q", got)
		}
		break
	}
	if acked != n || read != n || typing != "off" {
		t.Errorf("%d ACKs, read up to %d, typing %q at the end; want %d, %d, off", acked, read, typing, n, n)
	}
	tt.exit(t)
	lines := tt.scr.lines()
	for i := range n {
		re := regexp.MustCompile(fmt.Sprintf(`^\[2026-11-22 \d\d:\d\d\] carol \(1002\): message %d of the burst$`, i+1))
		count := 0
		for _, l := range lines {
			if re.MatchString(l) {
				count++
			}
		}
		if count != 1 {
			t.Errorf("message %d is on the screen %d times, whole", i+1, count)
		}
	}
	for _, l := range lines {
		if strings.Contains(l, "burst") && !strings.HasPrefix(l, "[2026-11-22 ") {
			t.Errorf("a garbled line: %q", l)
		}
	}
	if len(tt.scr.garbled) > 0 {
		t.Errorf("sequences no terminal knows: %q", tt.scr.garbled)
	}
	if t.Failed() {
		t.Logf("the screen:\n%s", tt.scr)
	}
}

// ttyChat is a chat run in a pseudo-terminal (TestTerminalChild), its
// server played by the test, and what its screen shows.
type ttyChat struct {
	s      *fakeserver.Server
	dir    string // its folder, home and data
	scr    *screen
	typ    func(keys string)
	prompt func(want string) // wait until the cursor's line is want, the cursor after it
	exited chan struct{}
	err    error // how it exited, once exited is closed
	copied chan struct{}
}

func startTerminal(t *testing.T) *ttyChat {
	t.Helper()
	tt := &ttyChat{s: fakeserver.New(t, fakeserver.Greeting), dir: t.TempDir(), exited: make(chan struct{}), copied: make(chan struct{})}
	if err := os.MkdirAll(filepath.Join(tt.dir, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tt.dir, "docs", "report.pdf"), []byte("%PDF"), 0o644); err != nil {
		t.Fatal(err)
	}
	const cols, rows = 100, 30
	cmd := exec.Command(os.Args[0], "-test.run=^TestTerminalChild$")
	cmd.Dir = tt.dir
	cmd.Env = append(os.Environ(), "QCHAT_TERMINAL_CHILD="+tt.s.Addr(), "TERM=xterm", "HOME="+tt.dir,
		"XDG_DATA_HOME="+filepath.Join(tt.dir, "data"), "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		tt.err = cmd.Wait()
		close(tt.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-tt.exited
		ptmx.Close()
	})
	tt.scr = newScreen(cols, rows)
	go func() {
		io.Copy(tt.scr, ptmx) // until the child is gone (EIO)
		close(tt.copied)
	}()
	tt.typ = func(keys string) {
		t.Helper()
		if _, err := ptmx.Write([]byte(keys)); err != nil {
			t.Fatal(err)
		}
	}
	tt.prompt = func(want string) {
		t.Helper()
		for deadline := time.Now().Add(fakeserver.Guard); ; time.Sleep(10 * time.Millisecond) { // polling the screen
			line, col := tt.scr.cursorLine()
			if line == strings.TrimRight(want, " ") && col == displayWidth(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("want the prompt line %q; the screen:\n%s\ncursor line %q column %d\nraw: %q", want, tt.scr, line, col, tt.scr.raw.String())
			}
		}
	}
	return tt
}

// login plays alice's login and what a terminal asks right after (its
// friends and groups, for completion), and waits for the prompt.
func (tt *ttyChat) login(t *testing.T, friends, groups []string) *fakeserver.Conn {
	t.Helper()
	sc := tt.s.Accept(t)
	sc.Login(t, 1000, "alice")
	sc.Answer(t, "LINKKEY", "200 link key set")     // the peer listener's key
	sc.Answer(t, "ENDPOINTS", "200 127.0.0.1:5555") // and what the server sees of it
	// the user's settings (receipts, typing)
	sc.Answer(t, "INFO", "211-id 1000", "211-nick alice", "211-receipts on", "211-typing on", "211 end")
	sc.Answer(t, "FRIENDS", friends...)
	sc.Answer(t, "GROUPS", groups...)
	tt.prompt("alice> ")
	return sc
}

// exit waits until chat has exited and everything it wrote is read.
func (tt *ttyChat) exit(t *testing.T) {
	t.Helper()
	select {
	case <-tt.exited:
		if tt.err != nil {
			t.Errorf("chat exited with %v", tt.err)
		}
	case <-time.After(fakeserver.Guard):
		t.Fatalf("chat did not exit; the screen:\n%s", tt.scr)
	}
	<-tt.copied
}

// TestTerminalChild is the chat that TestTerminal runs in a
// pseudo-terminal (a child process: liner owns the process's stdin).
func TestTerminalChild(t *testing.T) {
	addr := os.Getenv("QCHAT_TERMINAL_CHILD")
	if addr == "" {
		t.Skip("run by TestTerminal")
	}
	dir, _ := os.Getwd()
	code := Run(context.Background(), Config{Server: addr, User: "alice", Password: "pw", Timeout: fakeserver.Guard, NoTLS: true,
		PeerListen: "127.0.0.1:0", MaxChats: 8, Dir: dir}, os.Stdin, os.Stdout, os.Stderr)
	os.Exit(code)
}
