package serve

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
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
)

// farAddr is where the connections of fromAfar seem to come from: a host
// on the LAN, not this one.
var farAddr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}

// fromAfar makes every connection the server accepts look as if it came
// from farAddr: the server's loopback exception does not apply to it.
func fromAfar(ln net.Listener) net.Listener { return afarListener{ln} }

type afarListener struct{ net.Listener }

func (l afarListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return afarConn{c.(*net.TCPConn)}, nil
}

// afarConn is a TCP connection with another remote address; everything
// else (SyscallConn, deadlines) is the TCP connection's.
type afarConn struct{ *net.TCPConn }

func (afarConn) RemoteAddr() net.Addr { return farAddr }

// startServer starts a server over a new data folder, with cfg changed by
// mod, and stops it when the test ends.
func startServer(t *testing.T, mod func(*Config)) *Server {
	t.Helper()
	cfg := Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Name = "test"
	cfg.HashCost = bcrypt.MinCost
	cfg.Sync = "normal"
	cfg.Log = testLogger()
	if mod != nil {
		mod(&cfg)
	}
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(srv.Shutdown) })
	return srv
}

// startTLS upgrades the client's connection: STARTTLS, 234 with nothing
// after it, the handshake, and the server's key must be fp.
func (c *client) startTLS(fp string) {
	c.t.Helper()
	c.send("STARTTLS")
	if l := c.next(); l.Code != protocol.CodeStartTLS {
		c.t.Fatalf("%s: STARTTLS: got %d %s", c.name, l.Code, l.Text)
	}
	c.handshake(fp)
}

// handshake runs the client side of the TLS handshake after 234.
func (c *client) handshake(fp string) {
	c.t.Helper()
	if n := c.rd.Buffered(); n != 0 {
		c.t.Fatalf("%s: %d bytes in clear after 234", c.name, n)
	}
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	tc.SetDeadline(time.Now().Add(ioWait))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("%s: TLS handshake: %v", c.name, err)
	}
	tc.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	if got := protocol.Fingerprint(cs.PeerCertificates[0].RawSubjectPublicKeyInfo); got != fp {
		c.t.Fatalf("%s: server key %s, want %s", c.name, got, fp)
	}
	if cs.Version != tls.VersionTLS13 {
		c.t.Fatalf("%s: TLS version %x, want 1.3", c.name, cs.Version)
	}
	c.conn, c.rd = tc, bufio.NewReader(tc)
	// The first line inside TLS is the greeting again (section 1.1).
	if l := c.next(); l.Code != protocol.CodeGreeting || !strings.Contains(l.Text, " qchat/1 ready ") {
		c.t.Fatalf("%s: the first line inside TLS is %d %s, want the greeting", c.name, l.Code, l.Text)
	}
}

func TestStartTLSThenLoginFromAfar(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.wrapListener = fromAfar })
	fp := *srv.fp.Load()
	alice := dial(t, srv, "alice")
	// In clear from another host, nothing that carries a password.
	for _, cmd := range []string{"REG alice pw-alice", "PASS pw-alice"} {
		l := alice.do(cmd)
		if l.Code != protocol.CodeEncryptionRequired || l.Text != "encryption required: send STARTTLS first" {
			t.Fatalf("%s in clear from afar: got %d %s, want 538", cmd, l.Code, l.Text)
		}
	}
	if n := srv.dir.count(); n != 0 {
		t.Fatalf("%d accounts after a refused REG", n)
	}
	alice.want("USER alice", protocol.CodePassword) // no password: fine in clear
	alice.startTLS(fp)
	register(alice, "alice", "pw-alice")
	// USER before STARTTLS counts for nothing after it.
	alice.want("PASS pw-alice", protocol.CodeSequence)
	alice.login("alice", "pw-alice")
	alice.want("PASSWD pw-alice pw-new", protocol.CodeOK)
	alice.want("STARTTLS", protocol.CodeSequence) // already on

	// A second user over TLS gets a message from the first.
	bob := dial(t, srv, "bob")
	bob.startTLS(fp)
	bobID := register(bob, "bob", "pw-bob")
	bob.login("bob", "pw-bob")
	sent(t, alice.want("MSG bob hello over TLS", protocol.CodeSent), "stored", bobID)
	if m := bob.nextMsg(); m.text != "hello over TLS" || m.nick != "alice" {
		t.Fatalf("bob got %+v", m)
	}
}

