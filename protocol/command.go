package protocol

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"
)

// Limits every endpoint enforces. They are part of the protocol: a peer that
// exceeds one gets CodeTooLong (or CodeSyntax) and the connection stays up.
const (
	MaxLine     = 16 << 10 // bytes in one line, line end included
	MaxText     = 4096     // bytes of message text
	MaxTag      = 32       // characters of a request tag
	MaxNick     = 32       // characters of a nickname
	MaxPassword = 72       // bytes of a password (bcrypt's limit)
)

// Syntax describes the arguments of one verb or event kind.
type Syntax struct {
	Name     string // the verb or event kind, upper case
	Usage    string // argument synopsis for HELP and errors, e.g. "<user> <text>"
	Min, Max int    // number of arguments accepted
	Trailing bool   // the last argument is the rest of the line and may hold spaces
	Help     string // one line for HELP
	// ClientID: the request may carry the client's own id for it before
	// its arguments, id=<cid> (a first try) or resend=<cid> (sent again
	// after a lost connection), so that the server recognises a resend.
	ClientID bool
}

// Commands is the table of client verbs, in HELP order. It fixes syntax only;
// which verbs a server offers before login is the server's policy.
var Commands = []Syntax{
	{Name: "STARTTLS", Min: 0, Max: 0, Help: "before login: switch this connection to TLS (the handshake follows the 234 reply)"},
	{Name: "REG", Usage: "<nick> <password>", Min: 2, Max: 2, Trailing: true, Help: "create an account; the reply carries its numeric id"},
	{Name: "USER", Usage: "<id|nick>", Min: 1, Max: 1, Help: "start a login"},
	{Name: "PASS", Usage: "<password>", Min: 1, Max: 1, Trailing: true, Help: "finish a login"},
	{Name: "RESUME", Usage: "<token>", Min: 1, Max: 1, Help: "log in again with a token TOKEN gave (instead of USER and PASS)"},
	{Name: "TOKEN", Min: 0, Max: 0, Help: "a resumption token for logging in again without the password"},
	{Name: "LIST", Usage: "[<version>]", Min: 0, Max: 1, Help: "who is online; with the version of a PRESENCES event, who changed since"},
	{Name: "INFO", Usage: "<id|nick>", Min: 1, Max: 1, Help: "a user's public profile"},
	{Name: "MSG", Usage: "[id=<cid>|resend=<cid>] <id|nick|#group> <text>", Min: 2, Max: 2, Trailing: true, ClientID: true, Help: "send a private or group message; a client id makes a resend safe"},
	{Name: "ACK", Usage: "<msgid>[,<msgid>...] | ..<msgid>", Min: 1, Max: 1, Help: "confirm messages shown or saved; ..N: all sent up to N (no reply unless wrong)"},
	{Name: "READ", Usage: "<id|nick> <msgid>", Min: 2, Max: 2, Help: "read receipt: you have read what <id|nick> sent you up to <msgid> (no reply unless wrong)"},
	{Name: "TYPING", Usage: "<id|nick> on|off", Min: 2, Max: 2, Help: "you are typing a message to <id|nick>, or stopped (no reply unless wrong)"},
	{Name: "HISTORY", Usage: "<id|nick|#group|*> [before|after <msgid>] [<limit>]", Min: 1, Max: 4, Help: "a page of a conversation the server kept (serve --history-days), or of all of yours (*)"},
	{Name: "CHAT", Usage: "<id|nick>", Min: 1, Max: 1, Help: "ask for a direct chat link; answered with a ticket once accepted"},
	{Name: "FILE", Usage: "<id|nick> <count> <bytes> <name>", Min: 4, Max: 4, Trailing: true, Help: "offer files over a direct link; answered with a ticket once accepted"},
	{Name: "PUT", Usage: "<id|nick> <count> <bytes> <name>", Min: 4, Max: 4, Trailing: true, Help: "leave files on the server for a user (serve --offline-files); answered with a ticket for a link to the server"},
	{Name: "FILES", Min: 0, Max: 0, Help: "the offline files waiting for you on the server"},
	{Name: "GET", Usage: "<file-id>", Min: 1, Max: 1, Help: "take an offline file; answered with a ticket for a link to the server"},
	{Name: "DROP", Usage: "<file-id>", Min: 1, Max: 1, Help: "refuse an offline file: it is deleted and its sender told"},
	{Name: "LINKKEY", Usage: "<fingerprint>", Min: 1, Max: 1, Help: "the key (SHA256:...) your direct links will prove; passed to your peers with their tickets"},
	{Name: "ENDPOINTS", Usage: "[<endpoint>...]", Min: 0, Max: 4, Help: "your global IPv6 endpoints for direct links, passed to your peers with their tickets; the reply says the endpoint the server sees of you"},
	{Name: "RELAY", Usage: "<ticket> <secret>", Min: 2, Max: 2, Help: "on a connection of its own: relay the direct link of an accepted ticket (the secret came with your ticket)"},
	{Name: "AWAY", Usage: "[<status>]", Min: 0, Max: 1, Trailing: true, Help: "mark yourself away, with an optional status line"},
	{Name: "BACK", Min: 0, Max: 0, Help: "back from away"},
	{Name: "SET", Usage: "nick|sex|age|address|status|receipts|typing <value>", Min: 2, Max: 2, Trailing: true, Help: "change your profile (value - clears), or turn receipts or typing notifications on or off"},
	{Name: "PASSWD", Usage: "<old> <new>", Min: 2, Max: 2, Help: "change your password (%20 is a space, %25 a percent sign)"},
	{Name: "NUDGE", Usage: "<id|nick>", Min: 1, Max: 1, Help: "shake an online user's window"},
	{Name: "FIND", Usage: "<text>", Min: 1, Max: 1, Trailing: true, Help: "search users by nickname or id"},
	{Name: "ADD", Usage: "<id|nick>", Min: 1, Max: 1, Help: "ask a user to be your friend"},
	{Name: "ACCEPT", Usage: "friend <id|nick> | invite <#group> | chat <ticket> | file <ticket>", Min: 2, Max: 2, Help: "accept a friend request, a group invite, a chat or a file offer"},
	{Name: "REJECT", Usage: "friend <id|nick> | invite <#group> | chat <ticket> | file <ticket>", Min: 2, Max: 2, Help: "refuse a friend request, a group invite, a chat or a file offer"},
	{Name: "PENDING", Min: 0, Max: 0, Help: "requests waiting for your answer"},
	{Name: "FRIENDS", Min: 0, Max: 0, Help: "your friends and their presence"},
	{Name: "REMOVE", Usage: "<id|nick>", Min: 1, Max: 1, Help: "end a friendship"},
	{Name: "BLOCK", Usage: "<id|nick>", Min: 1, Max: 1, Help: "drop all that a user sends you, without telling them"},
	{Name: "UNBLOCK", Usage: "<id|nick>", Min: 1, Max: 1, Help: "stop blocking a user"},
	{Name: "CREATE", Usage: "<#group> [open|invite]", Min: 1, Max: 2, Help: "create a group you own (open by default)"},
	{Name: "JOIN", Usage: "<#group>", Min: 1, Max: 1, Help: "join an open group"},
	{Name: "INVITE", Usage: "<#group> <id|nick>", Min: 2, Max: 2, Help: "invite a user into a group"},
	{Name: "LEAVE", Usage: "<#group>", Min: 1, Max: 1, Help: "leave a group"},
	{Name: "KICK", Usage: "<#group> <id|nick>", Min: 2, Max: 2, Help: "remove a member (owner only)"},
	{Name: "MEMBERS", Usage: "<#group>", Min: 1, Max: 1, Help: "a group's members and their presence"},
	{Name: "GROUPS", Min: 0, Max: 0, Help: "the groups you are in"},
	{Name: "PING", Usage: "[token]", Min: 0, Max: 1, Help: "check the connection; the reply echoes the token"},
	{Name: "PONG", Usage: "<token>", Min: 1, Max: 1, Help: "answer the server's PING (no reply)"},
	{Name: "HELP", Min: 0, Max: 0, Help: "this list"},
	{Name: "QUIT", Usage: "[reason]", Min: 0, Max: 1, Trailing: true, Help: "log out and close"},
}

