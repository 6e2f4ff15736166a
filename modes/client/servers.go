package client

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
)

// Several servers: `--server a:4000,b:4000,c:4000` names the nodes of one
// service (qchat serve --cluster). A Session goes round them:
//
//   - The first connection starts at a random one (OrderRandom, so that
//     clients with the same list spread over the nodes), or at the first
//     listed (OrderListed: a primary and its backups), and goes round
//     the list from there; a server that cannot be reached is skipped at
//     once, without a wait.
//   - The session stays on the server that works; it does not move back
//     when an earlier one returns.
//   - When its connection is lost, the others are tried at once, one
//     after the other (OrderRandom: from a random one of them, so that the
//     clients of a dead node spread over the rest; OrderListed: from the
//     next in the list), and the lost one last. Only when the whole list
//     failed does the session wait (Backoff), and go round again.
//
// Server keys are pinned per address (known_servers: each node has its
// own key); resumption tokens are kept per address too (resume.go).

// Orders of SessionConfig.Order (--server-order).
const (
	OrderRandom = "random" // start at a random server (the default)
	OrderListed = "listed" // start at the first listed
)

// ParseServers checks a --server value: one HOST:PORT or several,
// comma-separated (spaces around them are ignored), none twice.
func ParseServers(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no server address")
	}
	var out []string
	seen := make(map[string]bool)
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("%q: an empty address in the list (want HOST:PORT,HOST:PORT,...)", s)
		}
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return nil, fmt.Errorf("%q is not a HOST:PORT address (for example 192.168.1.5:4000)", a)
		}
		if seen[strings.ToLower(a)] {
			return nil, fmt.Errorf("%s is listed twice", a)
		}
		seen[strings.ToLower(a)] = true
		out = append(out, a)
	}
	return out, nil
}

// splitServers is the list of SessionConfig.Addr as it is (ParseServers
// checks it for people): the commas split it, and a wrong address fails
// when dialed, with the reason in words.
func splitServers(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return []string{s}
	}
	return out
}

// plan is the order in which the session tries its servers, by index:
// at the first connection (lost < 0) from the start (random or the first)
// round the list; after losing the server lost, the others from the one
// after it (random: from a random one of them), and lost last.
func (s *Session) plan(lost int) []int {
	n := len(s.servers)
	pick := s.cfg.Pick
	if pick == nil {
		pick = rand.IntN
	}
	random := s.cfg.Order != OrderListed
	out := make([]int, 0, n)
	if lost < 0 {
		start := 0
		if random && n > 1 {
			start = pick(n)
		}
		for j := range n {
			out = append(out, (start+j)%n)
		}
		return out
	}
	others, off := n-1, 0
	if random && others > 1 {
		off = pick(others)
	}
	for j := range others {
		out = append(out, (lost+1+(off+j)%others)%n)
	}
	return append(out, lost)
}

// UnreachableError is a list of servers none of which could be reached:
// each one's failure, in the order they were tried.
type UnreachableError struct {
	Addrs []string
	Errs  []error
}

func (e *UnreachableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "none of the %d servers could be reached: ", len(e.Addrs))
	for i, err := range e.Errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(withAddr(e.Addrs[i], err))
	}
	return b.String()
}

func (e *UnreachableError) Unwrap() []error { return e.Errs }

// withAddr is err in words, naming addr unless it does already.
func withAddr(addr string, err error) string {
	var de *DialError
	if errors.As(err, &de) && de.Addr == addr {
		return de.Error()
	}
	return addr + ": " + ConnErrText(err)
}
