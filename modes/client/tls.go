package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"qchat/protocol"
)

// ErrTLSRefused is a server that answered STARTTLS with a refusal (500
// unknown command, 502 not offered): an old server, one run with
// --tls=off, or someone in the middle who wants the connection in clear.
// Clients refuse it unless told to speak clear text (Options.NoTLS,
// --no-tls). Never retry it.
var ErrTLSRefused = errors.New("the server refused STARTTLS")

// ErrTLSInjected is a 234 reply to STARTTLS followed by more bytes before
// the TLS handshake: what came in clear after it is not the server's word.
var ErrTLSInjected = errors.New("bytes in clear after the server's 234 to STARTTLS")

// startTLS upgrades conn after the greeting: STARTTLS, the 234 reply
// (with nothing after it), then the TLS handshake, whose key keys checks.
// rd is the reader that read the greeting; it must not be used after.
func startTLS(ctx context.Context, conn net.Conn, rd *protocol.LineReader, addr string, keys *ServerKeys, timeout time.Duration) (*tls.Conn, error) {
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte("STARTTLS\n")); err != nil {
		return nil, fmt.Errorf("STARTTLS: %w", err)
	}
	if err := readStartTLSReply(rd); err != nil {
		return nil, err
	}
	tc := tls.Client(conn, keys.Config(addr))
	if err := tc.HandshakeContext(ctx); err != nil {
		var ke *ServerKeyError
		if errors.As(err, &ke) {
			return nil, ke
		}
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// readStartTLSReply reads up to the reply to STARTTLS and returns nil for
// a 234 that the server wrote last: nothing may wait in rd after it.
// Events before it (a PING, which must not be answered now) are skipped.
func readStartTLSReply(rd *protocol.LineReader) error {
	for {
		b, err := rd.ReadLine()
		if errors.Is(err, protocol.ErrLineTooLong) {
			continue
		}
		if err != nil {
			return fmt.Errorf("STARTTLS: no answer: %w", err)
		}
		l, err := protocol.ParseLine(b)
		if err != nil {
			return fmt.Errorf("STARTTLS: unexpected answer %q", protocol.Clip(string(b), 60))
		}
		switch {
		case l.IsEvent() && l.Kind == "BYE":
			return fmt.Errorf("STARTTLS: %w by server: %s", ErrClosed, protocol.Clip(string(b), 80))
		case l.IsEvent() || l.More:
			continue
		case l.Code == protocol.CodeStartTLS:
			if n := len(rd.Buffered()); n > 0 {
				return fmt.Errorf("%w (%d bytes): someone may be tampering with the connection", ErrTLSInjected, n)
			}
			return nil
		case l.Code == protocol.CodeUnknown || l.Code == protocol.CodeNotYet:
			return fmt.Errorf("%w (%d %s): it may be an old server, one without TLS, or someone in the middle; use --no-tls to talk to it in clear text anyway",
				ErrTLSRefused, l.Code, protocol.Clip(l.Text, 80))
		case l.Err() != nil:
			return fmt.Errorf("STARTTLS: %w", l.Err())
		default:
			return fmt.Errorf("STARTTLS: unexpected answer %q", protocol.Clip(string(b), 60))
		}
	}
}

// ServerKey is the fingerprint of the server's key (protocol.Fingerprint),
// "" when the connection is clear text (NoTLS).
func (c *Client) ServerKey() string {
	tc, ok := c.conn.(*tls.Conn)
	if !ok {
		return ""
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	return protocol.Fingerprint(certs[0].RawSubjectPublicKeyInfo)
}

// ErrNoTLSGreeting is a server that said nothing, or something other than
// its greeting, as the first line inside TLS: after STARTTLS the server
// greets again (220), and only that greeting is believed.
var ErrNoTLSGreeting = errors.New("no greeting inside TLS")

// readTLSGreeting reads the greeting the server sends first inside TLS,
// within timeout.
func readTLSGreeting(rd *protocol.LineReader, conn net.Conn, timeout time.Duration) (protocol.Line, error) {
	conn.SetReadDeadline(time.Now().Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	b, err := rd.ReadLine()
	if err != nil {
		return protocol.Line{}, fmt.Errorf("%w: %w", ErrNoTLSGreeting, err)
	}
	l, err := protocol.ParseLine(b)
	if err != nil || l.Code != protocol.CodeGreeting {
		return protocol.Line{}, fmt.Errorf("%w: the first line was %q", ErrNoTLSGreeting, protocol.Clip(protocol.Escape(string(b)), 60))
	}
	return l, nil
}
