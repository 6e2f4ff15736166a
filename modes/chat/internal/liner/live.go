//go:build linux || darwin || openbsd || freebsd || netbsd

package liner

import (
	"fmt"
	"strings"
	"sync"
	"unicode"
)

// This file is what qchat adds to peterh/liner v1.2.3; the other files are
// upstream's, with small hooks marked "qchat:". Upstream has no way to
// print while Prompt runs or to change its prompt (peterh/liner#46; its
// maintainer suggested a channel in readNext's select, which is this):
//
//   - PrintAbove prints lines above the prompt from any goroutine: the
//     goroutine running Prompt prints them between two keys and redraws
//     the prompt, the typed text and the cursor, also in the middle of a
//     Ctrl-R search or a Tab list (which go on); ReplaceAbove rewrites the
//     line just above the prompt (a progress bar);
//   - SetPromptFunc and RefreshPrompt: the prompt is read from a function,
//     again whenever RefreshPrompt is called, and redrawn at once;
//   - OnAltKey binds Alt+letter to a function (jump to a conversation);
//   - OnFocus turns on the terminal's focus reports (xterm's mode 1004)
//     and hands them to a function, OnEdit each change of the line being
//     typed (receipts and typing notifications);
//   - Tab lists are laid out by display width (Chinese takes two columns).

// live is the state behind those. mu guards the fields up to wake; the
// others belong to the goroutine running Prompt.
type live struct {
	mu      sync.Mutex
	reading bool        // a Prompt or PasswordPrompt reads keys in editing mode
	above   []aboveLine // lines waiting to be printed above the prompt
	repaint bool        // the prompt function must be read again
	wake    chan struct{}

	promptFn func() string
	altKeys  map[rune]func()
	focusFn  func(in bool)
	editFn   func(line string)
	focusOn  bool   // focus reports were asked for: Close stops them
	lastEdit string // the line as OnEdit's function last saw it

	// What is on the prompt line now, to draw it again.
	mainPrompt  []rune // the prompt of the running Prompt call
	shownPrompt []rune
	shownBuf    []rune
	shownPos    int
}

// SetPromptFunc makes Prompt show f() instead of its argument; f is read
// again (and the prompt redrawn) whenever RefreshPrompt is called while a
// Prompt runs. f runs on the goroutine that called Prompt; control
// characters in what it returns are shown as '?'.
func (s *State) SetPromptFunc(f func() string) { s.live.promptFn = f }

// OnAltKey runs fn on the goroutine of Prompt when the user presses Alt+r
// (ESC r), then redraws the prompt (fn may have changed it). r is a
// lower-case letter that liner does not use itself (b, d, f and y are
// word moves and yank).
func (s *State) OnAltKey(r rune, fn func()) {
	if s.live.altKeys == nil {
		s.live.altKeys = make(map[rune]func())
	}
	s.live.altKeys[r] = fn
}

// OnFocus asks the terminal to report when its window gains and loses
// focus (xterm's mode 1004, CSI ?1004h, which most terminal emulators and
// tmux with focus-events on know) and runs fn(true) or fn(false) on the
// goroutine of Prompt for each report (ESC [ I, ESC [ O). A terminal
// without it ignores the request and reports nothing. Close turns the
// reports off again.
func (s *State) OnFocus(fn func(in bool)) {
	s.live.focusFn = fn
	if !s.live.focusOn {
		s.live.focusOn = true
		fmt.Print("\x1b[?1004h")
	}
}

// OnEdit runs fn on the goroutine of Prompt with the line being typed each
// time a key changes it (not when Enter submits it, nor when Ctrl-C
// aborts it: Prompt's return says so). fn must not block.
func (s *State) OnEdit(fn func(line string)) { s.live.editFn = fn }

// focused hands a focus report to OnFocus's function.
func (s *State) focused(in bool) {
	if fn := s.live.focusFn; fn != nil {
		fn(in)
	}
}

// edited hands the line to OnEdit's function when it changed.
func (s *State) edited(line []rune) {
	if fn := s.live.editFn; fn != nil && string(line) != s.live.lastEdit {
		s.live.lastEdit = string(line)
		fn(s.live.lastEdit)
	}
}

// stopFocus turns the focus reports off (Close).
func (s *State) stopFocus() {
	if s.live.focusOn {
		s.live.focusOn = false
		fmt.Print("\x1b[?1004l")
	}
}

// focusEvent is what readNext returns for a focus report, which it has
// handed to OnFocus's function already: no key.
type focusEvent struct{}

// RefreshPrompt asks a running Prompt to read its prompt function again
// and redraw. Safe from any goroutine; without a running Prompt it does
// nothing (the next Prompt reads the function anyway).
func (s *State) RefreshPrompt() {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if s.live.reading {
		s.live.repaint = true
		s.wakeLocked()
	}
}

