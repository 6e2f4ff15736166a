package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"qchat/modes/client"
	"qchat/protocol"
)

// Receipts and typing, as QQ and WhatsApp show them on a phone, fitted to
// a terminal whose scrollback cannot be changed once printed:
//
//   - The prompt carries the marks of my last message to the target, the
//     conversation on screen: "alice → bob ✓>" the server has it, "✓✓"
//     bob's client has shown it, "✓✓ read" bob has read it. Marks are "up
//     to" (PROTOCOL.md section 5.1): the last message's mark says it for
//     all before it. /switch says where the new target's last message is.
//     Nothing is printed for them on a terminal, so a busy conversation
//     does not flood the screen; piped (and with --json), each RECEIPT is
//     one line (one object).
//   - Who is typing to me shows in the prompt, "[bob is typing…]", until
//     bob stops (TYPING off), his message arrives, or typingShown passes
//     without a new "on".
//   - I have read a conversation when it is the target and the terminal
//     has focus (xterm's focus reports), or, where the terminal does not
//     report focus, I typed within activeFor; then chat says READ for its
//     newest message shown (before that message's ACK when it arrives
//     into the open conversation: the server then says it in the sender's
//     250 and nothing more crosses the wire). Also when I make it the
//     target, type in it, or the terminal gets focus back. Piped, only
//     /read says it.
//   - While I edit a line for the target (a user), chat says TYPING on
//     at the first key and again every typingRefresh while I go on, and
//     TYPING off when I clear the line, turn it into a command, move to
//     another conversation or press Ctrl-C. Sending the line needs no
//     "off": the message ends it on the other side.
//
// /set receipts off and /set typing off (kept by the server for every
// device) stop both directions; chat then sends neither.

// Timing of typing notifications (PROTOCOL.md section 5.1).
const (
	typingRefresh = 4 * time.Second  // an "on" again while typing goes on
	typingShown   = 6 * time.Second  // a peer's "on" shows this long without a new one
	activeFor     = 30 * time.Second // without focus reports, a key this recent means I am reading
)

// Focus of the terminal, as it reported it.
const (
	focusUnknown int8 = iota // no report yet (or a terminal without them)
	focusIn
	focusOut
)

// receiptState is chat's side of receipts and typing, under app.mu.
type receiptState struct {
	now   func() time.Time            // the clock; tests give their own
	after func(time.Duration, func()) // runs f after d (redraws); tests run it by hand

	receiptsOff, typingOff bool // the user's settings, as last heard
	settingsKnown          bool // heard from the server (INFO of oneself) or set by /set

	sent   map[string]*convMarks // user conversations: my last message to them and its marks
	typing map[int64]time.Time   // who is typing to me, until when

	shown    map[string]int64 // user conversations: the newest message shown to me
	readSent map[string]int64 // and the newest I said READ for
	readHeld bool             // a READ waits for the end of a burst (flushRead)

	focus   int8
	lastKey time.Time

	typingTo string    // the conversation I said TYPING on to ("" none)
	typingAt time.Time // when
}

// convMarks is what I know of my last message to one user.
type convMarks struct {
	last        int64 // its msgid (through the server)
	shown, read int64 // the highest msgid of each mark heard
}

func newReceiptState() receiptState {
	return receiptState{now: time.Now, after: func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		sent: make(map[string]*convMarks), typing: make(map[int64]time.Time),
		shown: make(map[string]int64), readSent: make(map[string]int64)}
}

// isUserConv reports whether conv is a private conversation (a user id).
func isUserConv(conv string) bool {
	_, ok := protocol.ParseID(conv)
	return ok
}

func (rs *receiptState) marksOf(conv string) *convMarks {
	m := rs.sent[conv]
	if m == nil {
		m = &convMarks{}
		rs.sent[conv] = m
	}
	return m
}

// markLocked is the mark of my last message to conv, for the prompt:
// "" (none sent this run), "✓", "✓✓" or "✓✓ read".
func (a *app) markLocked(conv string) string {
	m := a.rt.sent[conv]
	switch {
	case m == nil || m.last == 0:
		return ""
	case m.read >= m.last:
		return "✓✓ read"
	case m.shown >= m.last:
		return "✓✓"
	}
	return "✓"
}

