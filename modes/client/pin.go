package client

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"qchat/history"
	"qchat/protocol"
)

// Server keys are checked the ssh way (StrictHostKeyChecking=accept-new):
// a certificate that a CA the system trusts issued for the host name
// dialed needs nothing more; any other key is looked up by the address as
// dialed in known_servers, one "host:port SHA256:..." line each. The first
// key seen for an address is remembered (and the user told once); a
// different key later is refused, loudly.

// ErrServerKeyChanged is (wrapped in a *ServerKeyError) a server key that
// is not the one remembered in known_servers or pinned with
// --server-fingerprint: a man in the middle, or a server whose key was
// changed. Never retry it.
var ErrServerKeyChanged = errors.New("server key changed")

// ErrServerKeyUnknown is (wrapped in a *ServerKeyError) a server key not
// in known_servers when unknown keys are refused (--strict-server). Never
// retry it.
var ErrServerKeyUnknown = errors.New("server key unknown")

// KnownServersFile is the name of the file of remembered server keys, in
// history.Root().
const KnownServersFile = "known_servers"

// ServerKeys decides whether a server's key is the right one. Set its
// fields before the first use; after that it is safe for concurrent use,
// and keys accepted once are accepted again without reading the file.
type ServerKeys struct {
	// Fingerprints (--server-fingerprint) are the only keys accepted
	// (no file, no CA), from any of the servers: one each, or one they
	// share.
	Fingerprints []string
	Strict       bool           // --strict-server: refuse a key known neither by the file nor a CA
	File         string         // "" for history.Root()/known_servers
	Notify       io.Writer      // hears the first-contact note and warnings; nil for os.Stderr
	Roots        *x509.CertPool // nil for the system's (SSL_CERT_FILE, SSL_CERT_DIR)
	// FirstContact, when set, decides about a key for an address that
	// known_servers does not hold, before it is remembered: an error
	// refuses it (a *ServerKeyError that says why). knownAt are the
	// addresses known_servers holds that key for. Discovery sets it: an
	// address that came from an unauthenticated broadcast must not be
	// trusted on first sight (modes/client/discover).
	FirstContact func(addr, fp string, knownAt []string) error

	mu      sync.Mutex
	trusted map[string]string // address → fingerprint accepted during this run
}

// ServerKeyError is a server key refused; it wraps ErrServerKeyChanged or
// ErrServerKeyUnknown. Warning is what to show the user.
type ServerKeyError struct {
	Kind   error  // ErrServerKeyChanged or ErrServerKeyUnknown
	Addr   string // the server's address, as dialed
	Got    string // the fingerprint of the key the server sent
	Want   string // the fingerprint expected ("" when unknown)
	File   string // the known_servers file ("" when pinned by flag)
	Line   int    // the line of File that holds Want
	Pinned bool   // Want came from --server-fingerprint
	Why    string // ErrServerKeyUnknown refused by FirstContact (discovery): why
}

func (e *ServerKeyError) Unwrap() error { return e.Kind }

func (e *ServerKeyError) Error() string {
	switch {
	case errors.Is(e.Kind, ErrServerKeyUnknown) && e.Why != "":
		return fmt.Sprintf("%s: %v: %s", e.Addr, e.Kind, e.Why)
	case errors.Is(e.Kind, ErrServerKeyUnknown):
		return fmt.Sprintf("%s: %v: %s is not in %s (--strict-server)", e.Addr, e.Kind, e.Got, e.File)
	case e.Pinned:
		return fmt.Sprintf("%s: %v: it sent %s, --server-fingerprint says %s", e.Addr, e.Kind, e.Got, e.Want)
	}
	return fmt.Sprintf("%s: %v: it sent %s, %s:%d has %s", e.Addr, e.Kind, e.Got, e.File, e.Line, e.Want)
}