var commandIndex = index(Commands)

func index(table []Syntax) map[string]*Syntax {
	m := make(map[string]*Syntax, len(table))
	for i := range table {
		m[table[i].Name] = &table[i]
	}
	return m
}

// LookupCommand returns the syntax of a client verb (upper case), or nil.
func LookupCommand(verb string) *Syntax { return commandIndex[verb] }

// Command is one parsed client request:
//
//	[@tag] VERB [id=<cid>|resend=<cid>] [arg ...] [trailing]
type Command struct {
	Tag  string
	Verb string
	Args []string
	// ClientID is the client's own id for the request ("" for none),
	// for verbs whose Syntax allows one; Resend says it came as
	// resend=<cid>: the client may have sent it before.
	ClientID string
	Resend   bool
}

// ErrEmptyLine is returned by ParseCommand for a blank line, which a server
// ignores (a person pressing Enter in nc).
var ErrEmptyLine = errors.New("empty line")

// ParseCommand parses one client line (without its line end). On failure it
// returns an *Error ready to be sent as the reply, and the Command still
// carries the tag so that the reply can echo it.
func ParseCommand(line []byte) (Command, error) {
	var c Command
	err := ParseCommandTo(&c, line, nil)
	return c, err
}

// ParseCommandTo is ParseCommand into c, for a server's hot path: it
// reuses the room of c.Args, and takes the line's text as a string from
// text (string(line) when nil), of which every string it sets is a part.
// With a text that hands out parts of a buffer it never rewrites, a
// command is parsed without allocating.
func ParseCommandTo(c *Command, line []byte, text func([]byte) string) error {
	*c = Command{Args: c.Args[:0]}
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimLeft(line, " ")) == 0 {
		return ErrEmptyLine
	}
	if len(line) > MaxLine {
		return Errorf(CodeTooLong, "line too long (limit %d bytes)", MaxLine)
	}
	var rest string
	if text != nil {
		rest = text(line)
	} else {
		rest = string(line)
	}
	rest = strings.TrimLeft(rest, " ")
	if strings.HasPrefix(rest, "@") {
		var tag string
		tag, rest = cut(rest[1:])
		if !ValidTag(tag) {
			return Errorf(CodeSyntax, "bad tag: 1 to %d of A-Z a-z 0-9 . _ -", MaxTag)
		}
		c.Tag = tag
		if rest == "" {
			return Errorf(CodeSyntax, "tag without a verb")
		}
	}
	if err := checkLine(rest); err != nil {
		return err
	}
	verb, rest := cut(rest)
	if !isWord(verb) {
		return Errorf(CodeUnknown, "unknown command %q", Clip(verb, 20))
	}
	c.Verb = upperVerb(verb)
	syn := LookupCommand(c.Verb)
	if syn == nil {
		return Errorf(CodeUnknown, "unknown command %s (try HELP)", c.Verb)
	}
	if syn.ClientID {
		var err error
		if c.ClientID, c.Resend, rest, err = cutClientID(rest, syn); err != nil {
			return err
		}
	}
	args, err := splitArgs(c.Args, rest, syn)
	if err != nil {
		c.ClientID, c.Resend = "", false
		return err
	}
	c.Args = args
	return nil
}