// typingLocked is who is typing to me now, the target first, for the
// prompt: "[bob is typing…]", "[bob, carol are typing…]"; "" for nobody.
func (a *app) typingLocked() string {
	now := a.rt.now()
	var names []string
	if id, ok := protocol.ParseID(a.cur); ok && a.rt.typing[id].After(now) {
		names = append(names, a.convLabelLocked(a.cur))
	}
	var others []int64
	for id, until := range a.rt.typing {
		if until.After(now) && strconv.FormatInt(id, 10) != a.cur {
			others = append(others, id)
		}
	}
	slices.Sort(others) // the same order at every redraw
	for _, id := range others {
		names = append(names, a.convLabelLocked(strconv.FormatInt(id, 10)))
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return "[" + names[0] + " is typing…]"
	}
	if len(names) > 3 {
		names = append(names[:2], fmt.Sprintf("%d more", len(names)-2))
	}
	return "[" + strings.Join(names, ", ") + " are typing…]"
}

// sentMark notes the server's answer to a message of mine (showSent).
func (a *app) sentMark(s client.Sent) {
	if s.Group != "" {
		return
	}
	conv := s.Conversation()
	a.mu.Lock()
	m := a.rt.marksOf(conv)
	m.last = max(m.last, s.ID)
	switch s.Mark {
	case client.MarkRead:
		m.read = max(m.read, s.ID)
		m.shown = max(m.shown, s.ID)
	case client.MarkShown:
		m.shown = max(m.shown, s.ID)
	}
	if a.rt.typingTo == conv {
		a.rt.typingTo = "" // the message ends it on the other side
	}
	a.mu.Unlock()
	a.refreshPrompt()
}

// onReceipt takes a RECEIPT: on a terminal the prompt shows it; piped it
// is printed.
func (a *app) onReceipt(r client.Receipt) {
	a.remember(r.Peer.ID, r.Peer.Nick)
	a.mu.Lock()
	m := a.rt.marksOf(strconv.FormatInt(r.Peer.ID, 10))
	m.shown = max(m.shown, r.UpTo)
	if r.Mark == client.MarkRead {
		m.read = max(m.read, r.UpTo)
	}
	a.mu.Unlock()
	if a.term != nil {
		a.refreshPrompt()
		return
	}
	a.note(a.out.Receipt(r))
}

// onTyping takes a TYPING: on a terminal the prompt shows it (and is
// redrawn when it runs out); piped it is printed.
func (a *app) onTyping(t client.Typing) {
	a.remember(t.From.ID, t.From.Nick)
	a.mu.Lock()
	if t.On {
		a.rt.typing[t.From.ID] = a.rt.now().Add(typingShown)
	} else {
		delete(a.rt.typing, t.From.ID)
	}
	after := a.rt.after
	a.mu.Unlock()
	if a.term == nil {
		a.note(a.out.Typing(t))
		return
	}
	a.refreshPrompt()
	if t.On {
		after(typingShown, a.refreshPrompt)
	}
}

// shownMessage notes a message printed to me (before its ACK): a private
// message ends its sender's typing, and is read at once when I am reading
// its conversation. more: other events are on their way to the printer,
// so the READ waits for the last of a burst (flushRead).
func (a *app) shownMessage(m client.Message, more bool) {
	if m.Kind != "MSG" {
		return
	}
	conv := m.Conversation()
	a.mu.Lock()
	delete(a.rt.typing, m.From)
	a.rt.shown[conv] = max(a.rt.shown[conv], m.ID)
	read := a.readingLocked(conv)
	if read && more {
		a.rt.readHeld, read = true, false
	}
	a.mu.Unlock()
	if read {
		a.sendRead(conv)
	}
}

// flushRead sends the READ a burst held back (eventLoop, when no more
// events wait).
func (a *app) flushRead() {
	a.mu.Lock()
	held := a.rt.readHeld
	a.rt.readHeld = false
	conv := a.cur
	read := held && a.readingLocked(conv)
	a.mu.Unlock()
	if read {
		a.sendRead(conv)
	}
}

// readingLocked reports whether I am reading conv now: it is the target
// on a terminal that has focus, or where focus is not reported, I typed
// lately.
func (a *app) readingLocked(conv string) bool {
	if a.term == nil || conv != a.cur || !isUserConv(conv) {
		return false
	}
	switch a.rt.focus {
	case focusIn:
		return true
	case focusOut:
		return false
	}
	return !a.rt.lastKey.IsZero() && a.rt.now().Sub(a.rt.lastKey) < activeFor
}

