package chat

import (
	"context"
	"fmt"
	"strings"

	"qchat/modes/chat/internal/liner"
	"qchat/modes/client"
	"qchat/protocol"
)

// /help is rendered from the command table (commands.go): one line a
// command, in two columns that fit the terminal's width, then the keys;
// /help CMD gives one command in full with an example.

// keys are the keys of the prompt, for /help.
var keys = [][2]string{
	{"Tab", "complete commands, nicknames (any script), groups, and paths after /send"},
	{"Up, Down", "earlier lines (each account has its own)"},
	{"Ctrl-R", "search earlier lines"},
	{"Alt-A", "jump to the conversation with the newest unread message"},
	{"Ctrl-A, Ctrl-E", "start, end of the line"},
	{"Ctrl-W, Ctrl-U, Ctrl-K", "delete the word before, the line before, the line after the cursor"},
	{"Ctrl-L", "clear the screen"},
	{"Ctrl-C", "clear the line; cancel a running command"},
	{"Ctrl-D", "leave (on an empty line)"},
}

type (
	helpCommand struct {
		Name    string `json:"name"`
		Alias   string `json:"alias,omitempty"`
		Args    string `json:"args"`
		Help    string `json:"help"`
		More    string `json:"more,omitempty"`
		Example string `json:"example,omitempty"`
	}
	helpKey struct {
		Key  string `json:"key"`
		Does string `json:"does"`
	}
	helpRecord struct {
		client.Result               // "help"
		Commands      []helpCommand `json:"commands"`
		Keys          []helpKey     `json:"keys,omitempty"`
	}
)

// /help [COMMAND]
func (a *app) cmdHelp(ctx context.Context, args []string) error {
	width := a.width()
	rec := &helpRecord{Result: client.NewResult("help")}
	if len(args) == 1 {
		name := strings.ToLower(args[0])
		if !strings.HasPrefix(name, "/") {
			name = "/" + name
		}
		c := lookupCommand(name)
		if c == nil {
			return &codedError{client.CodeUnknown, fmt.Sprintf("no command %s (try /help)", protocol.Escape(protocol.Clip(name, 20)))}
		}
		rec.Commands = []helpCommand{{c.name, c.alias, c.args, c.help, c.more, c.example}}
		a.emit(ctx, rec, commandHelp(c, width))
		return nil
	}
	var rows [][2]string
	for _, c := range commands {
		rec.Commands = append(rec.Commands, helpCommand{Name: c.name, Alias: c.alias, Args: c.args, Help: c.help})
		rows = append(rows, [2]string{synopsis(c), c.help})
	}
	for _, k := range keys {
		rec.Keys = append(rec.Keys, helpKey{k[0], k[1]})
	}
	var b strings.Builder
	b.WriteString("commands (/help COMMAND for one in full):\n")
	b.WriteString(columns(rows, width))
	for _, l := range wrap("A line without a slash goes to the target, shown in the prompt (//text sends a line that starts with /).", width) {
		b.WriteString(l + "\n")
	}
	b.WriteString("keys:\n")
	b.WriteString(columns(keys, width))
	a.emit(ctx, rec, strings.TrimSuffix(b.String(), "\n"))
	return nil
}

// synopsis is how a command is typed: "/send ID PATH...", with its alias.
func synopsis(c *command) string {
	s := strings.TrimSpace(c.name + " " + c.args)
	if c.alias != "" {
		s += ", " + c.alias
	}
	return s
}

// commandHelp is one command in full.
func commandHelp(c *command, width int) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(c.name+" "+c.args) + "\n")
	if c.alias != "" {
		b.WriteString("  also " + strings.TrimSpace(c.alias+" "+c.args) + "\n")
	}
	for _, l := range wrap(c.help+". "+c.more, width-2) {
		b.WriteString("  " + l + "\n")
	}
	if c.example != "" {
		b.WriteString("  example: " + c.example)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// columns lays rows out in two columns within width: the first as wide
// as its widest cell, the second wrapped.
func columns(rows [][2]string, width int) string {
	left := 0
	for _, r := range rows {
		left = max(left, displayWidth(r[0]))
	}
	// At most three tenths of the width: a wider cell gets a line of its
	// own, so that one long synopsis does not push every line right.
	left = min(left, max(16, width*3/10))
	var b strings.Builder
	for _, r := range rows {
		label := r[0]
		if displayWidth(label) > left { // too wide: the text starts below
			b.WriteString("  " + label + "\n")
			label = ""
		}
		for _, l := range wrap(r[1], width-left-4) {
			b.WriteString("  " + padRight(label, left) + "  " + l + "\n")
			label = ""
		}
	}
	return b.String()
}

// wrap breaks text into lines of at most width columns, at spaces.
func wrap(text string, width int) []string {
	width = max(width, 20)
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case displayWidth(line)+1+displayWidth(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	return append(lines, line)
}

// padRight pads s with spaces to w columns of display width.
func padRight(s string, w int) string {
	if n := displayWidth(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}

// displayWidth is the number of terminal columns s takes.
func displayWidth(s string) int { return liner.DisplayWidth(s) }
