package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"

	"qchat/modes/client"
	"qchat/protocol"
)

// startTLS reads the greeting, upgrades the connection with STARTTLS as
// `qchat chat` does (the 234 must be the last thing the server wrote in
// clear), and checks the server's key with keys, which remembers it for
// the other connections of the run. The greeting inside TLS is left for
// login to read.
func (c *conn) startTLS(ctx context.Context, addr string, keys *client.ServerKeys, timeout time.Duration) error {
	c.nc.SetDeadline(time.Now().Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	if _, err := c.nc.Write([]byte("STARTTLS\n")); err != nil {
		return err
	}
	for {
		raw, err := c.readLine()
		if err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		l, err := protocol.ParseLine(raw)
		switch {
		case err != nil:
			return fmt.Errorf("STARTTLS: unexpected line %q", protocol.Clip(string(raw), 60))
		case l.IsEvent() && l.Kind == "BYE":
			return fmt.Errorf("STARTTLS: closed by server: %s", protocol.Clip(string(raw), 80))
		case l.IsEvent() || l.More:
			continue
		case !c.greeted:
			if l.Code != protocol.CodeGreeting {
				return fmt.Errorf("not a qchat server: %s", protocol.Clip(string(raw), 60))
			}
			c.greeted = true
			c.ackTo = slices.Contains(strings.Fields(l.Text), "ackto")
			continue
		case l.Code == protocol.CodeUnknown || l.Code == protocol.CodeNotYet:
			return fmt.Errorf("%w (%d %s): run the bench with --no-tls to measure it in clear text", client.ErrTLSRefused, l.Code, l.Text)
		case l.Code != protocol.CodeStartTLS:
			return fmt.Errorf("STARTTLS: %d %s", l.Code, l.Text)
		case c.r.Buffered() > 0:
			return fmt.Errorf("%w (%d bytes)", client.ErrTLSInjected, c.r.Buffered())
		}
		break
	}
	tc := tls.Client(c.nc, keys.Config(addr))
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.nc = tc
	c.r.Reset(tc)
	// The server greets again inside TLS: login reads that greeting, and
	// nothing of the one in clear is kept.
	c.greeted, c.ackTo = false, false
	return nil
}

// tlsLine says how the bench spoke to the server, for the report.
func tlsLine(cfg Config) string {
	if cfg.NoTLS {
		return "off (--no-tls: clear text)"
	}
	return "on (STARTTLS, TLS 1.3)"
}
