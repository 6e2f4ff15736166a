package discover

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"qchat/protocol"
)

// NoServerError is a search that found no server this client can use.
type NoServerError struct {
	Port  int
	Wait  time.Duration
	Other []Server // servers that answered but speak another protocol, or announced another key than --server-fingerprint
}

func (e *NoServerError) Error() string {
	msg := fmt.Sprintf("no qchat server answered on the LAN within %s (UDP port %d)", e.Wait, e.Port)
	if len(e.Other) > 0 {
		msg = fmt.Sprintf("no usable qchat server on the LAN: %d answered, none of them usable here (%s)", len(e.Other), whyOther(e.Other[0]))
	}
	return msg
}

// SeveralError is a search that found several servers where nobody can
// choose (piped).
type SeveralError struct {
	Servers []Server
}

func (e *SeveralError) Error() string {
	return fmt.Sprintf("%d qchat servers answered on the LAN; say which with --server:\n%s", len(e.Servers), List(e.Servers))
}

// Usable splits servers into those this client can use and the others:
// a usable one speaks this client's protocol and, with pinned keys
// (--server-fingerprint), announced one of them.
func Usable(servers []Server, pinned []string) (ok, other []Server) {
	for _, s := range servers {
		switch {
		case s.Proto != protocol.ProtocolName:
			other = append(other, s)
		case len(pinned) > 0 && !slices.Contains(pinned, s.Fingerprint):
			other = append(other, s)
		default:
			ok = append(ok, s)
		}
	}
	return ok, other
}

func whyOther(s Server) string {
	if s.Proto != protocol.ProtocolName {
		return fmt.Sprintf("%s speaks %s, this client %s", Describe(s), protocol.Escape(s.Proto), protocol.ProtocolName)
	}
	return fmt.Sprintf("%s announced another key than --server-fingerprint", Describe(s))
}

// Describe is one server on one line, safe for a terminal: its name
// (escaped: it comes from the network), address, key and whether
// known_servers knows it there.
func Describe(s Server) string {
	fp := s.Fingerprint
	if fp == "" {
		fp = "no TLS"
	}
	d := fmt.Sprintf("%s at %s (%s)", protocol.Escape(s.Name), s.Addr(), fp)
	if s.Known {
		d += " known"
	}
	return d
}

// List is the servers, numbered from 1, one a line.
func List(servers []Server) string {
	var b strings.Builder
	for i, s := range servers {
		fmt.Fprintf(&b, "  %d) %s\n", i+1, Describe(s))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Prompt asks a person at a terminal: In is the terminal's input, Out
// where the questions go. It reads byte by byte, so that it takes nothing
// of what is typed after the answer (the line editor's).
type Prompt struct {
	In  io.Reader
	Out io.Writer
}

// ErrNoChoice is a person who chose none of the servers.
var ErrNoChoice = errors.New("no server chosen")

// Choose lets the person pick one of servers by its number.
func (p *Prompt) Choose(servers []Server) (Server, error) {
	fmt.Fprintf(p.Out, "%d qchat servers answered on the LAN:\n%s\n", len(servers), List(servers))
	for range 3 {
		fmt.Fprintf(p.Out, "Which one? [1-%d, Enter for none] ", len(servers))
		line, err := p.readLine()
		if err != nil {
			return Server{}, fmt.Errorf("%w: %w", ErrNoChoice, err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			return Server{}, ErrNoChoice
		}
		if n, err := strconv.Atoi(line); err == nil && n >= 1 && n <= len(servers) {
			return servers[n-1], nil
		}
		fmt.Fprintf(p.Out, "%q is not one of the numbers.\n", line)
	}
	return Server{}, ErrNoChoice
}

// Confirm asks a yes or no question; only yes is yes.
func (p *Prompt) Confirm(question string) bool {
	fmt.Fprintf(p.Out, "%s [y/N] ", question)
	line, err := p.readLine()
	if err != nil {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func (p *Prompt) readLine() (string, error) {
	var b bytes.Buffer
	one := make([]byte, 1)
	for b.Len() < 256 {
		n, err := p.In.Read(one)
		if n == 1 {
			if one[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(one[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) && b.Len() > 0 {
				return b.String(), nil
			}
			return "", err
		}
	}
	return b.String(), nil
}

// Answer is what the person at the terminal said about a key this
// machine has not seen.
type Answer int

// Answers.
const (
	NotAsked Answer = iota // piped, or nothing to ask
	Yes
	No
)

// Ask asks the person whether to trust the key s announced, before any
// connection is made (a server does not wait for a person to think):
// the key it then presents must be that one (Trust).
func (p *Prompt) Ask(s Server) Answer {
	if p.Confirm(fmt.Sprintf("The key of %s at %s is new to this machine:\n  %s\n"+
		"Anyone on the LAN can answer discovery: check the fingerprint with the server's admin (qchat serve --fingerprint).\n"+
		"Trust this key and remember it for %s?", protocol.Escape(s.Name), s.Addr(), s.Fingerprint, s.Addr())) {
		return Yes
	}
	return No
}

// Trust is the first-contact rule for the key of a server found by
// discovery (client.ServerKeys.FirstContact: it is asked only about an
// address known_servers does not hold). The key presented must be the one
// announced; then a key known_servers holds under another address (the
// server moved) is taken, and an unknown one only when the person at the
// terminal said yes to it. Piped, it is refused.
func Trust(s Server, said Answer) func(addr, fp string, knownAt []string) error {
	return func(addr, fp string, knownAt []string) error {
		switch {
		case s.Fingerprint != "" && fp != s.Fingerprint:
			return fmt.Errorf("it announced the key %s but presented %s (a forged answer?)", s.Fingerprint, fp)
		case len(knownAt) > 0, said == Yes && s.Fingerprint != "":
			return nil
		case said == No:
			return fmt.Errorf("its key %s was not accepted", fp)
		}
		return fmt.Errorf("its key %s is not in known_servers under any address", fp)
	}
}