// Warning is the refusal as the user should read it (ssh-style, several
// lines): what happened, what it may mean, what to do.
func (e *ServerKeyError) Warning() string {
	var b strings.Builder
	if errors.Is(e.Kind, ErrServerKeyUnknown) && e.Why != "" {
		fmt.Fprintf(&b, "The server found on the LAN at %s was not trusted: %s.\n", e.Addr, e.Why)
		b.WriteString("Anyone on the LAN can answer discovery, so a key this machine has not seen is not taken on first sight.\n")
		fmt.Fprintf(&b, "Check the fingerprint with the server's admin (qchat serve --fingerprint), then connect with\n")
		fmt.Fprintf(&b, "  --server-fingerprint %s\nor give the address yourself (--server %s).\nNo password was sent.", e.Got, e.Addr)
		return b.String()
	}
	if errors.Is(e.Kind, ErrServerKeyUnknown) {
		fmt.Fprintf(&b, "The server at %s has a key this machine does not know (%s), and --strict-server refuses unknown keys.\n", e.Addr, e.Got)
		fmt.Fprintf(&b, "Check that fingerprint with the server's admin (qchat serve --fingerprint), then connect with\n")
		fmt.Fprintf(&b, "  --server-fingerprint %s\nor add this line to %s:\n  %s %s\nNo password was sent.", e.Got, e.File, e.Addr, e.Got)
		return b.String()
	}
	b.WriteString("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n")
	if e.Pinned {
		b.WriteString("@   WARNING: THE SERVER'S KEY IS NOT THE ONE YOU PINNED!  @\n")
	} else {
		b.WriteString("@    WARNING: THE SERVER'S KEY HAS CHANGED!               @\n")
	}
	b.WriteString("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n")
	b.WriteString("IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n")
	b.WriteString("Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n")
	b.WriteString("It is also possible that the server's key has just been changed.\n")
	fmt.Fprintf(&b, "The key the server at %s sent has the fingerprint\n  %s\n", e.Addr, e.Got)
	if e.Pinned {
		fmt.Fprintf(&b, "but --server-fingerprint says\n  %s\n", strings.ReplaceAll(e.Want, ",", " or\n  "))
		b.WriteString("Ask the server's admin for the right one (qchat serve --fingerprint).\n")
	} else {
		fmt.Fprintf(&b, "but this machine remembers\n  %s\nin %s:%d\n", e.Want, e.File, e.Line)
		b.WriteString("Ask the server's admin for the right one (qchat serve --fingerprint).\n")
		fmt.Fprintf(&b, "If the admin changed the key, remove line %d from %s, for example with\n", e.Line, e.File)
		fmt.Fprintf(&b, "  sed -i '%dd' %s\nand connect again.\n", e.Line, shellQuote(e.File))
	}
	fmt.Fprintf(&b, "Refused to log in to %s: no password was sent.", e.Addr)
	return b.String()
}

// shellQuote quotes a path for a command line to copy, when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Config is the TLS configuration to reach the server at addr (host:port,
// as dialed): TLS 1.3, and the server's key checked by Check.
func (k *ServerKeys) Config(addr string) *tls.Config {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	c := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// X25519 alone, not Go's default hybrid X25519MLKEM768: its 1.2 KB
		// key share makes a ClientHello whose buffers the server keeps for
		// the whole connection (measured with qchat bench --clients 5000:
		// +3.4 KiB per idle connection over clear text with X25519, +6.1
		// KiB with the hybrid). The server accepts both.
		CurvePreferences: []tls.CurveID{tls.X25519},
		// The chain is checked by VerifyConnection: a CA, or a pinned key.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return k.Check(addr, cs.PeerCertificates)
		},
	}
	if net.ParseIP(host) == nil {
		c.ServerName = host
	}
	return c
}

// Check accepts or refuses the certificate chain the server at addr sent.
// It returns a *ServerKeyError for a key it refuses.
func (k *ServerKeys) Check(addr string, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("the server sent no certificate")
	}
	fp := protocol.Fingerprint(chain[0].RawSubjectPublicKeyInfo)
	if len(k.Fingerprints) > 0 {
		if k.Pins(fp) {
			return nil
		}
		return &ServerKeyError{Kind: ErrServerKeyChanged, Addr: addr, Got: fp, Want: strings.Join(k.Fingerprints, ","), Pinned: true}
	}
	if k.issuedByCA(addr, chain) {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.trusted[addr] == fp {
		return nil
	}
	if err := k.checkFile(addr, fp); err != nil {
		return err
	}
	if k.trusted == nil {
		k.trusted = make(map[string]string)
	}
	k.trusted[addr] = fp
	return nil
}

// Pins reports whether fp is one of the keys pinned with
// --server-fingerprint.
func (k *ServerKeys) Pins(fp string) bool { return slices.Contains(k.Fingerprints, fp) }

// issuedByCA reports whether a CA the system trusts (or Roots) issued the
// certificate for the host of addr.
func (k *ServerKeys) issuedByCA(addr string, chain []*x509.Certificate) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" { // no name to check: x509 would check none
		return false
	}
	opts := x509.VerifyOptions{DNSName: host, Roots: k.Roots, Intermediates: x509.NewCertPool()}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err = chain[0].Verify(opts)
	return err == nil
}

func (k *ServerKeys) notify() io.Writer {
	if k.Notify != nil {
		return k.Notify
	}
	return os.Stderr
}