func TestStartTLSPolicies(t *testing.T) {
	t.Run("loopback in clear", func(t *testing.T) {
		srv := startServer(t, nil)
		c := dial(t, srv, "nc")
		register(c, "alice", "pw")
		c.login("alice", "pw")
		c.want("PASSWD pw pw2", protocol.CodeOK)
		c.want("STARTTLS", protocol.CodeSequence) // after login
	})
	t.Run("optional from afar", func(t *testing.T) {
		srv := startServer(t, func(c *Config) { c.wrapListener, c.TLS = fromAfar, TLSOptional })
		c := dial(t, srv, "far")
		register(c, "alice", "pw")
		c.login("alice", "pw")
	})
	t.Run("off", func(t *testing.T) {
		srv := startServer(t, func(c *Config) { c.wrapListener, c.TLS = fromAfar, TLSOff })
		c := dial(t, srv, "far")
		if l := c.do("STARTTLS"); l.Code != protocol.CodeNotYet {
			t.Fatalf("STARTTLS with --tls=off: %d %s, want 502", l.Code, l.Text)
		}
		register(c, "alice", "pw")
		c.login("alice", "pw")
		if _, err := os.Stat(filepath.Join(srv.cfg.Data, ownKeyFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("--tls=off made a key: %v", err)
		}
	})
	t.Run("bad policy", func(t *testing.T) {
		cfg := Defaults()
		cfg.Listen, cfg.Data, cfg.TLS, cfg.Log = "127.0.0.1:0", t.TempDir(), "sometimes", testLogger()
		if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "want required, optional or off") {
			t.Fatalf("Start with --tls=sometimes: %v", err)
		}
	})
}

// TestStartTLSPipelinedIsRefused is the classic STARTTLS injection: the
// client (or someone in the middle) sends STARTTLS and PASS in one write.
// The PASS must never run, neither in clear nor after the handshake.
func TestStartTLSPipelinedIsRefused(t *testing.T) {
	srv := startServer(t, nil)
	c := dial(t, srv, "nc")
	register(c, "alice", "pw")
	c.want("USER alice", protocol.CodePassword)
	// PASS pw would log in here (loopback, right password): only the
	// guard can stop it.
	c.conn.SetWriteDeadline(time.Now().Add(ioWait))
	if _, err := io.WriteString(c.conn, "STARTTLS\r\nPASS pw\r\n"); err != nil {
		t.Fatal(err)
	}
	l := c.next()
	if l.Code != protocol.CodeSyntax || !strings.Contains(l.Text, "nothing may follow STARTTLS") {
		t.Fatalf("pipelined STARTTLS: got %d %s, want 501", l.Code, l.Text)
	}
	if l := c.next(); l.Kind != "BYE" || l.Args[0] != reasonTLSPipelined {
		t.Fatalf("got %+v, want BYE %s", l, reasonTLSPipelined)
	}
	rest, err := io.ReadAll(c.rd)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after BYE: %q, %v; want the connection closed", rest, err)
	}
	if online := srv.hub.list(); len(online) != 0 {
		t.Fatalf("the pipelined PASS logged in: %+v online", online)
	}
}

// TestNothingInClearAfter234 closes the session (as a shutdown does)
// while it waits for the client's handshake: the BYE it queues must not
// reach the wire in clear, where it would be taken for the server's word.
func TestNothingInClearAfter234(t *testing.T) {
	srv := startServer(t, nil)
	c := dial(t, srv, "nc")
	c.send("STARTTLS")
	if l := c.next(); l.Code != protocol.CodeStartTLS {
		t.Fatalf("STARTTLS: %d %s", l.Code, l.Text)
	}
	onlySession(t, srv).close(reasonShutdown, "server shutting down")
	c.conn.SetReadDeadline(time.Now().Add(ioWait))
	rest, err := io.ReadAll(c.rd)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after 234 the server wrote %q in clear (%v)", rest, err)
	}
}

