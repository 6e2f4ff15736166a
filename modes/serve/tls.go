package serve

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"qchat/protocol"
)

// TLS on the server port. The port speaks clear text until STARTTLS, then
// TLS 1.3 (as IMAP, SMTP and XMPP do), so that a person with nc on the
// server host can still type the protocol while a password never crosses
// the network in clear. This file owns the policy (--tls) and the
// STARTTLS verb, tlskeys.go the server's key and certificate; the session
// owns the connection.

// TLS policies (serve --tls).
const (
	TLSRequired = "required" // passwords over clear text only from loopback
	TLSOptional = "optional" // STARTTLS offered, clear text allowed from anywhere
	TLSOff      = "off"      // no STARTTLS (502): everything in clear
)

// handshakeTimeout bounds the TLS handshake after 234.
const handshakeTimeout = 10 * time.Second

// Close reasons of STARTTLS (BYE and the log).
const (
	reasonTLSPipelined = "starttls-pipelined" // bytes followed STARTTLS before the handshake
	reasonTLSHandshake = "tls-handshake"      // the handshake failed (no BYE: nothing is sent in clear after 234)
)

// errEncryptionRequired answers a password over clear text from another host.
var errEncryptionRequired = protocol.Errorf(protocol.CodeEncryptionRequired, "encryption required: send STARTTLS first")

// loadTLS checks the policy and loads the certificate it needs (nil with
// --tls=off), before the server listens.
func loadTLS(cfg Config) (*keyring, error) {
	switch cfg.TLS {
	case TLSOff:
		return nil, nil
	case TLSRequired, TLSOptional:
		return newKeyring(cfg)
	default:
		return nil, fmt.Errorf("--tls %q: want required, optional or off", cfg.TLS)
	}
}

// useTLS puts the policy in force and says in the log which one is on.
func (srv *Server) useTLS(k *keyring) {
	if k == nil {
		srv.log.Warn("TLS off (--tls=off): passwords and messages cross the network in clear", "tls", TLSOff)
		return
	}
	srv.keys, srv.tlsConf = k, k.config()
	fp := k.fingerprint()
	srv.fp.Store(&fp)
	rule := "passwords in clear text only from loopback"
	if srv.cfg.TLS == TLSOptional {
		rule = "passwords in clear text accepted from anywhere"
	}
	srv.log.Info("TLS "+srv.cfg.TLS+": "+rule, "tls", srv.cfg.TLS, "cert", k.source(), "fingerprint", fp)
}

// isLoopback tells a peer on this host.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// checkEncryption refuses a verb that carries a password (PASS, REG,
// PASSWD) or a resumption token (RESUME, TOKEN) over clear text from
// another host when TLS is required.
// Loopback stays open: nobody else can read it.
func (s *session) checkEncryption(verb string) error {
	if s.tls || s.local || s.srv.cfg.TLS != TLSRequired {
		return nil
	}
	switch verb {
	case "PASS", "REG", "PASSWD", "RESUME", "TOKEN":
		return errEncryptionRequired
	}
	return nil
}

