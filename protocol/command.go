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
}

// Commands is the table of client verbs, in HELP order. It fixes syntax only;
// which verbs a server offers before login is the server's policy.
var Commands = []Syntax{
	{Name: "REG", Usage: "<nick> <password>", Min: 2, Max: 2, Trailing: true, Help: "create an account; the reply carries its numeric id"},
	{Name: "USER", Usage: "<id|nick>", Min: 1, Max: 1, Help: "start a login"},
	{Name: "PASS", Usage: "<password>", Min: 1, Max: 1, Trailing: true, Help: "finish a login"},
	{Name: "LIST", Min: 0, Max: 0, Help: "who is online"},
	{Name: "INFO", Usage: "<id|nick>", Min: 1, Max: 1, Help: "a user's public profile"},
	{Name: "MSG", Usage: "<id|nick|#group> <text>", Min: 2, Max: 2, Trailing: true, Help: "send a private or group message"},
	{Name: "ACK", Usage: "<msgid>[,<msgid>...]", Min: 1, Max: 1, Help: "confirm messages shown or saved (no reply unless wrong)"},
	{Name: "CHAT", Usage: "<id|nick>", Min: 1, Max: 1, Help: "ask for a direct chat link; answered with a ticket once accepted"},
	{Name: "FILE", Usage: "<id|nick> <count> <bytes> <name>", Min: 4, Max: 4, Trailing: true, Help: "offer files over a direct link; answered with a ticket once accepted"},
	{Name: "RELAY", Usage: "<ticket>", Min: 1, Max: 1, Help: "on a connection of its own: relay the direct link of an accepted ticket"},
	{Name: "AWAY", Usage: "[<status>]", Min: 0, Max: 1, Trailing: true, Help: "mark yourself away, with an optional status line"},
	{Name: "BACK", Min: 0, Max: 0, Help: "back from away"},
	{Name: "SET", Usage: "nick|sex|age|address|status <value>", Min: 2, Max: 2, Trailing: true, Help: "change your profile (value - clears)"},
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

// Command is one parsed client request:  [@tag] VERB [arg ...] [trailing].
type Command struct {
	Tag  string
	Verb string
	Args []string
}

// ErrEmptyLine is returned by ParseCommand for a blank line, which a server
// ignores (a person pressing Enter in nc).
var ErrEmptyLine = errors.New("empty line")

// ParseCommand parses one client line (without its line end). On failure it
// returns an *Error ready to be sent as the reply, and the Command still
// carries the tag so that the reply can echo it.
func ParseCommand(line []byte) (Command, error) {
	var c Command
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimLeft(line, " ")) == 0 {
		return c, ErrEmptyLine
	}
	if len(line) > MaxLine {
		return c, Errorf(CodeTooLong, "line too long (limit %d bytes)", MaxLine)
	}
	rest := string(line)
	rest = strings.TrimLeft(rest, " ")
	if strings.HasPrefix(rest, "@") {
		var tag string
		tag, rest = cut(rest[1:])
		if !ValidTag(tag) {
			return c, Errorf(CodeSyntax, "bad tag: 1 to %d of A-Z a-z 0-9 . _ -", MaxTag)
		}
		c.Tag = tag
		if rest == "" {
			return c, Errorf(CodeSyntax, "tag without a verb")
		}
	}
	if !utf8.ValidString(rest) {
		return c, Errorf(CodeSyntax, "line is not valid UTF-8")
	}
	if strings.IndexByte(rest, 0) >= 0 {
		return c, Errorf(CodeSyntax, "line holds a NUL byte")
	}
	if strings.ContainsAny(rest, "\r\n") {
		// Only a trailing argument could carry them, and AppendCommand
		// refuses those: a CR or LF inside a line is never a valid command.
		return c, Errorf(CodeSyntax, "line holds a CR or LF before its end")
	}
	verb, rest := cut(rest)
	if !isWord(verb) {
		return c, Errorf(CodeUnknown, "unknown command %q", Clip(verb, 20))
	}
	c.Verb = strings.ToUpper(verb)
	syn := LookupCommand(c.Verb)
	if syn == nil {
		return c, Errorf(CodeUnknown, "unknown command %s (try HELP)", c.Verb)
	}
	args, err := splitArgs(rest, syn)
	if err != nil {
		return c, err
	}
	c.Args = args
	return c, nil
}

// splitArgs splits the arguments after a verb or event kind by its syntax.
func splitArgs(rest string, syn *Syntax) ([]string, error) {
	var args []string
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
	syn := LookupCommand(verb)
	if syn == nil {
		return dst, Errorf(CodeUnknown, "unknown command %s", verb)
	}
	if tag != "" && !ValidTag(tag) {
		return dst, Errorf(CodeSyntax, "bad tag %q", tag)
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
