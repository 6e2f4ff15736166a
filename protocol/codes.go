package protocol

import "fmt"

// Reply codes. The first digit is the class, as in SMTP and FTP:
// 2xx done, 3xx go on (send the next part), 4xx failed for now (try again
// later), 5xx refused (do not repeat unchanged).
const (
	CodeOK         = 200 // generic success
	CodeRegistered = 201 // REG: account created
	CodeList       = 210 // LIST and other lists (multi-line)
	CodeInfo       = 211 // INFO: key value lines (multi-line)
	CodeHelp       = 214 // HELP (multi-line)
	CodeGreeting   = 220 // first line the server sends
	CodeBye        = 221 // QUIT accepted, the server closes
	CodeLoggedIn   = 230 // PASS accepted
	CodeToken      = 231 // TOKEN: a resumption token and when it expires
	CodeStartTLS   = 234 // STARTTLS accepted: the TLS handshake follows at once
	CodeSent       = 250 // MSG is safe: delivered or stored
	CodeTicket     = 260 // a direct link was granted: here is the ticket

	CodePassword = 331 // USER accepted, send PASS

	CodeUnavailable = 421 // the server is shutting down or overloaded
	CodeQueueFull   = 450 // the recipient's queue is full
	CodeLocalError  = 451 // the server failed (storage); nothing was done
	CodeRateLimit   = 452 // too many requests of this kind; slow down
	CodeOffline     = 453 // the user is not online (for what needs them online)
	CodeTimeout     = 454 // the other side did not answer in time

	CodeUnknown            = 500 // unknown verb
	CodeSyntax             = 501 // wrong arguments
	CodeNotYet             = 502 // verb known but not offered by this server
	CodeSequence           = 503 // bad sequence (PASS before USER, ...)
	CodeNeedLogin          = 530 // the verb needs a logged-in session
	CodeLoginFailed        = 535 // wrong user or password (never says which)
	CodeEncryptionRequired = 538 // a password over clear text from another host: STARTTLS first
	CodeNoSuchUser         = 550 // no such user
	CodeRefused            = 551 // the other side refused
	CodeTooLong            = 552 // line or text over its limit
	CodeNameTaken          = 553 // nickname or name already taken
	CodeForbidden          = 554 // not allowed (not a member, not the owner, ...)
	CodeBadValue           = 555 // a value out of range (profile fields)
	CodeNoSuchGroup        = 556 // no such group
)

// Error is a reply with a failure code, as a Go error. It is what a client
// gets back from a request that the server refused, and what a server
// handler returns to have a failure reply sent.
type Error struct {
	Code int
	Text string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Text) }

// Errorf builds an *Error with a formatted text.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Text: fmt.Sprintf(format, args...)}
}

// Temporary reports whether the failure is of the try-again class (4xx).
func (e *Error) Temporary() bool { return e.Code >= 400 && e.Code < 500 }