// TestKeepaliveLeavesTheHandshakeAlone: the keepalive neither pings a
// session in its TLS handshake nor closes it for want of a PONG (the
// handshake has a deadline of its own); it counts from the handshake's
// end. The sweeper's checks are run here at times far past both limits.
func TestKeepaliveLeavesTheHandshakeAlone(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.LoginTimeout = time.Hour })
	c := dial(t, srv, "nc")
	c.send("STARTTLS")
	if l := c.next(); l.Code != protocol.CodeStartTLS {
		t.Fatalf("STARTTLS: %d %s", l.Code, l.Text)
	}
	s := onlySession(t, srv)
	var ping []byte
	at := time.Now()
	for range 3 {
		at = at.Add(srv.cfg.PingInterval + srv.cfg.PingTimeout + time.Second)
		srv.checkSession(s, at, &ping)
	}
	if s.closed.Load() || s.pingAt.Load() != 0 || s.out.Queued() != 0 {
		reason := ""
		if r := s.reason.Load(); r != nil {
			reason = *r
		}
		t.Fatalf("during the handshake: closed %v (%s), PING sent at %d, %d bytes queued",
			s.closed.Load(), reason, s.pingAt.Load(), s.out.Queued())
	}
	c.handshake(*srv.fp.Load()) // the greeting first, nothing in clear
	c.quiet()                   // and no PING after it
	register(c, "alice", "pw")
}

// TestGreetingAgainInsideTLS: after the handshake the server greets
// again, first, with what it said in clear (its name and extensions),
// so that a client need believe nothing it read before TLS.
func TestGreetingAgainInsideTLS(t *testing.T) {
	srv := startServer(t, nil)
	conn, err := net.DialTimeout("tcp", srv.Addr().String(), ioWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, name: "nc", conn: conn, rd: bufio.NewReader(conn)}
	clear := c.next()
	c.send("STARTTLS")
	if l := c.next(); l.Code != protocol.CodeStartTLS {
		t.Fatalf("STARTTLS: %d %s", l.Code, l.Text)
	}
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	tc.SetDeadline(time.Now().Add(ioWait))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.rd = tc, bufio.NewReader(tc)
	g := c.next()
	if g.Code != protocol.CodeGreeting || g.Text != clear.Text {
		t.Fatalf("inside TLS first came %d %q, want the greeting %q", g.Code, g.Text, clear.Text)
	}
	if !strings.Contains(g.Text, " resume") {
		t.Fatalf("greeting inside TLS %q lacks its extensions", g.Text)
	}
	register(c, "alice", "pw")
	c.login("alice", "pw")
}

func onlySession(t *testing.T, srv *Server) *session {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(srv.sessions))
	}
	for s := range srv.sessions {
		return s
	}
	return nil
}

func TestTLSHandshakeFailureClosesWithoutClearText(t *testing.T) {
	var logs fakeserver.Buffer
	srv := startServer(t, func(c *Config) { c.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
	c := dial(t, srv, "nc")
	c.send("STARTTLS")
	if l := c.next(); l.Code != protocol.CodeStartTLS {
		t.Fatalf("STARTTLS: %d %s", l.Code, l.Text)
	}
	c.send("PASS not a ClientHello") // bytes after 234 only break the handshake
	c.conn.SetReadDeadline(time.Now().Add(ioWait))
	rest, _ := io.ReadAll(c.rd)
	if bytes.Contains(rest, []byte("BYE")) || bytes.Contains(rest, []byte("530")) || bytes.Contains(rest, []byte("503")) {
		t.Fatalf("after 234 the server answered in clear: %q", rest)
	}
	waitLog(t, &logs, "reason="+reasonTLSHandshake)
}

func waitLog(t *testing.T, logs *fakeserver.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", want, logs.String())
		}
		time.Sleep(5 * time.Millisecond) // polling the log
	}
}

