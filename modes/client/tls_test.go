package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
)

// newCert makes a key and a certificate for it: self-signed, or signed
// by ca (then valid for 127.0.0.1 and localhost).
func newCert(t *testing.T, ca *tls.Certificate, isCA bool) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "qchat test"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if isCA {
		tpl.IsCA, tpl.BasicConstraintsValid, tpl.KeyUsage = true, true, x509.KeyUsageCertSign
	}
	parent, signer := tpl, any(key)
	if ca != nil {
		parent, signer = ca.Leaf, ca.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, protocol.Fingerprint(leaf.RawSubjectPublicKeyInfo)
}

// tlsServer plays a qchat server up to the TLS handshake: it greets,
// reads STARTTLS, writes reply (in one write), and after a 234 alone runs
// the handshake with cert. What each handshake ended with goes to shakes.
type tlsServer struct {
	*fakeserver.Server
	shakes   chan error
	greeting string // its first line inside TLS ("" for none)
}

// tlsGreeting is what a tlsServer says first inside TLS: not what it said
// in clear (fakeserver.Greeting), so that a test can tell which was used.
const tlsGreeting = "220 inside qchat/1 ready resume receipts\r\n"

func newTLSServer(t *testing.T, cert tls.Certificate, reply string) *tlsServer {
	t.Helper()
	s := &tlsServer{Server: fakeserver.New(t, fakeserver.Greeting), shakes: make(chan error, 16), greeting: tlsGreeting}
	go func() {
		for sc := range s.Conns() {
			go s.serve(sc, cert, reply)
		}
	}()
	return s
}

func (s *tlsServer) serve(sc *fakeserver.Conn, cert tls.Certificate, reply string) {
	c := sc.Raw()
	c.SetDeadline(time.Now().Add(fakeserver.Guard))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "STARTTLS" {
		s.shakes <- fmt.Errorf("client sent %q (%v), want STARTTLS", line, err)
		return
	}
	c.Write([]byte(reply))
	if reply != "234 go ahead\r\n" {
		return
	}
	tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	err = tc.Handshake()
	if err == nil && s.greeting != "" {
		tc.Write([]byte(s.greeting))
	}
	s.shakes <- err
}

// handshake returns how the server's next handshake ended.
func (s *tlsServer) handshake(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.shakes:
		return err
	case <-time.After(fakeserver.Guard):
		t.Fatal("no handshake")
		return nil
	}
}

func dialTLS(addr string, keys *ServerKeys) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fakeserver.Guard)
	defer cancel()
	return Dial(ctx, addr, Options{DialTimeout: fakeserver.Guard, Keys: keys})
}

