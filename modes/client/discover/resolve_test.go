package discover

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"qchat/modes/client"
	"qchat/protocol"
)

func TestResolveOneServer(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.server("instance1", 4100, fpA, "lab")
	keys := &client.ServerKeys{File: filepath.Join(t.TempDir(), "known_servers")}
	s, found, err := Resolve(context.Background(), Options{Config: l.config(), Keys: keys})
	if err != nil || s.Addr() != "127.0.0.1:4100" || len(found) != 1 {
		t.Fatalf("resolved %+v, %+v, %v", s, found, err)
	}
	if keys.FirstContact == nil {
		t.Fatal("no first-contact rule set for a discovered server")
	}
}

// Several servers: piped, an error that lists them (names escaped); at
// a terminal, the person chooses.
func TestResolveSeveral(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.server("instance1", 4100, fpA, "alpha")
	l.serve(func(nonce string) []reply { // a hostile name, as no qchat server would send it
		return []reply{{b: []byte("QCHAT-SERVER 1 " + nonce + " instance2 4200 qchat/1 " + fpB + " beta\x1b[31m\n")}}
	})

	_, found, err := Resolve(context.Background(), Options{Config: l.config()})
	var several *SeveralError
	if !errors.As(err, &several) || len(several.Servers) != 2 || len(found) != 2 {
		t.Fatalf("piped: %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "1) alpha at 127.0.0.1:4100 ("+fpA+")") || !strings.Contains(msg, `2) beta\x1b[31m at 127.0.0.1:4200`) ||
		strings.Contains(msg, "\x1b") {
		t.Fatalf("list:\n%s", msg)
	}

	var out bytes.Buffer
	p := &Prompt{In: strings.NewReader("7\nsecond\n2\nafter\n"), Out: &out}
	s, _, err := Resolve(context.Background(), Options{Config: l.config(), Prompt: p})
	if err != nil || s.Port != 4200 {
		t.Fatalf("chosen %+v, %v\n%s", s, err, out.String())
	}
	if rest, _ := bufio.NewReader(p.In).ReadString('\n'); rest != "after\n" {
		t.Errorf("the prompt read past its answer: %q left", rest)
	}
	if strings.Count(out.String(), "is not one of the numbers") != 2 || strings.Contains(out.String(), "\x1b") {
		t.Errorf("prompt:\n%s", out.String())
	}
	_, _, err = Resolve(context.Background(), Options{Config: l.config(), Prompt: &Prompt{In: strings.NewReader("\n"), Out: new(bytes.Buffer)}})
	if !errors.Is(err, ErrNoChoice) {
		t.Fatalf("no choice: %v", err)
	}
}

// --server-fingerprint leaves out the servers that announced another key.
func TestResolvePinnedFingerprintFilters(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.server("instance1", 4100, fpA, "alpha")
	l.server("instance2", 4200, fpB, "beta")
	s, _, err := Resolve(context.Background(), Options{Config: l.config(), Keys: &client.ServerKeys{Fingerprints: []string{fpB}}})
	if err != nil || s.Name != "beta" {
		t.Fatalf("pinned: %+v, %v", s, err)
	}
	l2 := newLab(t)
	l2.server("instance1", 4100, fpA, "alpha")
	_, _, err = Resolve(context.Background(), Options{Config: l2.config(), Keys: &client.ServerKeys{Fingerprints: []string{fpB}}})
	var none *NoServerError
	if !errors.As(err, &none) || !strings.Contains(err.Error(), "announced another key") {
		t.Fatalf("pinned, no match: %v", err)
	}
}

func TestResolveNoneAndOtherProtocols(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	_, _, err := Resolve(context.Background(), Options{Config: l.config()})
	var none *NoServerError
	if !errors.As(err, &none) || !strings.Contains(err.Error(), "no qchat server answered on the LAN within 300ms") {
		t.Fatalf("none: %v", err)
	}
	l.serve(func(nonce string) []reply {
		b, _ := protocol.AppendDiscoverAnswer(nil, protocol.Announcement{Nonce: nonce, Instance: "instance1", Port: 4100, Proto: "qchat/2", Name: "future"})
		return []reply{{b: b}}
	})
	_, _, err = Resolve(context.Background(), Options{Config: l.config()})
	if !errors.As(err, &none) || !strings.Contains(err.Error(), "speaks qchat/2") {
		t.Fatalf("other protocol: %v", err)
	}
}

// Run prints for people on stderr and, under --json, the discovery
// objects on stdout; several servers piped end with status 2.
func TestRunOutput(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.server("instance1", 4100, fpA, "alpha")
	var stdout, stderr bytes.Buffer
	out := client.NewPrinter(&stdout, true)
	addr, status := Run(context.Background(), Options{Config: l.config()}, out, &stderr, "qchat recv")
	if addr != "127.0.0.1:4100" || status != 0 {
		t.Fatalf("Run = %q, %d", addr, status)
	}
	if !strings.Contains(stderr.String(), "qchat recv: found alpha at 127.0.0.1:4100") {
		t.Errorf("stderr %q", stderr.String())
	}
	var rec struct {
		Type, Time, Server string
		Servers            []map[string]any
	}
	if err := json.Unmarshal(stdout.Bytes(), &rec); err != nil || rec.Type != "discovery" || rec.Time == "" || rec.Server != "127.0.0.1:4100" ||
		len(rec.Servers) != 1 || rec.Servers[0]["fingerprint"] != fpA || rec.Servers[0]["name"] != "alpha" {
		t.Fatalf("JSON %s (%v)", stdout.String(), err)
	}

	l.server("instance2", 4200, fpB, "beta")
	stdout.Reset()
	stderr.Reset()
	if _, status := Run(context.Background(), Options{Config: l.config()}, out, &stderr, "qchat recv"); status != 2 {
		t.Fatalf("several: status %d", status)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"type":"discovery"`) || strings.Contains(lines[0], `"server"`) ||
		!strings.Contains(lines[1], `"type":"error"`) || !strings.Contains(lines[1], `"code":"several-servers"`) {
		t.Fatalf("JSON:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "qchat recv: 2 qchat servers answered on the LAN; say which with --server:\n  1) alpha") {
		t.Fatalf("stderr:\n%s", stderr.String())
	}
}

// A fake server on the LAN answers in the name of the real one, with the
// real one's key; it cannot present that key, so the client refuses it
// inside the TLS handshake and no password ever reaches it. An honest
// answer with an unknown key is refused piped, and taken at a terminal
// only when the person says yes.
func TestSpoofedAnswerGetsNoPassword(t *testing.T) {
	t.Parallel()
	_, realFP := newCert(t)
	fake, fakeFP := newCert(t)
	thief := newTLSServer(t, fake)
	file := filepath.Join(t.TempDir(), "known_servers")
	os.WriteFile(file, []byte("10.0.0.5:4000 "+realFP+"\n"), 0o600)

	l := newLab(t)
	l.server("instance1", thief.port(), realFP, "office")
	keys := &client.ServerKeys{File: file, Notify: new(bytes.Buffer)}
	s, _, err := Resolve(context.Background(), Options{Config: l.config(), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Dial(context.Background(), s.Addr(), client.Options{DialTimeout: 10 * time.Second, Keys: keys})
	var ke *client.ServerKeyError
	if !errors.As(err, &ke) || !errors.Is(err, client.ErrServerKeyUnknown) || !strings.Contains(ke.Why, "announced the key "+realFP+" but presented "+fakeFP) {
		t.Fatalf("spoofed answer: %v", err)
	}
	if !client.IsFinal(err) {
		t.Fatal("the refusal is retried")
	}
	if got := thief.result(t); got.handshake == nil || got.lines != "" {
		t.Fatalf("the fake server got a handshake (%v) and lines %q", got.handshake, got.lines)
	}
	if b, _ := os.ReadFile(file); strings.Contains(string(b), fakeFP) {
		t.Fatal("the fake key was remembered")
	}

	// Honest about its own key, which nobody here knows: refused piped...
	l2 := newLab(t)
	l2.server("instance2", thief.port(), fakeFP, "office")
	keys = &client.ServerKeys{File: file, Notify: new(bytes.Buffer)}
	s, _, _ = Resolve(context.Background(), Options{Config: l2.config(), Keys: keys})
	_, err = client.Dial(context.Background(), s.Addr(), client.Options{DialTimeout: 10 * time.Second, Keys: keys})
	if !errors.As(err, &ke) || !strings.Contains(ke.Why, "not in known_servers") || !strings.Contains(ke.Warning(), "--server-fingerprint "+fakeFP) {
		t.Fatalf("unknown key, piped: %v", err)
	}
	thief.result(t)
	// ... and at a terminal, refused on "no", taken on "yes".
	for _, answer := range []string{"n\n", "yes\n"} {
		var out bytes.Buffer
		keys = &client.ServerKeys{File: file, Notify: new(bytes.Buffer)}
		s, _, _ = Resolve(context.Background(), Options{Config: l2.config(), Keys: keys, Prompt: &Prompt{In: strings.NewReader(answer), Out: &out}})
		c, err := client.Dial(context.Background(), s.Addr(), client.Options{DialTimeout: 10 * time.Second, Keys: keys})
		if !strings.Contains(out.String(), fakeFP) || !strings.Contains(out.String(), "qchat serve --fingerprint") {
			t.Errorf("question:\n%s", out.String())
		}
		if answer == "n\n" {
			if !errors.As(err, &ke) || !strings.Contains(ke.Why, "not accepted") {
				t.Fatalf("said no: %v", err)
			}
			thief.result(t)
			continue
		}
		if err != nil {
			t.Fatalf("said yes: %v", err)
		}
		c.Close()
		thief.result(t)
		if b, _ := os.ReadFile(file); !strings.Contains(string(b), s.Addr()+" "+fakeFP) {
			t.Fatalf("accepted key not remembered: %q", b)
		}
	}
}

func TestTrustKnownElsewhere(t *testing.T) {
	t.Parallel()
	s := Server{Name: "office", Fingerprint: fpA}
	rule := Trust(s, NotAsked)
	if err := rule("10.0.0.7:4000", fpA, []string{"10.0.0.5:4000"}); err != nil {
		t.Fatalf("known key at a new address: %v", err)
	}
	if err := rule("10.0.0.7:4000", fpB, []string{"10.0.0.5:4000"}); err == nil {
		t.Fatal("a key other than the announced one taken")
	}
	// A server without TLS announces no key: what it presents (a proxy's?)
	// must still be known, even after a yes (to no key).
	for _, said := range []Answer{NotAsked, Yes, No} {
		if err := Trust(Server{}, said)("10.0.0.7:4000", fpB, nil); err == nil {
			t.Fatalf("unknown key taken (answer %d)", said)
		}
	}
	if err := Trust(s, Yes)("10.0.0.7:4000", fpA, nil); err != nil {
		t.Fatalf("the key the person said yes to: %v", err)
	}
}

func newCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, protocol.Fingerprint(leaf.RawSubjectPublicKeyInfo)
}

// tlsServer plays a qchat server: greeting, STARTTLS, the handshake with
// its certificate, then it records every line it reads.
type tlsServer struct {
	ln      net.Listener
	results chan tlsResult
}

type tlsResult struct {
	handshake error
	lines     string
}

func newTLSServer(t *testing.T, cert tls.Certificate) *tlsServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{ln: ln, results: make(chan tlsResult, 8)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.Write([]byte("220 office qchat/1 ready cid\r\n"))
				rd := bufio.NewReader(c)
				if l, _ := rd.ReadString('\n'); strings.TrimSpace(l) != "STARTTLS" {
					s.results <- tlsResult{handshake: errors.New("no STARTTLS: " + l)}
					return
				}
				c.Write([]byte("234 go ahead\r\n"))
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
				if err := tc.Handshake(); err != nil {
					s.results <- tlsResult{handshake: err}
					return
				}
				tc.Write([]byte("220 office qchat/1 ready cid\r\n")) // the greeting again, inside TLS
				// The client closes after the handshake in these tests:
				// whatever it sent first is what a thief would keep.
				tc.SetReadDeadline(time.Now().Add(time.Second))
				var lines bytes.Buffer
				buf := make([]byte, 512)
				for {
					n, err := tc.Read(buf)
					lines.Write(buf[:n])
					if err != nil {
						break
					}
				}
				s.results <- tlsResult{lines: lines.String()}
			}()
		}
	}()
	return s
}

func (s *tlsServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *tlsServer) result(t *testing.T) tlsResult {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the fake server saw no connection")
		return tlsResult{}
	}
}
