package chat

import (
	"strconv"
	"strings"
	"sync"
)

// screen is a small terminal emulator for the terminal test: what a
// person would see in an xterm fed the bytes chat writes. It knows the
// sequences liner and chat use (cursor moves, erasing, save and restore,
// wide characters, scrolling) and keeps the lines that scrolled off.
// Anything else it does not know is kept as a visible "<ESC...>", so that
// a sequence no real terminal would take shows up as garbled text.
type screen struct {
	mu         sync.Mutex
	w, h       int
	rows       [][]rune // a wide character is followed by a 0
	r, c       int
	saveR      int
	saveC      int
	scrolled   []string // lines that scrolled off the top
	pending    []byte   // an incomplete sequence or UTF-8 character
	bells      int
	raw        strings.Builder // every byte, for messages
	garbled    []string        // sequences it did not know
	endsInLine bool            // the last byte written was a line end (modes after it do not count)
	modeOnly   bool            // the last sequence only set a mode or colour
}

func newScreen(w, h int) *screen {
	s := &screen{w: w, h: h}
	for range h {
		s.rows = append(s.rows, s.blank())
	}
	return s
}

func (s *screen) blank() []rune {
	row := make([]rune, s.w)
	for i := range row {
		row[i] = ' '
	}
	return row
}

// Write takes what the program wrote.
func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw.Write(p)
	s.pending = append(s.pending, p...)
	for len(s.pending) > 0 {
		n := s.step(s.pending)
		if n == 0 {
			break // incomplete: wait for more
		}
		s.pending = s.pending[n:]
	}
	return len(p), nil
}

// step interprets the start of b and returns how many bytes it took (0:
// b is an incomplete sequence).
func (s *screen) step(b []byte) int {
	ended := s.endsInLine
	s.endsInLine = false
	switch b[0] {
	case '\r':
		s.c = 0
		return 1
	case '\n':
		s.lineFeed()
		s.endsInLine = true
		return 1
	case '\a':
		s.bells++
		return 1
	case '\b':
		s.c = max(0, s.c-1)
		return 1
	case 0x1b:
		n := s.escape(b)
		if s.modeOnly {
			s.endsInLine = ended // a mode (focus reports off) moves nothing
		}
		return n
	}
	if b[0] < 0x20 || b[0] == 0x7f {
		s.garbled = append(s.garbled, strconv.Quote(string(b[:1])))
		return 1
	}
	r, n := decodeRune(b)
	if n == 0 {
		return 0
	}
	s.put(r)
	return n
}

func decodeRune(b []byte) (rune, int) {
	s := string(b[:min(len(b), 4)])
	for _, r := range s {
		if r == 0xFFFD && len(b) < 4 && b[0] >= 0x80 {
			return 0, 0 // maybe incomplete
		}
		return r, len(string(r))
	}
	return 0, 0
}

func (s *screen) put(r rune) {
	w := displayWidth(string(r))
	if w == 0 {
		return // a combining mark: kept out of the model
	}
	if s.c+w > s.w { // autowrap
		s.c = 0
		s.lineFeed()
	}
	s.rows[s.r][s.c] = r
	if w == 2 {
		s.rows[s.r][s.c+1] = 0
	}
	s.c += w
}

func (s *screen) lineFeed() {
	if s.r < s.h-1 {
		s.r++
		return
	}
	s.scrolled = append(s.scrolled, rowText(s.rows[0]))
	s.rows = append(s.rows[1:], s.blank())
}

// escape interprets ESC sequences: CSI (ESC [ ... final), ESC 7, ESC 8.
func (s *screen) escape(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	s.modeOnly = false
	switch b[1] {
	case '7':
		s.saveR, s.saveC = s.r, s.c
		return 2
	case '8':
		s.r, s.c = s.saveR, s.saveC
		return 2
	case '[':
	default:
		s.garbled = append(s.garbled, strconv.Quote(string(b[:2])))
		return 2
	}
	i := 2
	for i < len(b) && (b[i] >= '0' && b[i] <= '9' || b[i] == ';' || b[i] == '?') {
		i++
	}
	if i == len(b) {
		return 0
	}
	params := string(b[2:i])
	final := b[i]
	n := 1
	if v, err := strconv.Atoi(strings.TrimPrefix(params, "?")); err == nil {
		n = v
	}
	switch final {
	case 'K':
		row := s.rows[s.r]
		from, to := s.c, s.w
		switch params {
		case "1":
			from, to = 0, min(s.c+1, s.w)
		case "2":
			from = 0
		}
		for j := from; j < to; j++ {
			row[j] = ' '
		}
	case 'J':
		if params == "2" {
			for r := range s.rows {
				s.rows[r] = s.blank()
			}
		}
	case 'G':
		s.c = min(max(n, 1), s.w) - 1
	case 'C':
		s.c = min(s.c+n, s.w-1)
	case 'D':
		s.c = max(s.c-n, 0)
	case 'A':
		s.r = max(s.r-n, 0)
	case 'B':
		s.r = min(s.r+n, s.h-1)
	case 'H':
		s.r, s.c = 0, 0
		if r, c, ok := strings.Cut(params, ";"); ok {
			rv, _ := strconv.Atoi(r)
			cv, _ := strconv.Atoi(c)
			s.r, s.c = max(rv, 1)-1, max(cv, 1)-1
		}
	case 'm', 'h', 'l':
		// colours and modes: nothing to show
		s.modeOnly = true
		return i + 1
	default:
		s.garbled = append(s.garbled, strconv.Quote(string(b[:i+1])))
	}
	return i + 1
}

func rowText(row []rune) string {
	var b strings.Builder
	for _, r := range row {
		if r != 0 {
			b.WriteRune(r)
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// lines is everything shown, scrolled-off lines first, without the empty
// lines at the bottom.
func (s *screen) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.scrolled...)
	for _, row := range s.rows {
		out = append(out, rowText(row))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// cursorLine is the line the cursor is on, and the cursor's column.
func (s *screen) cursorLine() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return rowText(s.rows[s.r]), s.c
}

func (s *screen) String() string { return strings.Join(s.lines(), "\n") }
