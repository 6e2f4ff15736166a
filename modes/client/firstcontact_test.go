package client

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FirstContact (set by discovery) decides about an address that
// known_servers does not hold; a refusal happens inside the handshake,
// before any password could be sent, and nothing is remembered.
func TestFirstContactHookRefuses(t *testing.T) {
	cert, fp := newCert(t, nil, false)
	s := newTLSServer(t, cert, "234 go ahead\r\n")
	file := filepath.Join(t.TempDir(), "known_servers")
	var asked []string
	keys := &ServerKeys{File: file, Notify: new(bytes.Buffer), FirstContact: func(addr, got string, knownAt []string) error {
		asked = append(asked, addr+" "+got)
		return errors.New("not on first sight")
	}}
	_, err := dialTLS(s.Addr(), keys)
	var ke *ServerKeyError
	if !errors.Is(err, ErrServerKeyUnknown) || !errors.As(err, &ke) || ke.Why != "not on first sight" || ke.Got != fp {
		t.Fatalf("refused by the hook: %v", err)
	}
	if !IsFinal(err) {
		t.Error("a key refused by the hook is retried")
	}
	if w := ke.Warning(); !strings.Contains(w, "found on the LAN") || !strings.Contains(w, "--server-fingerprint "+fp) ||
		!strings.Contains(w, "No password was sent") {
		t.Errorf("warning:\n%s", w)
	}
	if herr := s.handshake(t); herr == nil {
		t.Fatal("the handshake completed: the client should refuse inside it")
	}
	if !slices.Equal(asked, []string{s.Addr() + " " + fp}) {
		t.Fatalf("asked %q", asked)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("known_servers written for a refused key: %v", err)
	}
}

// The hook is told where the key is known already (a server that moved),
// and what it accepts is remembered as any first contact.
func TestFirstContactHookSeesWhereTheKeyIsKnown(t *testing.T) {
	cert, fp := newCert(t, nil, false)
	s := newTLSServer(t, cert, "234 go ahead\r\n")
	file := filepath.Join(t.TempDir(), "known_servers")
	os.WriteFile(file, []byte("# old address\n10.0.0.9:4000 "+fp+"\n10.0.0.8:4000 SHA256:other\n"), 0o600)
	var known []string
	keys := &ServerKeys{File: file, Notify: new(bytes.Buffer), FirstContact: func(addr, got string, knownAt []string) error {
		known = knownAt
		return nil
	}}
	c, err := dialTLS(s.Addr(), keys)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.handshake(t)
	if !slices.Equal(known, []string{"10.0.0.9:4000"}) {
		t.Fatalf("knownAt = %q", known)
	}
	if got := keys.KnownAt(fp); !slices.Equal(got, []string{"10.0.0.9:4000", s.Addr()}) {
		t.Fatalf("KnownAt after the contact = %q", got)
	}
}

// The hook is never asked about an address known_servers holds, nor
// when the key is pinned by flag: the rules of pin.go stay as they are.
func TestFirstContactHookOnlyForNewAddresses(t *testing.T) {
	cert, fp := newCert(t, nil, false)
	s := newTLSServer(t, cert, "234 go ahead\r\n")
	file := filepath.Join(t.TempDir(), "known_servers")
	refuse := func(addr, fp string, knownAt []string) error {
		t.Errorf("asked about %s", addr)
		return errors.New("no")
	}
	os.WriteFile(file, []byte(s.Addr()+" "+fp+"\n"), 0o600)
	for _, k := range []*ServerKeys{
		{File: file, FirstContact: refuse},
		{File: filepath.Join(t.TempDir(), "none"), Fingerprints: []string{fp}, FirstContact: refuse},
	} {
		c, err := dialTLS(s.Addr(), k)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		s.handshake(t)
	}
	// A changed key is refused as changed, whatever the hook would say.
	_, other := newCert(t, nil, false)
	os.WriteFile(file, []byte(s.Addr()+" "+other+"\n"), 0o600)
	_, err := dialTLS(s.Addr(), &ServerKeys{File: file, Notify: new(bytes.Buffer), FirstContact: func(string, string, []string) error { return nil }})
	if !errors.Is(err, ErrServerKeyChanged) {
		t.Fatalf("changed key with a hook that accepts: %v", err)
	}
}