// sendRead says READ for the newest message of conv shown to me, unless
// said already or receipts are off.
func (a *app) sendRead(conv string) {
	a.mu.Lock()
	upTo := a.rt.shown[conv]
	if a.rt.receiptsOff || upTo <= a.rt.readSent[conv] {
		a.mu.Unlock()
		return
	}
	a.rt.readSent[conv] = upTo
	a.mu.Unlock()
	a.cl.Read(conv, upTo)
}

// readTarget says READ for the target (a terminal only: the user made it
// the target, typed in it, or came back to the window).
func (a *app) readTarget() {
	if a.term == nil {
		return
	}
	a.mu.Lock()
	conv := a.cur
	a.mu.Unlock()
	if isUserConv(conv) {
		a.sendRead(conv)
	}
}

// onFocus takes the terminal's focus report (liner's goroutine).
func (a *app) onFocus(in bool) {
	a.mu.Lock()
	a.rt.focus = focusOut
	if in {
		a.rt.focus = focusIn
	}
	a.mu.Unlock()
	if in {
		a.readTarget()
	}
}

// onEdit takes each change of the line being typed (liner's goroutine):
// I am reading the target, and maybe typing to it.
func (a *app) onEdit(line string) {
	a.mu.Lock()
	a.rt.lastKey = a.rt.now()
	a.mu.Unlock()
	a.readTarget()
	a.typed(line)
}

// typed says TYPING on or off for the line being edited (onEdit), or with
// line "" when it is given up (Ctrl-C, a change of target).
func (a *app) typed(line string) {
	a.mu.Lock()
	target, was, now := a.cur, a.rt.typingTo, a.rt.now()
	trimmed := strings.TrimLeft(line, " ")
	message := trimmed != "" && (!strings.HasPrefix(trimmed, "/") || strings.HasPrefix(trimmed, "//"))
	on := ""
	if message && isUserConv(target) && !a.rt.typingOff {
		on = target
	}
	send := on != "" && (on != was || now.Sub(a.rt.typingAt) >= typingRefresh)
	if send {
		a.rt.typingAt = now
	}
	a.rt.typingTo = on
	a.mu.Unlock()
	if was != "" && was != on {
		a.cl.Typing(was, false)
	}
	if send {
		a.cl.Typing(on, true)
	}
}

// reconnected forgets what was said on the connection that was lost: a
// READ may have been lost with it, and the server forgot nothing else.
func (a *app) reconnected() {
	a.mu.Lock()
	clear(a.rt.readSent)
	a.rt.typingTo = ""
	a.mu.Unlock()
	select {
	case <-a.ready: // history is open: fill it, not on the event loop (it waits for replies)
		go a.syncAtLogin(a.bgCtx)
	default: // a reconnect inside the first login (/register, /login): login syncs when it is done
	}
}

// submitted is the line just entered (Enter): a message needs no "off".
func (a *app) submitted() {
	a.mu.Lock()
	a.rt.typingTo = ""
	a.mu.Unlock()
}

// setSettings notes the user's receipts and typing settings (from INFO of
// oneself, or /set).
func (a *app) setSettings(receipts, typing string) {
	a.mu.Lock()
	if receipts != "" {
		a.rt.receiptsOff = receipts == "off"
	}
	if typing != "" {
		a.rt.typingOff = typing == "off"
	}
	a.rt.settingsKnown = a.rt.settingsKnown || receipts != "" && typing != ""
	a.mu.Unlock()
	a.refreshPrompt()
}

// learnSettings asks the server for the user's settings (INFO of oneself),
// so that chat sends no READ or TYPING the user turned off: on a terminal
// after login, piped at the first /read or /typing.
func (a *app) learnSettings(ctx context.Context) error {
	info, err := a.cl.Info(ctx, strconv.FormatInt(a.cl.Me().ID, 10))
	if err != nil {
		return err
	}
	var receipts, typing string
	for _, kv := range info {
		switch kv[0] {
		case "receipts":
			receipts = kv[1]
		case "typing":
			typing = kv[1]
		}
	}
	a.setSettings(receipts, typing)
	return nil
}