func TestFirstContactRemembersTheKeyAndSaysSoOnce(t *testing.T) {
	cert, fp := newCert(t, nil, false)
	s := newTLSServer(t, cert, "234 go ahead\r\n")
	file := filepath.Join(t.TempDir(), "new", "known_servers")
	var note bytes.Buffer
	keys := &ServerKeys{File: file, Notify: &note}
	c, err := dialTLS(s.Addr(), keys)
	if err != nil {
		t.Fatalf("first contact: %v", err)
	}
	if got := c.ServerKey(); got != fp {
		t.Errorf("ServerKey() = %s, want %s", got, fp)
	}
	c.Close()
	if err := s.handshake(t); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if want := s.Addr() + " " + fp + "\n"; err != nil || string(b) != want {
		t.Fatalf("known_servers = %q (%v), want %q", b, err, want)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("known_servers is %v, want 0600", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Dir(file)); fi.Mode().Perm() != 0o700 {
		t.Errorf("its folder is %v, want 0700", fi.Mode().Perm())
	}
	want := fmt.Sprintf("qchat: first contact with %s: remembered its key %s in %s\n", s.Addr(), fp, file)
	if note.String() != want {
		t.Fatalf("note %q, want %q", note.String(), want)
	}
	// Again, in this run and in another one (a new ServerKeys): not a word.
	for _, k := range []*ServerKeys{keys, {File: file, Notify: &note}} {
		c, err := dialTLS(s.Addr(), k)
		if err != nil {
			t.Fatalf("known key: %v", err)
		}
		c.Close()
		s.handshake(t)
	}
	if note.String() != want {
		t.Fatalf("said more than once: %q", note.String())
	}
	if b2, _ := os.ReadFile(file); !bytes.Equal(b2, b) {
		t.Fatalf("known_servers changed to %q", b2)
	}
}

func TestChangedKeyIsRefusedSSHStyle(t *testing.T) {
	cert, fp := newCert(t, nil, false)
	_, old := newCert(t, nil, false)
	s := newTLSServer(t, cert, "234 go ahead\r\n")
	file := filepath.Join(t.TempDir(), "known_servers")
	content := "# servers\n10.0.0.1:4000 " + fp + "\n" + s.Addr() + " " + old + "\n"
	os.WriteFile(file, []byte(content), 0o600)
	_, err := dialTLS(s.Addr(), &ServerKeys{File: file, Notify: new(bytes.Buffer)})
	if !errors.Is(err, ErrServerKeyChanged) {
		t.Fatalf("changed key: %v, want ErrServerKeyChanged", err)
	}
	var ke *ServerKeyError
	if !errors.As(err, &ke) || ke.Line != 3 || ke.Got != fp || ke.Want != old {
		t.Fatalf("error %#v", err)
	}
	if short := err.Error(); strings.Contains(short, "\n") || !strings.Contains(short, file+":3") {
		t.Errorf("Error() = %q, want one line naming %s:3", short, file)
	}
	msg := ke.Warning()
	for _, want := range []string{
		"WARNING: THE SERVER'S KEY HAS CHANGED!", "man-in-the-middle", fp, old,
		file + ":3", "sed -i '3d' " + file, "no password was sent",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the warning lacks %q:\n%s", want, msg)
		}
	}
	if herr := s.handshake(t); herr == nil {
		t.Fatal("the server saw a complete handshake: the client should have refused inside it")
	}
	if b, _ := os.ReadFile(file); string(b) != content {
		t.Fatalf("known_servers changed to %q", b)
	}
}

func TestStrictServerRefusesAnUnknownKey(t *testing.T) {
	cert, fp := newCert(t, nil, false)
	s := newTLSServer(t, cert, "234 go ahead\r\n")
	file := filepath.Join(t.TempDir(), "known_servers")
	_, err := dialTLS(s.Addr(), &ServerKeys{File: file, Strict: true, Notify: new(bytes.Buffer)})
	if !errors.Is(err, ErrServerKeyUnknown) {
		t.Fatalf("strict, unknown key: %v, want ErrServerKeyUnknown", err)
	}
	if !errors.As(err, new(*ServerKeyError)) || !strings.Contains(err.(*ServerKeyError).Warning(), "--server-fingerprint "+fp) {
		t.Errorf("the refusal does not say how to pin the key:\n%v", err)
	}
	if _, serr := os.Stat(file); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("strict mode wrote known_servers: %v", serr)
	}
	s.handshake(t)
	// Known, it is taken.
	os.WriteFile(file, []byte(s.Addr()+" "+fp+"\n"), 0o600)
	c, err := dialTLS(s.Addr(), &ServerKeys{File: file, Strict: true})
	if err != nil {
		t.Fatalf("strict, known key: %v", err)
	}
	c.Close()
}

func TestPinnedFingerprint(t *testing.T) {
	cert, fp := newCert(t, nil, false)
	_, other := newCert(t, nil, false)
	s := newTLSServer(t, cert, "234 go ahead\r\n")
	file := filepath.Join(t.TempDir(), "known_servers")
	os.WriteFile(file, []byte(s.Addr()+" "+other+"\n"), 0o600) // the pin wins over the file
	c, err := dialTLS(s.Addr(), &ServerKeys{Fingerprints: []string{fp}, File: file})
	if err != nil {
		t.Fatalf("pinned, right key: %v", err)
	}
	c.Close()
	s.handshake(t)
	_, err = dialTLS(s.Addr(), &ServerKeys{Fingerprints: []string{other}, File: file})
	var ke *ServerKeyError
	if !errors.Is(err, ErrServerKeyChanged) || !errors.As(err, &ke) || !ke.Pinned {
		t.Fatalf("pinned, wrong key: %v", err)
	}
	if w := ke.Warning(); !strings.Contains(w, "NOT THE ONE YOU PINNED") || !strings.Contains(w, "--server-fingerprint") {
		t.Errorf("warning:\n%s", w)
	}

	// Several servers: the key must be one of the pinned ones.
	_, third := newCert(t, nil, false)
	s.handshake(t)
	c, err = dialTLS(s.Addr(), &ServerKeys{Fingerprints: []string{other, fp}, File: file})
	if err != nil {
		t.Fatalf("pinned among several, right key: %v", err)
	}
	c.Close()
	s.handshake(t)
	_, err = dialTLS(s.Addr(), &ServerKeys{Fingerprints: []string{other, third}, File: file})
	if !errors.As(err, &ke) || !ke.Pinned || ke.Got != fp {
		t.Fatalf("none of several pinned: %v", err)
	}
	if w := ke.Warning(); !strings.Contains(w, "--server-fingerprint says\n  "+other+" or\n  "+third+"\n") {
		t.Errorf("warning:\n%s", w)
	}
}