func (k *ServerKeys) file() (string, error) {
	if k.File != "" {
		return k.File, nil
	}
	root, err := history.Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, KnownServersFile), nil
}

// knownKey is a line of known_servers for one address.
type knownKey struct {
	fp   string
	line int
}

// readKnown returns the lines of known_servers for addr. Lines are
// "host:port SHA256:..."; blank lines, lines starting with # and lines
// it cannot read are skipped.
func readKnown(r io.Reader, addr string) ([]knownKey, error) {
	var keys []knownKey
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if strings.EqualFold(f[0], addr) {
			keys = append(keys, knownKey{fp: f[1], line: n})
		}
	}
	return keys, sc.Err()
}

// checkFile looks fp up for addr in known_servers and remembers it when
// the address is new (unless Strict). Called with k.mu held.
func (k *ServerKeys) checkFile(addr, fp string) error {
	path, err := k.file()
	if err != nil && k.Strict {
		return &ServerKeyError{Kind: ErrServerKeyUnknown, Addr: addr, Got: fp, File: KnownServersFile}
	}
	if err != nil {
		if err := k.firstContact(addr, fp, nil, KnownServersFile); err != nil {
			return err
		}
		return k.unremembered(addr, fp, err)
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(k.notify(), "qchat: warning: cannot read %s: %v\n", path, err)
	}
	if err := match(addr, fp, path, bytes.NewReader(b)); !errors.Is(err, ErrServerKeyUnknown) {
		return err
	}
	if k.Strict {
		return &ServerKeyError{Kind: ErrServerKeyUnknown, Addr: addr, Got: fp, File: path}
	}
	if err := k.firstContact(addr, fp, holders(bytes.NewReader(b), fp), path); err != nil {
		return err
	}
	// First contact: append under a lock, looking again first, so that
	// clients started at once remember the key once and note it once.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return k.unremembered(addr, fp, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return k.unremembered(addr, fp, err)
	}
	defer f.Close()
	unlock := lockFile(f)
	defer unlock()
	now, err := io.ReadAll(f)
	if err != nil {
		return k.unremembered(addr, fp, err)
	}
	if err := match(addr, fp, path, bytes.NewReader(now)); !errors.Is(err, ErrServerKeyUnknown) {
		return err // someone else remembered it meanwhile
	}
	sep := "" // a last line without its line end (written by hand) keeps its own line
	if len(now) > 0 && now[len(now)-1] != '\n' {
		sep = "\n"
	}
	if _, err := fmt.Fprintf(f, "%s%s %s\n", sep, strings.ToLower(addr), fp); err != nil {
		return k.unremembered(addr, fp, err)
	}
	fmt.Fprintf(k.notify(), "qchat: first contact with %s: remembered its key %s in %s\n", addr, fp, path)
	return nil
}

// firstContact asks FirstContact, when set, about a new address.
func (k *ServerKeys) firstContact(addr, fp string, knownAt []string, path string) error {
	if k.FirstContact == nil {
		return nil
	}
	err := k.FirstContact(addr, fp, knownAt)
	if err == nil {
		return nil
	}
	var ke *ServerKeyError
	if errors.As(err, &ke) {
		return ke
	}
	return &ServerKeyError{Kind: ErrServerKeyUnknown, Addr: addr, Got: fp, File: path, Why: err.Error()}
}

// KnownAt lists the addresses known_servers holds the key fp for.
func (k *ServerKeys) KnownAt(fp string) []string {
	path, err := k.file()
	if err != nil {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	return holders(f, fp)
}

// holders lists the addresses of the lines of r that hold fp.
func holders(r io.Reader, fp string) []string {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && f[1] == fp {
			out = append(out, f[0])
		}
	}
	return out
}

// match checks fp against the lines of r for addr: nil when one holds it,
// a *ServerKeyError (changed) when others are there, ErrServerKeyUnknown
// when there are none.
func match(addr, fp, path string, r io.Reader) error {
	known, err := readKnown(r, addr)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	for _, kk := range known {
		if kk.fp == fp {
			return nil
		}
	}
	if len(known) > 0 {
		return &ServerKeyError{Kind: ErrServerKeyChanged, Addr: addr, Got: fp, Want: known[0].fp, File: path, Line: known[0].line}
	}
	return ErrServerKeyUnknown
}

// unremembered accepts a new key that could not be written down, and
// says so: the next connection will meet it as new again.
func (k *ServerKeys) unremembered(addr, fp string, err error) error {
	fmt.Fprintf(k.notify(), "qchat: warning: first contact with %s (key %s), but it could not be remembered: %v\n", addr, fp, err)
	return nil
}
