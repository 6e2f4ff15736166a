package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"qchat/protocol"
)

// Errors in words. A person who cannot reach a server needs the address,
// the cause and what to check, not Go's "dial tcp :38421->127.0.0.1:1:
// connect: connection refused" (the local port is the peer listener's,
// which means nothing to them).

// DialError is a failure to reach a server: Error says it in words; Err is
// the error underneath, for errors.Is.
type DialError struct {
	Addr  string // the server, as given
	Cause string // in words: "nothing is listening there (connection refused)"
	Hint  string // what to check, "" for nothing useful
	Err   error
}

func (e *DialError) Error() string {
	s := "cannot connect to " + e.Addr + ": " + e.Cause
	if e.Hint != "" {
		s += " — " + e.Hint
	}
	return s
}

func (e *DialError) Unwrap() error { return e.Err }

// serverHint is what to check when nothing answers at an address.
const serverHint = "is `qchat serve` running there? is a firewall in the way?"

// errNotQchat is under a DialError for a server whose greeting is not ours.
var errNotQchat = errors.New("not a qchat server")

// dialError words a failure to connect to addr.
func dialError(addr string, err error, timeout time.Duration) *DialError {
	e := &DialError{Addr: addr, Err: err, Hint: serverHint}
	var dns *net.DNSError
	var ae *net.AddrError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		e.Cause, e.Hint = "cancelled", ""
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Cause = "nothing is listening there (connection refused)"
	case errors.As(err, &dns) && dns.IsNotFound:
		e.Cause, e.Hint = fmt.Sprintf("there is no host named %q", dns.Name), "is the name right?"
	case errors.As(err, &dns):
		e.Cause, e.Hint = fmt.Sprintf("the name %q could not be looked up", dns.Name), "is the network up? is the name right?"
	case errors.As(err, &ae) || strings.Contains(err.Error(), "missing port"):
		e.Cause, e.Hint = "that is not a HOST:PORT address", "for example --server 192.168.1.5:4000"
	case errors.Is(err, syscall.EHOSTUNREACH):
		e.Cause, e.Hint = "the host cannot be reached (no route to host)", "is the address right? is the host up?"
	case errors.Is(err, syscall.ENETUNREACH):
		e.Cause, e.Hint = "its network cannot be reached (network is unreachable)", "is this machine on the network?"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		e.Cause = fmt.Sprintf("no answer within %s (timed out)", timeout)
		e.Hint = "is the host up? " + serverHint
	default:
		e.Cause = causeText(err)
	}
	return e
}

// greetingError words a connection that opened but brought no greeting.
func greetingError(addr string, err error, timeout time.Duration) *DialError {
	e := &DialError{Addr: addr, Err: err, Hint: "is it a qchat server, and is it overloaded?"}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		e.Cause = fmt.Sprintf("connected, but no greeting came within %s", timeout)
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		e.Cause = "connected, but no greeting came: the server closed the connection"
	default:
		e.Cause = "connected, but no greeting came: " + causeText(err)
	}
	return e
}

// causeText is an error without Go's "dial tcp a->b:" or "read tcp a->b:"
// prefix: the system's words for what went wrong.
func causeText(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// LostCause says in words why an established connection ended.
func LostCause(err error) string {
	var bye *ByeError
	switch {
	case err == nil:
		return "the connection ended"
	case errors.As(err, &bye):
		return "the server said goodbye: " + protocol.Escape(bye.Text) + " (" + protocol.Escape(bye.Reason) + ")"
	case errors.Is(err, errNoPong):
		return err.Error()
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		return "the server closed the connection"
	case errors.Is(err, syscall.ECONNRESET):
		return "the connection was reset"
	case errors.Is(err, syscall.EPIPE):
		return "the connection broke"
	case errors.Is(err, syscall.ETIMEDOUT):
		return "the connection timed out"
	}
	return causeText(err)
}