func TestServerRefusingSTARTTLSIsRefused(t *testing.T) {
	cert, _ := newCert(t, nil, false)
	for _, reply := range []string{"502 this server does not offer TLS\r\n", "500 unknown command STARTTLS\r\n"} {
		s := newTLSServer(t, cert, reply)
		_, err := dialTLS(s.Addr(), &ServerKeys{File: filepath.Join(t.TempDir(), "ks")})
		if !errors.Is(err, ErrTLSRefused) || !strings.Contains(err.Error(), "--no-tls") {
			t.Errorf("reply %q: %v, want ErrTLSRefused naming --no-tls", reply, err)
		}
	}
	// With NoTLS the client never asks (the fake server takes no STARTTLS).
	s := fakeserver.New(t, fakeserver.Greeting)
	c, err := Dial(context.Background(), s.Addr(), Options{DialTimeout: fakeserver.Guard, NoTLS: true})
	if err != nil {
		t.Fatalf("NoTLS: %v", err)
	}
	if c.ServerKey() != "" {
		t.Errorf("ServerKey in clear = %q", c.ServerKey())
	}
	c.Close()
}

// TestBytesAfter234AreRefused: whatever follows the 234 in clear was not
// said by the server over TLS (someone injected it): refuse.
func TestBytesAfter234AreRefused(t *testing.T) {
	cert, _ := newCert(t, nil, false)
	s := newTLSServer(t, cert, "234 go ahead\r\nMSG 9 1000 mallory 2026-11-22T10:00:00.000Z injected\r\n")
	_, err := dialTLS(s.Addr(), &ServerKeys{File: filepath.Join(t.TempDir(), "ks")})
	if !errors.Is(err, ErrTLSInjected) {
		t.Fatalf("bytes after 234: %v, want ErrTLSInjected", err)
	}
}

