package history

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrConversation is returned (wrapped) for a conversation name that cannot
// name a file safely.
var ErrConversation = errors.New("history: invalid conversation name")

// Limits on names turned into path elements; a file name holds at most 255
// bytes on the usual file systems.
const (
	maxServer = 100
	maxConv   = 200
)

// Dir returns the history folder of one user on one server:
// Root()/<server>/<user>. The server name, chosen by a remote server, is
// reduced to one safe path element by safeElem. Dir creates nothing; Open
// does.
func Dir(server string, user int64) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, safeElem(server), strconv.FormatInt(user, 10)), nil
}

// Root is the folder of qchat's files on this machine:
// $XDG_DATA_HOME/qchat, or $HOME/.local/share/qchat when XDG_DATA_HOME is
// unset or not absolute. Beside the history folders it holds
// known_servers (modes/client).
func Root() (string, error) {
	base := os.Getenv("XDG_DATA_HOME")
	if !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("history: no data folder: %w", err)
		}
		if !filepath.IsAbs(home) {
			return "", fmt.Errorf("history: no data folder: home %q is not absolute", home)
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "qchat"), nil
}

// safeElem keeps ASCII letters, digits, '.', '-' and '_' of s and replaces
// every other rune (and every byte of invalid UTF-8) by '_'. An empty result,
// "." or ".." becomes "_"; the result is cut to maxServer bytes.
func safeElem(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxServer {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	switch e := b.String(); e {
	case "", ".", "..":
		return "_"
	default:
		return e
	}
}

// checkConv accepts a conversation name that is safe as a file name: not
// empty, at most maxConv bytes of valid UTF-8, no leading '.' (so neither "."
// nor ".."), no '/', '\\' or ':' (a stream separator on Windows), no control
// characters (C0, DEL, C1) and no bidi formatting characters.
func checkConv(conv string) error {
	bad := conv == "" || len(conv) > maxConv || conv[0] == '.' ||
		!utf8.ValidString(conv) || strings.ContainsAny(conv, `/\:`)
	for _, r := range conv {
		if bad {
			break
		}
		bad = r < 0x20 || r == 0x7f || hiddenRune(r)
	}
	if bad {
		return fmt.Errorf("%w: %q", ErrConversation, conv)
	}
	return nil
}

// mkdirAll is os.MkdirAll with mode 0700 set explicitly (whatever the umask)
// on each folder it creates. Folders that exist are left as they are.
func mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("history: %s is not a folder", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("history: %w", err)
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return nil // created by someone else meanwhile
		}
		return fmt.Errorf("history: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}