func TestOwnKey(t *testing.T) {
	cfg := Defaults()
	cfg.Data = filepath.Join(t.TempDir(), "data") // not made yet
	fp, err := Fingerprint(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !protocol.ValidFingerprint(fp) {
		t.Fatalf("fingerprint %q", fp)
	}
	for _, name := range []string{ownKeyFile, ownCertFile} {
		fi, err := os.Stat(filepath.Join(cfg.Data, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600", name, fi.Mode().Perm())
		}
	}
	keyPEM, _ := os.ReadFile(filepath.Join(cfg.Data, ownKeyFile))
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key file is not PKCS#8 PEM: %q", keyPEM)
	} else if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err != nil {
		t.Fatal(err)
	} else if ek, ok := k.(*ecdsa.PrivateKey); !ok || ek.Curve != elliptic.P256() {
		t.Fatalf("key is %T, want ECDSA P-256", k)
	}
	// The same key next time; a lost certificate is made again for it.
	if again, _ := Fingerprint(cfg); again != fp {
		t.Fatalf("second start: %s, want %s", again, fp)
	}
	os.Remove(filepath.Join(cfg.Data, ownCertFile))
	if again, err := Fingerprint(cfg); again != fp || err != nil {
		t.Fatalf("after losing the certificate: %s (%v), want %s", again, err, fp)
	}
	// The fingerprint is what openssl would print for the certificate's key.
	certPEM, _ := os.ReadFile(filepath.Join(cfg.Data, ownCertFile))
	b, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := protocol.Fingerprint(cert.RawSubjectPublicKeyInfo); got != fp {
		t.Fatalf("certificate's key %s, want %s", got, fp)
	}
	// A broken key file is an error, never silently replaced.
	os.WriteFile(filepath.Join(cfg.Data, ownKeyFile), []byte("garbage"), 0o600)
	os.Remove(filepath.Join(cfg.Data, ownCertFile))
	if _, err := Fingerprint(cfg); err == nil {
		t.Fatal("a broken key file was accepted")
	}
}

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, certPath, keyPath string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return protocol.Fingerprint(cert.RawSubjectPublicKeyInfo)
}

// servedKey dials addr, upgrades with STARTTLS and returns the server
// key's fingerprint.
func servedKey(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, ioWait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, name: "probe", conn: conn, rd: bufio.NewReader(conn)}
	if l := c.next(); l.Code != protocol.CodeGreeting {
		t.Fatalf("greeting %+v", l)
	}
	c.send("STARTTLS")
	if l := c.next(); l.Code != protocol.CodeStartTLS {
		t.Fatalf("STARTTLS: %d %s", l.Code, l.Text)
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(ioWait))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return protocol.Fingerprint(tc.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
}

// TestReloadOnSIGHUP runs the server as `qchat serve` does, with
// --tls-cert/--tls-key, and sends the process SIGHUP: a new certificate
// is taken, a broken one is logged and the one in use kept.
func TestReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, certPath, keyPath)
	var logs fakeserver.Buffer
	cfg := Defaults()
	cfg.Listen, cfg.Data, cfg.AddrFile = "127.0.0.1:0", filepath.Join(dir, "data"), filepath.Join(dir, "addr")
	cfg.TLSCert, cfg.TLSKey, cfg.HashCost = certPath, keyPath, bcrypt.MinCost
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var addr []byte
	deadline := time.Now().Add(ioWait)
	for len(addr) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no address file; log:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond) // polling for the address file
		addr, _ = os.ReadFile(cfg.AddrFile)
	}
	a := strings.TrimSpace(string(addr))
	if got := servedKey(t, a); got != first {
		t.Fatalf("serving %s, want --tls-cert's %s", got, first)
	}
	if !strings.Contains(logs.String(), "fingerprint="+first) || !strings.Contains(logs.String(), "cert="+certPath) {
		t.Fatalf("the start log does not name the certificate and its fingerprint:\n%s", logs.String())
	}

	second := writeCert(t, certPath, keyPath)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitLog(t, &logs, "fingerprint="+second)
	if got := servedKey(t, a); got != second {
		t.Fatalf("after SIGHUP serving %s, want %s", got, second)
	}

	os.WriteFile(certPath, []byte("not a certificate"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitLog(t, &logs, "TLS certificate not reloaded")
	if got := servedKey(t, a); got != second {
		t.Fatalf("after a bad reload serving %s, want the old %s", got, second)
	}
}
