package client

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestFirstContactAfterALineWithoutNewline: a known_servers whose last
// line has no line end (written by hand, echo -n, an editor that adds
// none) keeps that line, and the new key goes on a line of its own. When
// it was appended to that line, the old server's key read as changed
// (a false alarm, and the advice to delete the pin), and the new address
// stayed unknown: the next connection took any key for it on first sight.
func TestFirstContactAfterALineWithoutNewline(t *testing.T) {
	certA, fpA := newCert(t, nil, false)
	certB, _ := newCert(t, nil, false)
	certC, _ := newCert(t, nil, false)
	file := filepath.Join(t.TempDir(), "known_servers")
	os.WriteFile(file, []byte("10.0.0.1:4000 "+fpA), 0o600)

	first := &ServerKeys{File: file, Notify: new(bytes.Buffer)}
	if err := first.Check("10.0.0.2:4000", []*x509.Certificate{certB.Leaf}); err != nil {
		t.Fatalf("first contact with 10.0.0.2: %v", err)
	}
	later := &ServerKeys{File: file, Notify: new(bytes.Buffer)} // another run
	if err := later.Check("10.0.0.1:4000", []*x509.Certificate{certA.Leaf}); err != nil {
		b, _ := os.ReadFile(file)
		t.Errorf("10.0.0.1's own key refused after a first contact with another server: %v\nknown_servers: %q", err, b)
	}
	if err := later.Check("10.0.0.2:4000", []*x509.Certificate{certC.Leaf}); !errors.Is(err, ErrServerKeyChanged) {
		b, _ := os.ReadFile(file)
		t.Errorf("another key for 10.0.0.2: %v, want ErrServerKeyChanged (its first key remembered)\nknown_servers: %q", err, b)
	}
}

// TestCAPathNeedsAHostName: an address without a host (":4000", this
// host) names nothing a certificate could be checked against: a CA's
// certificate for any other name must not pass as this server's. It
// did (x509 checks no name when given none), before any pin was looked
// at: a local user holding the port with a certificate for a domain of
// its own got the password.
func TestCAPathNeedsAHostName(t *testing.T) {
	ca, _ := newCert(t, nil, true)
	signed, fp := newCert(t, &ca, false) // for localhost and 127.0.0.1 only
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	file := filepath.Join(t.TempDir(), "known_servers")
	k := &ServerKeys{File: file, Strict: true, Roots: roots, Notify: new(bytes.Buffer)}
	if err := k.Check("localhost:4000", []*x509.Certificate{signed.Leaf}); err != nil {
		t.Fatalf("CA-signed for localhost, dialed as localhost: %v", err)
	}
	if err := k.Check(":4000", []*x509.Certificate{signed.Leaf}); !errors.Is(err, ErrServerKeyUnknown) {
		t.Errorf("CA-signed, dialed as :4000 under --strict-server: %v, want ErrServerKeyUnknown (%s is pinned nowhere)", err, fp)
	}
}