// aboveLine is a line to print above the prompt, or to write over the
// line just above it (replace).
type aboveLine struct {
	text    string
	replace bool
}

// PrintAbove prints lines above the prompt without disturbing what the
// user is typing. Safe from any goroutine. While no Prompt runs (or in
// fallback mode) the lines are written at once. Lines must not hold
// control characters.
func (s *State) PrintAbove(lines ...string) {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	for _, l := range lines {
		s.aboveLocked(aboveLine{text: l})
	}
}

// ReplaceAbove writes line over the line just above the prompt (which the
// caller printed last with PrintAbove), as PrintAbove does otherwise.
func (s *State) ReplaceAbove(line string) {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	s.aboveLocked(aboveLine{text: line, replace: true})
}

func (s *State) aboveLocked(l aboveLine) {
	if s.live.reading {
		s.live.above = append(s.live.above, l)
		s.wakeLocked()
		return
	}
	writeAbove(l)
}

// writeAbove writes l with the cursor at the start of the prompt's line.
func writeAbove(l aboveLine) {
	if l.replace {
		fmt.Print("\x1b[1A")
	}
	fmt.Print("\r\x1b[K" + l.text + "\n")
}

func (s *State) wakeLocked() {
	select {
	case s.live.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// startReading marks a prompt reading keys: from now on PrintAbove and
// RefreshPrompt go through it. It returns the prompt to show: f() with a
// prompt function, else prompt.
func (s *State) startReading(prompt string, useFn bool) []rune {
	s.live.mu.Lock()
	if s.live.wake == nil {
		s.live.wake = make(chan struct{}, 1)
	}
	s.live.reading = true
	s.live.repaint = false
	s.live.mu.Unlock()
	if useFn && s.live.promptFn != nil {
		prompt = printable(s.live.promptFn())
	}
	p := []rune(prompt)
	s.live.mainPrompt = p
	s.live.lastEdit = ""
	s.setShown(p, nil, 0)
	return p
}

// stopReading ends it; lines that came since the last key are printed
// after the line just entered.
func (s *State) stopReading() {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	s.live.reading = false
	for _, l := range s.live.above {
		writeAbove(l)
	}
	s.live.above = nil
}

// setShown notes what the prompt line shows.
func (s *State) setShown(prompt, buf []rune, pos int) {
	s.live.shownPrompt = prompt
	s.live.shownBuf = append(s.live.shownBuf[:0], buf...)
	s.live.shownPos = pos
}

// wakeChan is what readNext waits on beside the keys (nil, which blocks
// forever, before the first prompt).
func (s *State) wakeChan() <-chan struct{} { return s.live.wake }

// woken prints what waits above the prompt and redraws the prompt line
// (the goroutine of Prompt, from readNext).
func (s *State) woken() {
	s.live.mu.Lock()
	lines := s.live.above
	s.live.above = nil
	repaint := s.live.repaint
	s.live.repaint = false
	s.live.mu.Unlock()
	if repaint && s.live.promptFn != nil {
		s.setMainPrompt([]rune(printable(s.live.promptFn())))
	}
	for _, l := range lines {
		writeAbove(l)
	}
	if (len(lines) > 0 || repaint) && s.columns > 0 {
		s.refresh(s.live.shownPrompt, s.live.shownBuf, s.live.shownPos)
	}
}

// setMainPrompt changes the prompt of the running Prompt call; the line
// shows it at once unless another prompt (a Ctrl-R search) is on it.
func (s *State) setMainPrompt(p []rune) {
	if string(s.live.shownPrompt) == string(s.live.mainPrompt) {
		s.live.shownPrompt = p
	}
	s.live.mainPrompt = p
}

// altKey is an Alt+letter that OnAltKey bound, as readNext returns it.
type altKey rune

// runAltKey runs the function bound to k and reads the prompt again.
func (s *State) runAltKey(k altKey) {
	fn := s.live.altKeys[rune(k)]
	if fn == nil {
		return
	}
	fn()
	if s.live.promptFn != nil {
		s.setMainPrompt([]rune(printable(s.live.promptFn())))
	}
}

// printable shows control characters as '?' (liner refuses a prompt with
// any).
func printable(p string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.C, r) {
			return '?'
		}
		return r
	}, p)
}

// padWidth pads s with spaces to w columns of display width.
func padWidth(s string, w int) string {
	if n := countGlyphs([]rune(s)); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}

// DisplayWidth is the number of terminal columns s takes (two for most
// Chinese characters, none for combining marks), as liner counts them.
func DisplayWidth(s string) int { return countGlyphs([]rune(s)) }