// STARTTLS
//
// Before login, once: 234, then the TLS handshake on the raw connection,
// then the session goes on over TLS with a fresh line reader and a new
// greeting, the first line inside TLS: a client takes the server's name
// and extensions from it, not from the one in clear, which anyone on the
// path could have changed. Nothing read
// before the handshake is acted on after it: a client that sent anything
// past the STARTTLS line gets 501 and is closed. What other goroutines
// send meanwhile (a PING) waits in the paused outbox and goes out over TLS.
func (s *session) cmdStartTLS(c *protocol.Command) error {
	switch {
	case s.srv.tlsConf == nil:
		return protocol.Errorf(protocol.CodeNotYet, "this server does not offer TLS (serve --tls=off)")
	case s.tls:
		return protocol.Errorf(protocol.CodeSequence, "TLS is already on")
	case s.loggedIn() != 0:
		return protocol.Errorf(protocol.CodeSequence, "STARTTLS comes before login")
	}
	if n := len(s.rd.Buffered()); n > 0 {
		s.replyf(c.Tag, protocol.CodeSyntax, "nothing may follow STARTTLS before the TLS handshake (%d bytes did); closing", n)
		s.close(reasonTLSPipelined, "bytes sent after STARTTLS before the TLS handshake")
		return nil
	}
	defer s.busy()() // the sweeper neither asks it to park nor pings it: the handshake has a deadline of its own
	if err := s.out.Pause(protocol.AppendReply(nil, c.Tag, protocol.CodeStartTLS, false, "go ahead with the TLS handshake")); err != nil {
		s.close(reasonWriteError, err.Error())
		return nil
	}
	tc := tls.Server(s.conn, s.srv.tlsConf)
	if err := handshake(tc, s.conn); err != nil {
		s.srv.log.Info("TLS handshake failed", "conn", s.id, "remote", s.remote, "err", err)
		s.close(reasonTLSHandshake, err.Error())
		return nil
	}
	s.lastRead.Store(s.srv.now()) // the handshake was the client's word: the keepalive counts from its end
	s.rd.Close()
	tr := newTLSReader(tc, s.raw)
	if s.nw != nil {
		s.nw = tr // parkable: it reads TLS now
	}
	s.rd = protocol.NewLineReader(tr, protocol.MaxLine)
	s.conn = tc
	s.tls = true
	// What was said before TLS counts for nothing after it (RFC 3207).
	s.pending, s.userSent = nil, false
	s.out.Resume(tc, s.greeting()) // the greeting first, before a PING queued meanwhile
	s.srv.log.Debug("TLS on", "conn", s.id, "remote", s.remote)
	return nil
}

// handshake runs the server side of the TLS handshake within
// handshakeTimeout, on a goroutine of its own: its deep stack goes away
// with it instead of staying with the session's read loop.
func handshake(tc *tls.Conn, raw net.Conn) error {
	raw.SetDeadline(time.Now().Add(handshakeTimeout))
	done := make(chan error, 1)
	go func() { done <- tc.Handshake() }()
	err := <-done
	raw.SetDeadline(time.Time{})
	return err
}

// tlsReader is what the session's line reader reads after STARTTLS. It
// waits for input on the TCP socket in a shallow frame, not deep inside
// crypto/tls: an idle session's goroutine then needs half the stack
// (the garbage collector shrinks it), which is most of what TLS would
// otherwise add to an idle connection. What TLS holds already (the rest
// of a record, a record read ahead) is taken first, without waiting.
type tlsReader struct {
	tc       *tls.Conn
	rc       syscall.RawConn // the socket, for the wait; nil reads through tc directly
	deadline time.Time       // the line reader's, restored after each look at what TLS holds
	noWait   bool            // after one read, errWouldBlock instead of a wait (park.go, sockReader)
	reads    int             // in noWait mode: reads left
}

func newTLSReader(tc *tls.Conn, raw net.Conn) *tlsReader {
	r := &tlsReader{tc: tc}
	if sc, ok := raw.(syscall.Conn); ok {
		r.rc, _ = sc.SyscallConn()
	}
	return r
}

func (r *tlsReader) setNoWait(on bool) { r.noWait, r.reads = on, 1 }

// longAgo is a deadline that has passed: a read with it takes only what
// is buffered.
var longAgo = time.Unix(1, 0)

func (r *tlsReader) SetReadDeadline(t time.Time) error {
	r.deadline = t
	return r.tc.SetReadDeadline(t)
}

func (r *tlsReader) Read(p []byte) (int, error) {
	if r.rc == nil {
		return r.tc.Read(p)
	}
	if r.noWait && r.reads > 0 {
		r.reads--
		return r.tc.Read(p) // what woke the parked session: a record is there
	}
	r.tc.SetReadDeadline(longAgo)
	n, err := r.tc.Read(p)
	r.tc.SetReadDeadline(r.deadline)
	if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return n, err
	}
	if r.noWait {
		return 0, errWouldBlock // TLS holds nothing more: park (see sockReader)
	}
	if err := r.waitReadable(); err != nil {
		return 0, err
	}
	return r.tc.Read(p)
}

// waitReadable returns once the socket has bytes to read (or its end, or
// an error), or the read deadline passed.
func (r *tlsReader) waitReadable() error {
	var b [1]byte
	return r.rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EINTR
	})
}
