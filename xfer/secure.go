package xfer

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"time"

	"qchat/protocol"
)

// Every peer link is end-to-end encrypted and authenticated: after the
// clear-text HELLO exchange (which only names the ticket), both sides run
// TLS 1.3 over the same connection, the offerer as TLS client, the other
// as server, whoever dialed. Both present a certificate for this run's
// link key, and each checks the other's against the fingerprint the
// server passed with the ticket. So neither a relay nor anyone on the
// path reads or changes what the link carries, and a party that learned
// a ticket cannot pose as the peer: it does not hold the peer's key.

// identity is this run's link key: an ECDSA P-256 key pair made at start,
// held in memory only, with a self-signed certificate for TLS.
type identity struct {
	cert tls.Certificate
	fp   string // Fingerprint of the certificate's public key
}

func newIdentity() (*identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("link key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		// Peers check the key, not the name or dates: the validity only
		// has to cover this run, with room for skewed clocks.
		NotBefore: now.Add(-48 * time.Hour),
		NotAfter:  now.Add(365 * 24 * time.Hour),
		KeyUsage:  x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{
			x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth,
		},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("link certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("link certificate: %w", err)
	}
	return &identity{
		cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		fp:   Fingerprint(leaf.RawSubjectPublicKeyInfo),
	}, nil
}

// Fingerprint names a public key the OpenSSH way: "SHA256:" and the
// unpadded base64 of the SHA-256 of its DER SubjectPublicKeyInfo.
func Fingerprint(spki []byte) string {
	sum := sha256.Sum256(spki)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// ErrPeerKey is wrapped by the error of a link whose peer did not prove
// the link key the server named: someone else answered (or the ticket
// came without a key). Retrying that path will not help.
var ErrPeerKey = errors.New("the peer does not hold the link key the server gave")

// secure runs the TLS handshake on a link whose HELLO exchange is done,
// within timeout, and returns the link that reads and writes through TLS.
// Bytes the clear-text reader holds already (the peer's first TLS record
// may have come with its HELLO) are read by TLS first.
func (p *Peer) secure(ctx context.Context, l *Link, t Ticket, timeout time.Duration) (*Link, error) {
	if !protocol.ValidLinkKey(t.PeerKey) {
		return nil, fmt.Errorf("%w: the server gave no link key for %d", ErrPeerKey, t.Peer)
	}
	raw := l.conn
	if l.r.Buffered() > 0 {
		raw = &bufferedConn{Conn: l.conn, r: l.r}
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{p.id.cert},
		// Chains and names mean nothing here: the key is pinned.
		InsecureSkipVerify:     true,
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true, // every link is new; nothing to resume
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: it presented no certificate", ErrPeerKey)
			}
			if got := Fingerprint(cs.PeerCertificates[0].RawSubjectPublicKeyInfo); got != t.PeerKey {
				return fmt.Errorf("%w: it presented %s, the server said %s", ErrPeerKey, got, t.PeerKey)
			}
			return nil
		},
	}
	var tc *tls.Conn
	if t.Offerer {
		tc = tls.Client(raw, cfg)
	} else {
		tc = tls.Server(raw, cfg)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	l.conn.SetDeadline(time.Now().Add(timeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		if !errors.Is(err, ErrPeerKey) {
			// The side whose peer presented the wrong key has the
			// precise error; this side hears only an alert.
			err = fmt.Errorf("encrypting the link: %w", err)
		}
		return nil, err
	}
	// In TLS 1.3 the client's handshake is over before the server has
	// checked the client's key: the server says READY once it has, and
	// the client takes the link as up only then.
	s := newLink(tc, timeout)
	if t.Offerer {
		if _, _, err := s.expect("READY"); err != nil {
			// An alert here: the peer did not take our key.
			return nil, fmt.Errorf("encrypting the link: %w", err)
		}
	} else if err := s.send("READY"); err != nil {
		return nil, fmt.Errorf("encrypting the link: %w", err)
	}
	l.conn.SetDeadline(time.Time{})
	s.SetIdle(l.idle)
	s.Path, s.Via, s.How, s.Peer, s.Ticket, s.Offerer = l.Path, l.Via, l.How, l.Peer, l.Ticket, l.Offerer
	return s, nil
}

// bufferedConn reads first what a bufio.Reader already holds of the
// connection, then the connection itself.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(b)
		}
		c.r = nil
	}
	return c.Conn.Read(b)
}