// checkLine refuses a line that is not UTF-8 or holds NUL, or a CR or LF
// before its end (only a trailing argument could carry them, and
// AppendCommand refuses those: such a line is never a valid command). One
// pass over ASCII text.
func checkLine(s string) error {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf:
			if !utf8.ValidString(s[i:]) {
				return Errorf(CodeSyntax, "line is not valid UTF-8")
			}
			return checkLineBytes(s[i:])
		case c == 0:
			return Errorf(CodeSyntax, "line holds a NUL byte")
		case c == '\r' || c == '\n':
			return Errorf(CodeSyntax, "line holds a CR or LF before its end")
		}
	}
	return nil
}

// checkLineBytes is checkLine's NUL, CR and LF check for valid UTF-8
// (their bytes never occur inside a multi-byte character).
func checkLineBytes(s string) error {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0:
			return Errorf(CodeSyntax, "line holds a NUL byte")
		case '\r', '\n':
			return Errorf(CodeSyntax, "line holds a CR or LF before its end")
		}
	}
	return nil
}

// upperVerb is strings.ToUpper for a verb (ASCII letters), without
// allocating for one in upper case already, as clients send them.
func upperVerb(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] >= 'a' {
			return strings.ToUpper(v)
		}
	}
	return v
}

// cutClientID takes a leading id=<cid> or resend=<cid> off rest. No other
// first argument of such a verb holds '=' (nicknames, ids and groups
// cannot), so the option is never mistaken for one.
func cutClientID(rest string, syn *Syntax) (cid string, resend bool, after string, err error) {
	word, after := cut(rest)
	key, val, ok := strings.Cut(word, "=")
	if !ok {
		return "", false, rest, nil
	}
	switch {
	case key != "id" && key != "resend":
		return "", false, "", Errorf(CodeSyntax, "%s: unknown option %q (id=<cid> or resend=<cid>)", syn.Name, Clip(key, 20))
	case !ValidTag(val):
		return "", false, "", Errorf(CodeSyntax, "%s: bad client id: 1 to %d of A-Z a-z 0-9 . _ -", syn.Name, MaxTag)
	}
	return val, key == "resend", after, nil
}

