package chat

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"qchat/protocol"
)

// Tab completion at the prompt: command names, then by the command's
// argument (the table's complete field) users (nicknames of any script
// and ids, also friends and recent peers who are offline), groups,
// conversations, and file paths after /send (with ~ and folders, quoted
// when they hold spaces). In a line without a slash, nicknames.
//
// liner gives the line and the cursor as a rune index; everything here
// works on runes, never byte offsets, so Chinese and emoji are whole.

// maxCompletions bounds a list of candidates (a folder of thousands).
const maxCompletions = 200

// complete is liner's word completer (the REPL goroutine).
func (a *app) complete(line string, pos int) (head string, completions []string, tail string) {
	r := []rune(line)
	pos = max(0, min(pos, len(r)))
	head, tail = string(r[:pos]), string(r[pos:])
	fields := strings.Fields(head)
	endsInSpace := strings.HasSuffix(head, " ")
	argIndex := len(fields) - 1 // the word under the cursor, 0 is the command
	if endsInSpace {
		argIndex++
	}
	if !strings.HasPrefix(strings.TrimLeft(head, " "), "/") || strings.HasPrefix(strings.TrimLeft(head, " "), "//") {
		start, word := lastWord(head)
		return head[:start], a.completeUsers(word, false), tail
	}
	if argIndex == 0 {
		start, word := lastWord(head)
		return head[:start], completeCommands(word), tail
	}
	c := lookupCommand(strings.ToLower(fields[0]))
	if c == nil {
		start, _ := lastWord(head)
		return head[:start], nil, tail
	}
	kind := c.argAt(argIndex - 1)
	if kind == argPaths {
		start, token, quote := lastPath(head)
		return head[:start], completePaths(token, quote), tail
	}
	start, word := lastWord(head)
	switch kind {
	case argUser:
		completions = a.completeUsers(word, true)
	case argGroup:
		completions = a.completeGroups(word)
	case argConv:
		completions = append(a.completeGroups(word), a.completeUsers(word, true)...)
	}
	return head[:start], completions, tail
}

// lastWord is the word before the cursor and the byte offset where it
// starts in head.
func lastWord(head string) (int, string) {
	start := strings.LastIndexByte(head, ' ') + 1
	return start, head[start:]
}

func completeCommands(word string) []string {
	var out []string
	w := strings.ToLower(word)
	for _, c := range commands {
		for _, name := range []string{c.name, c.alias} {
			if name != "" && strings.HasPrefix(name, w) {
				out = append(out, name+" ")
			}
		}
	}
	return out
}

// completeUsers lists the nicknames (and, withIDs, the ids) known that
// start with word, ignoring case. Nicknames that would need escaping on a
// terminal are left out (the server refuses them anyway).
func (a *app) completeUsers(word string, withIDs bool) []string {
	if word == "" && !withIDs {
		return nil
	}
	lw := strings.ToLower(word)
	var nicks, ids []string
	a.mu.Lock()
	for id, nick := range a.known {
		if id == a.me.ID {
			continue
		}
		if nick != "" && protocol.Escape(nick) == nick && strings.HasPrefix(strings.ToLower(nick), lw) {
			nicks = append(nicks, nick+" ")
		}
		if s := strconv.FormatInt(id, 10); withIDs && strings.HasPrefix(s, word) {
			ids = append(ids, s+" ")
		}
	}
	a.mu.Unlock()
	slices.Sort(nicks)
	slices.Sort(ids)
	return capList(append(nicks, ids...))
}

// completeGroups lists the groups known ("#team") that start with word
// (with or without its #).
func (a *app) completeGroups(word string) []string {
	lw := strings.ToLower(strings.TrimPrefix(word, "#"))
	var out []string
	a.mu.Lock()
	for g := range a.groups {
		if strings.HasPrefix(strings.ToLower(strings.TrimPrefix(g, "#")), lw) {
			out = append(out, g+" ")
		}
	}
	a.mu.Unlock()
	slices.Sort(out)
	return capList(out)
}

func capList(l []string) []string {
	if len(l) > maxCompletions {
		return l[:maxCompletions]
	}
	return l
}

// lastPath finds the path being typed at the end of head, as /send reads
// paths (splitPaths): it starts after the last space outside quotes, or
// at an opening quote that is not closed yet (quote is then that quote).
func lastPath(head string) (start int, token string, quote rune) {
	inToken := false
	for i, r := range head {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '"' || r == '\''):
			if !inToken {
				start, inToken = i, true
			}
			quote = r
		case quote == 0 && r == ' ':
			inToken = false
			start = i + 1
		case !inToken:
			start, inToken = i, true
		}
	}
	if !inToken {
		start = len(head)
	}
	token = strings.NewReplacer(`"`, "", "'", "").Replace(head[start:])
	return start, token, quote
}

// completePaths lists the files and folders that complete token: "~/"
// stands for the home folder and stays in what is shown; folders end in
// "/" (to go on into them), files in a space; a path with a space or a
// quote is quoted (quote: the one the user opened).
func completePaths(token string, quote rune) []string {
	if token == "~" {
		return []string{"~/"}
	}
	dir, base := token[:strings.LastIndexByte(token, '/')+1], token[strings.LastIndexByte(token, '/')+1:]
	list := dir
	if list == "" {
		list = "."
	}
	if list == "~" || strings.HasPrefix(list, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		list = filepath.Join(home, strings.TrimPrefix(list, "~"))
	}
	entries, err := os.ReadDir(list)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, base) || (strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".")) ||
			!utf8.ValidString(name) || protocol.Escape(name) != name {
			continue
		}
		p, end := dir+name, " "
		if isDir(filepath.Join(list, name), e) {
			end = "/"
		}
		q := quote
		if q == 0 && strings.ContainsAny(p, ` "'`) {
			q = '"'
			if strings.ContainsRune(p, '"') {
				q = '\''
			}
		}
		switch {
		case q != 0 && end == " ":
			p = string(q) + p + string(q) + " "
		case q != 0:
			p = string(q) + p + end // the quote is closed once a file is chosen
		default:
			p += end
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return capList(out)
}

// isDir follows a symlink to tell whether it leads to a folder.
func isDir(path string, e os.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&os.ModeSymlink != 0 {
		fi, err := os.Stat(path)
		return err == nil && fi.IsDir()
	}
	return false
}

// learnWorld fills what completion knows beyond what arrives: friends,
// groups, and the peers and groups of the history files (also those who
// are offline). On a terminal only, in the background after a login; it
// prints nothing.
func (a *app) learnWorld(ctx context.Context) {
	if list, err := a.cl.Users(ctx, "FRIENDS"); err == nil {
		for _, p := range list {
			a.remember(p.ID, p.Nick)
		}
	}
	if r, err := a.cl.Do(ctx, "GROUPS"); err == nil {
		for _, l := range r.Lines {
			if f := strings.Fields(l); len(f) > 0 {
				a.rememberGroup(f[0])
			}
		}
	}
	if a.rec.Hist == nil {
		return
	}
	convs, err := a.rec.Hist.Conversations()
	if err != nil {
		return
	}
	for _, conv := range convs {
		if strings.HasPrefix(conv, "#") {
			a.rememberGroup(conv)
			continue
		}
		id, ok := protocol.ParseID(conv)
		if !ok || a.nickOf(id) != "" {
			continue
		}
		recs, err := a.rec.Hist.Read(conv, 20)
		if err != nil {
			continue
		}
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].From == id && recs[i].Nick != "" {
				a.rememberIfUnknown(id, recs[i].Nick)
				break
			}
		}
	}
}
