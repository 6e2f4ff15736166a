package chat

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"
)

// errNoPassword is returned when no password source is available.
var errNoPassword = errors.New("no password: set QCHAT_PASSWORD, use --password-file, or run on a terminal")

// ttyPassword asks on the controlling terminal without echo (as ssh does),
// for piped runs started by a person.
func ttyPassword(prompt string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", errNoPassword
	}
	defer tty.Close()
	if !term.IsTerminal(int(tty.Fd())) {
		return "", errNoPassword
	}
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}