// TestGreetingInsideTLSIsTheOneBelieved: the server's name and extensions
// come from the greeting it sends inside TLS, not the one in clear that
// anyone on the path could have written.
func TestGreetingInsideTLSIsTheOneBelieved(t *testing.T) {
	cert, _ := newCert(t, nil, false)
	s := newTLSServer(t, cert, "234 go ahead\r\n")
	c, err := dialTLS(s.Addr(), &ServerKeys{File: filepath.Join(t.TempDir(), "ks"), Notify: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Server() != "inside" || !c.CanResume() {
		t.Fatalf("server %q, resume %v: taken from the greeting in clear (%q), want those inside TLS (%q)",
			c.Server(), c.CanResume(), fakeserver.Greeting, tlsGreeting)
	}
}

// TestNoGreetingInsideTLSIsRefused: a server that says nothing (or not its
// greeting) first inside TLS is not a qchat server of this version, or
// not the one greeted in clear.
func TestNoGreetingInsideTLSIsRefused(t *testing.T) {
	cert, _ := newCert(t, nil, false)
	for _, first := range []string{"", "200 pong\r\n"} {
		s := newTLSServer(t, cert, "234 go ahead\r\n")
		s.greeting = first
		ctx, cancel := context.WithTimeout(context.Background(), fakeserver.Guard)
		_, err := Dial(ctx, s.Addr(), Options{DialTimeout: time.Second, Keys: &ServerKeys{File: filepath.Join(t.TempDir(), "ks"), Notify: io.Discard}})
		cancel()
		if !errors.Is(err, ErrNoTLSGreeting) {
			t.Fatalf("first line inside TLS %q: %v, want ErrNoTLSGreeting", first, err)
		}
	}
}

func TestUnwritableKnownServersWarnsAndGoesOn(t *testing.T) {
	cert, fp := newCert(t, nil, false)
	s := newTLSServer(t, cert, "234 go ahead\r\n")
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o600)
	var note bytes.Buffer
	c, err := dialTLS(s.Addr(), &ServerKeys{File: filepath.Join(notDir, "known_servers"), Notify: &note})
	if err != nil {
		t.Fatalf("unwritable known_servers: %v", err)
	}
	c.Close()
	if !strings.Contains(note.String(), "could not be remembered") || !strings.Contains(note.String(), fp) {
		t.Fatalf("warning %q", note.String())
	}
}

// TestFirstContactAtOnce: clients that meet a server at the same moment
// (two processes, here two ServerKeys) write its key once.
func TestFirstContactAtOnce(t *testing.T) {
	cert, _ := newCert(t, nil, false)
	s := newTLSServer(t, cert, "234 go ahead\r\n")
	file := filepath.Join(t.TempDir(), "known_servers")
	var notes fakeserver.Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialTLS(s.Addr(), &ServerKeys{File: file, Notify: &notes})
			if err != nil {
				t.Error(err)
				return
			}
			c.Close()
		}()
	}
	wg.Wait()
	b, _ := os.ReadFile(file)
	if n := strings.Count(string(b), "\n"); n != 1 {
		t.Fatalf("known_servers holds %d lines:\n%s", n, b)
	}
	if n := strings.Count(notes.String(), "first contact"); n != 1 {
		t.Fatalf("%d first-contact notes:\n%s", n, notes.String())
	}
}

// TestCAVerifiedCertNeedsNoPin: a certificate that a CA of the system
// roots (here SSL_CERT_FILE) issued for the host dialed is taken without
// known_servers; a self-signed one at the same time is pinned. The system
// roots are read once per process, so this runs in a child process.
func TestCAVerifiedCertNeedsNoPin(t *testing.T) {
	if os.Getenv("QCHAT_TEST_CA_CHILD") == "" {
		ca, _ := newCert(t, nil, true)
		dir := t.TempDir()
		caFile := filepath.Join(dir, "ca.pem")
		os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate[0]}), 0o600)
		keyDER, _ := x509.MarshalPKCS8PrivateKey(ca.PrivateKey)
		keyFile := filepath.Join(dir, "ca.key")
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCAVerifiedCertNeedsNoPin$", "-test.v")
		cmd.Env = append(os.Environ(), "QCHAT_TEST_CA_CHILD="+keyFile, "SSL_CERT_FILE="+caFile, "SSL_CERT_DIR=")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestCAVerifiedCertNeedsNoPin") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	caPair, err := tls.LoadX509KeyPair(strings.TrimSuffix(os.Getenv("QCHAT_TEST_CA_CHILD"), ".key")+".pem", os.Getenv("QCHAT_TEST_CA_CHILD"))
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := newCert(t, &caPair, false)
	self, selfFP := newCert(t, nil, false)
	file := filepath.Join(t.TempDir(), "known_servers")
	var note bytes.Buffer
	for _, host := range []string{"127.0.0.1", "localhost"} {
		s := newTLSServer(t, signed, "234 go ahead\r\n")
		_, port, _ := net.SplitHostPort(s.Addr())
		c, err := dialTLS(net.JoinHostPort(host, port), &ServerKeys{File: file, Strict: true, Notify: &note})
		if err != nil {
			t.Fatalf("CA-signed for %s: %v", host, err)
		}
		c.Close()
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) || note.Len() > 0 {
		t.Fatalf("a CA-verified key was pinned (%v) or noted (%q)", err, note.String())
	}
	s := newTLSServer(t, self, "234 go ahead\r\n")
	c, err := dialTLS(s.Addr(), &ServerKeys{File: file, Notify: &note})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if b, _ := os.ReadFile(file); !strings.Contains(string(b), selfFP) {
		t.Fatalf("the self-signed key was not pinned: %q", b)
	}
}