// splitArgs splits the arguments after a verb or event kind by its
// syntax, appending them to args.
func splitArgs(args []string, rest string, syn *Syntax) ([]string, error) {
	for rest != "" {
		if syn.Trailing && len(args) == syn.Max-1 {
			args = append(args, rest)
			break
		}
		var a string
		a, rest = cut(rest)
		if hasControl(a) {
			return nil, Errorf(CodeSyntax, "%s: control character in argument %d", syn.Name, len(args)+1)
		}
		args = append(args, a)
	}
	if len(args) < syn.Min || len(args) > syn.Max {
		return nil, Errorf(CodeSyntax, "usage: %s", strings.TrimSpace(syn.Name+" "+syn.Usage))
	}
	return args, nil
}

// cut splits s at the first run of spaces: the word before, the rest after.
func cut(s string) (word, rest string) {
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i+1:], " ")
}

func isWord(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// ValidTag reports whether s may be used as a request tag.
func ValidTag(s string) bool {
	if s == "" || len(s) > MaxTag {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// hasControl reports whether s holds an ASCII control character or DEL.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// CheckText checks a free-text argument (message text, status line) that is
// about to go on the wire: valid UTF-8, no NUL, CR or LF, at most max bytes.
// Other control characters pass: receivers escape them for display.
func CheckText(s string, max int) error {
	switch {
	case s == "":
		return Errorf(CodeSyntax, "empty text")
	case len(s) > max:
		return Errorf(CodeTooLong, "text too long (%d bytes, limit %d)", len(s), max)
	case !utf8.ValidString(s):
		return Errorf(CodeSyntax, "text is not valid UTF-8")
	case strings.ContainsAny(s, "\x00\r\n"):
		return Errorf(CodeSyntax, "text holds NUL, CR or LF")
	}
	return nil
}

// AppendCommand appends one request line, LF included, to dst. Every
// argument is checked so that nothing can smuggle a second line onto the
// wire: all but a trailing last argument must be non-empty words.
func AppendCommand(dst []byte, tag, verb string, args ...string) ([]byte, error) {
	return AppendCommandID(dst, tag, verb, "", false, args...)
}

// AppendCommandID is AppendCommand with the client's own id for the
// request (cid, "" for none): id=<cid>, or resend=<cid> when resend.
func AppendCommandID(dst []byte, tag, verb, cid string, resend bool, args ...string) ([]byte, error) {
	syn := LookupCommand(verb)
	if syn == nil {
		return dst, Errorf(CodeUnknown, "unknown command %s", verb)
	}
	if tag != "" && !ValidTag(tag) {
		return dst, Errorf(CodeSyntax, "bad tag %q", tag)
	}
	if cid != "" && (!syn.ClientID || !ValidTag(cid)) {
		return dst, Errorf(CodeSyntax, "%s: bad client id %q", verb, Clip(cid, 40))
	}
	if err := checkArgs(syn, args); err != nil {
		return dst, err
	}
	if tag != "" {
		dst = append(dst, '@')
		dst = append(dst, tag...)
		dst = append(dst, ' ')
	}
	dst = append(dst, verb...)
	if cid != "" {
		if resend {
			dst = append(dst, " resend="...)
		} else {
			dst = append(dst, " id="...)
		}
		dst = append(dst, cid...)
	}
	for _, a := range args {
		dst = append(dst, ' ')
		dst = append(dst, a...)
	}
	return append(dst, '\n'), nil
}

func checkArgs(syn *Syntax, args []string) error {
	if len(args) < syn.Min || len(args) > syn.Max {
		return Errorf(CodeSyntax, "usage: %s", strings.TrimSpace(syn.Name+" "+syn.Usage))
	}
	for i, a := range args {
		if syn.Trailing && i == syn.Max-1 {
			if strings.ContainsAny(a, "\x00\r\n") || !utf8.ValidString(a) || strings.HasPrefix(a, " ") || a == "" {
				return Errorf(CodeSyntax, "%s: bad text argument", syn.Name)
			}
			continue
		}
		if a == "" || strings.IndexByte(a, ' ') >= 0 || hasControl(a) || !utf8.ValidString(a) {
			return Errorf(CodeSyntax, "%s: bad argument %q", syn.Name, Clip(a, 20))
		}
		if i == 0 && syn.ClientID && strings.IndexByte(a, '=') >= 0 {
			// It would be read back as an id=<cid> option.
			return Errorf(CodeSyntax, "%s: bad argument %q", syn.Name, Clip(a, 20))
		}
	}
	return nil
}

// Clip shortens s to at most n bytes on a rune boundary, for error texts.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