// settings are the user's receipts and typing settings, asked for when
// not known yet.
func (a *app) settings(ctx context.Context) (receiptsOff, typingOff bool, err error) {
	a.mu.Lock()
	known := a.rt.settingsKnown
	a.mu.Unlock()
	if !known {
		if err := a.learnSettings(ctx); err != nil {
			return false, false, err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rt.receiptsOff, a.rt.typingOff, nil
}

// /set receipts|typing on|off
func (a *app) cmdSet(ctx context.Context, args []string) error {
	name, value := strings.ToLower(args[0]), strings.ToLower(args[1])
	if name != "receipts" && name != "typing" || value != "on" && value != "off" {
		return errors.New("usage: /set receipts on|off, /set typing on|off (/profile shows them)")
	}
	if err := a.simple(ctx, client.User{}, "", "SET", name, value); err != nil {
		return err
	}
	if name == "receipts" {
		a.setSettings(value, "")
	} else {
		a.setSettings("", value)
	}
	return nil
}

// /read [ID]: say that I have read the conversation with ID (the target
// by default) up to its newest message shown to me, or in its history.
func (a *app) cmdRead(ctx context.Context, args []string) error {
	a.mu.Lock()
	conv := a.cur
	a.mu.Unlock()
	if len(args) > 0 {
		c, err := a.conversationArg(ctx, args[0])
		if err != nil {
			return err
		}
		conv = c
	}
	if !isUserConv(conv) {
		return &codedError{client.CodeUsage, "/read: a user's conversation (groups have no read receipts)"}
	}
	off, _, err := a.settings(ctx)
	if err != nil {
		return err
	}
	if off {
		return errors.New("receipts are off (/set receipts on)")
	}
	a.mu.Lock()
	upTo := a.rt.shown[conv]
	a.mu.Unlock()
	if upTo == 0 && a.rec.Hist != nil {
		if recs, err := a.rec.Hist.Read(conv, 50); err == nil {
			for _, r := range recs {
				if !r.Out && r.ID > 0 {
					upTo = max(upTo, r.ID)
				}
			}
		}
	}
	if upTo == 0 {
		return fmt.Errorf("nothing from %s to mark read", a.convName(conv))
	}
	a.mu.Lock()
	a.rt.shown[conv] = max(a.rt.shown[conv], upTo)
	a.rt.readSent[conv] = max(a.rt.readSent[conv], upTo)
	a.mu.Unlock()
	if err := a.cl.Read(conv, upTo); err != nil {
		return err
	}
	id, _ := protocol.ParseID(conv)
	nick := a.nickOf(id)
	text := fmt.Sprintf("read up to %d from %s", upTo, client.Name(id, nick))
	a.emit(ctx, &okRecord{Result: client.NewResult("ok"), Text: text, ID: id, Nick: nick}, text)
	return nil
}

// /typing ID on|off: tell ID that I am typing, or stopped (scripts and
// bots: a person's chat says it by itself).
func (a *app) cmdTyping(ctx context.Context, args []string) error {
	u, err := a.peer(ctx, args[0])
	if err != nil {
		return err
	}
	state := strings.ToLower(args[1])
	if state != "on" && state != "off" {
		return errors.New("usage: /typing ID on|off")
	}
	_, off, err := a.settings(ctx)
	if err != nil {
		return err
	}
	if off {
		return errors.New("typing notifications are off (/set typing on)")
	}
	if err := a.cl.Typing(strconv.FormatInt(u.ID, 10), state == "on"); err != nil {
		return err
	}
	text := fmt.Sprintf("typing %s to %s", state, client.Name(u.ID, u.Nick))
	a.emit(ctx, &okRecord{Result: client.NewResult("ok"), Text: text, ID: u.ID, Nick: u.Nick}, text)
	return nil
}

// lastMarkText says where my last message to conv stands, for /switch:
// "your last message: ✓✓ read"; "" when none was sent this run.
func (a *app) lastMarkText(conv string) string {
	a.mu.Lock()
	mark := a.markLocked(conv)
	a.mu.Unlock()
	switch mark {
	case "":
		return ""
	case "✓":
		return " — your last message: ✓ sent"
	case "✓✓":
		return " — your last message: ✓✓ shown"
	}
	return " — your last message: " + mark
}
