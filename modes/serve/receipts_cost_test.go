package serve

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"qchat/modes/serve/limits"
)

// What receipts and typing cost on the wire and on the server's CPU
// (PROTOCOL.md section 5.1, "Cost on the wire"):
//
//	go test ./modes/serve -run '^$' -bench 'ReceiptWire|TypingHour' -benchtime 1x
//
// BenchmarkReceiptWire: bytes on the wire (TLS records included, TCP/IP
// headers not) per message of a conversation of two online people whose
// clients acknowledge at once, with receipts off, on (shown: the reader's
// window is not focused) and on and read at once; and per message of a
// burst stored for an offline reader who reads it at login.
// BenchmarkTypingHour: the TYPING lines one person typing for an hour
// sends (one every 4 s, as chat does), each relayed to the peer, against a
// server in a process of its own: its CPU time and the bytes.
// TestReceiptWireBytes checks the deltas that the protocol promises.

// countConn counts the bytes and writes that cross a connection.
type countConn struct {
	net.Conn
	in, out, writes *atomic.Int64
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	c.writes.Add(1)
	return n, err
}

// wire is a raw client whose bytes on the wire are counted.
type wire struct {
	tb               testing.TB
	name             string
	conn             net.Conn
	rd               *bufio.Reader
	in, out, writes  atomic.Int64
	id               int64
	lastIn, lastOuts int64
}

// dialWire connects (with TLS when useTLS), registers nick and logs in.
func dialWire(tb testing.TB, addr, nick string, useTLS bool) *wire {
	tb.Helper()
	return loginWire(tb, addr, nick, useTLS, true)
}

// loginWire is dialWire of an account that exists already (register
// false).
func loginWire(tb testing.TB, addr, nick string, useTLS, register bool) *wire {
	tb.Helper()
	raw, err := net.DialTimeout("tcp", addr, ioWait)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { raw.Close() })
	w := &wire{tb: tb, name: nick}
	w.conn = countConn{raw, &w.in, &w.out, &w.writes}
	w.rd = bufio.NewReader(w.conn)
	w.line() // greeting
	if useTLS {
		w.write("STARTTLS\n")
		if l := w.line(); !strings.HasPrefix(l, "234 ") {
			tb.Fatalf("%s: STARTTLS: %q", nick, l)
		}
		tc := tls.Client(w.conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err := tc.Handshake(); err != nil {
			tb.Fatal(err)
		}
		w.conn, w.rd = tc, bufio.NewReader(tc)
		w.line() // the greeting again, inside TLS
	}
	login := "USER " + nick + "\nPASS pw-pw-pw\n"
	if register {
		login = "REG " + nick + " pw-pw-pw\n" + login
	}
	w.write(login)
	for {
		l := w.line()
		if v, ok := strings.CutPrefix(l, "230 "); ok {
			w.id, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return w
		}
		if l[0] == '4' || l[0] == '5' {
			tb.Fatalf("%s: login: %q", nick, l)
		}
	}
}

func (w *wire) write(s string) {
	w.tb.Helper()
	w.conn.SetWriteDeadline(time.Now().Add(ioWait))
	if _, err := w.conn.Write([]byte(s)); err != nil {
		w.tb.Fatalf("%s: write: %v", w.name, err)
	}
}

func (w *wire) line() string {
	w.tb.Helper()
	w.conn.SetReadDeadline(time.Now().Add(ioWait))
	l, err := w.rd.ReadString('\n')
	if err != nil {
		w.tb.Fatalf("%s: read: %v (%q)", w.name, err, l)
	}
	return strings.TrimSuffix(l, "\n")
}

// until reads until a line starts with prefix, and returns it.
func (w *wire) until(prefix string) string {
	w.tb.Helper()
	for {
		if l := w.line(); strings.HasPrefix(l, prefix) {
			return l
		}
	}
}

// sync waits until everything before it is answered (a PING round).
func (w *wire) sync() {
	w.tb.Helper()
	w.write("@sync PING\n")
	w.until("@sync ")
}

// counted returns the bytes (both ways) and writes (this side's) since
// the last call.
func (w *wire) counted() (bytes, writes int64) {
	in, out, wr := w.in.Load(), w.out.Load(), w.writes.Load()
	bytes, writes = in+out-w.lastIn, wr-w.lastOuts
	w.lastIn, w.lastOuts = in+out, wr
	return bytes, writes
}

// Receipt modes of a conversation.
const (
	costOff   = "off"   // both have receipts off
	costShown = "shown" // on; the reader's client acknowledges at once (its window not focused)
	costRead  = "read"  // on; the reader reads at once: READ, then ACK, in one write
)

// pingPong runs n messages from a to b, one at a time, as two people's
// clients do (b acknowledges each at once), and returns the bytes on the
// wire and the writes of both clients per message.
func pingPong(tb testing.TB, a, b *wire, mode string, n int, text string) (bytesPer, writesPer float64) {
	tb.Helper()
	set := "on"
	if mode == costOff {
		set = "off"
	}
	for _, w := range []*wire{a, b} {
		w.write("@s SET receipts " + set + "\n")
		w.until("@s 200")
		w.sync()
		w.counted()
	}
	to := strconv.FormatInt(b.id, 10)
	from := strconv.FormatInt(a.id, 10)
	for range n {
		a.write("@m MSG " + to + " " + text + "\n")
		f := strings.Fields(b.until("MSG "))
		if mode == costRead {
			b.write("READ " + from + " " + f[1] + "\nACK " + f[1] + "\n")
		} else {
			b.write("ACK " + f[1] + "\n")
		}
		l := a.until("@m 250 ")
		if want := map[string]string{costOff: "", costShown: " shown", costRead: " read"}[mode]; !strings.HasSuffix(l, want) || mode == costOff && (strings.HasSuffix(l, "shown") || strings.HasSuffix(l, "read")) {
			tb.Fatalf("%s: 250 %q", mode, l)
		}
	}
	ab, aw := a.counted()
	bb, bw := b.counted()
	return float64(ab+bb) / float64(n), float64(aw+bw) / float64(n)
}

// TestReceiptWireBytes: over a clear-text connection, with the same
// writes, a message whose reader's client shows it costs six bytes more
// with receipts on (" shown" on the 250), and one read at once the READ
// line and five bytes (" read").
func TestReceiptWireBytes(t *testing.T) {
	srv := startTestServer(t, func(c *Config) { c.Data = t.TempDir(); c.Limits.MsgRate = 0 })
	defer srv.Shutdown()
	a := dialWire(t, srv.Addr().String(), "alice", false)
	b := dialWire(t, srv.Addr().String(), "bob", false)
	const n, text = 20, "see you at the station at three"
	pingPong(t, a, b, costOff, 9, text) // message ids 1 to 9: the runs below all have ids of two digits
	off, offW := pingPong(t, a, b, costOff, n, text)
	shown, shownW := pingPong(t, a, b, costShown, n, text)
	read, readW := pingPong(t, a, b, costRead, n, text)
	if offW != 2 || shownW != 2 || readW != 2 {
		t.Fatalf("client writes per message: %v %v %v, want 2 (a MSG, an ACK)", offW, shownW, readW)
	}
	if shown-off != 6 {
		t.Errorf("receipts on cost %v bytes a message (%v against %v), want 6 (\" shown\")", shown-off, shown, off)
	}
	if want := float64(len(" read") + len("READ 1000 42\n")); read-off != want {
		t.Errorf("a message read at once costs %v bytes more (%v against %v), want %v (\" read\" and READ)", read-off, read, off, want)
	}
}

// BenchmarkReceiptWire reports bytes on the wire per message (TLS).
func BenchmarkReceiptWire(b *testing.B) {
	addr, _, stop := startServeChild(b)
	defer stop()
	const text = "see you at the station at three" // 31 bytes, a short chat line
	alice := dialWire(b, addr, "alice", true)
	bob := dialWire(b, addr, "bob", true)
	n := max(b.N, 200)
	pingPong(b, alice, bob, costOff, 99, text) // message ids from 100: three digits in every run below
	for _, mode := range []string{costOff, costShown, costRead} {
		per, writes := pingPong(b, alice, bob, mode, n, text)
		b.ReportMetric(per, "B/msg-"+mode)
		b.ReportMetric(writes, "writes/msg-"+mode)
	}
	for i, mode := range []string{costOff, costRead} {
		b.ReportMetric(storedBurst(b, addr, alice, "reader"+strconv.Itoa(i), mode, 1000, text), "B/msg-stored-burst-"+mode)
	}
}

// storedBurst sends n messages from a to a new user who is offline, who
// then logs in, its client acknowledging them as they come (what each read
// brings, in one ACK), and reads them all (one READ, with receipts on);
// it returns the bytes on the wire of a and the reader per message, the
// reader's login apart.
func storedBurst(tb testing.TB, addr string, a *wire, nick, mode string, n int, text string) float64 {
	tb.Helper()
	set := "on"
	if mode == costOff {
		set = "off"
	}
	r := dialWire(tb, addr, nick, true)
	for _, w := range []*wire{a, r} {
		w.write("@s SET receipts " + set + "\n")
		w.until("@s 200")
	}
	r.write("QUIT\n")
	r.until("221")
	a.sync()
	a.counted()
	var msgs strings.Builder
	for range n {
		msgs.WriteString("@b MSG " + nick + " " + text + "\n")
	}
	a.write(msgs.String())
	for range n {
		a.until("@b 250 ")
	}
	r = loginWire(tb, addr, nick, true, false)
	r.counted()
	var ids []string
	for len(ids) < n {
		f := strings.Fields(r.until("MSG "))
		ids = append(ids, f[1])
		if r.rd.Buffered() == 0 || len(ids) == n {
			r.write("ACK " + strings.Join(ids[max(0, len(ids)-1000):], ",") + "\n") // what this read brought, at most
		}
	}
	last := ids[n-1]
	if mode != costOff {
		r.write("READ " + strconv.FormatInt(a.id, 10) + " " + last + "\n")
		for got := map[string]bool{}; !got["shown"] || !got["read"]; {
			f := strings.Fields(a.until("RECEIPT "))
			if f[4] == last {
				got[f[3]] = true
			}
		}
	}
	r.sync()
	a.sync()
	ab, _ := a.counted()
	rb, _ := r.counted()
	return float64(ab+rb) / float64(n)
}

// startServeChild runs a server in a process of its own (the test binary,
// TestServeChild), so that its CPU time can be read apart from the
// clients'. It returns its address, pid and how to stop it.
func startServeChild(tb testing.TB) (addr string, pid int, stop func()) {
	tb.Helper()
	dir := tb.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$")
	cmd.Env = append(os.Environ(), "QCHAT_SERVE_CHILD="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	stop = func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	for deadline := time.Now().Add(ioWait); ; time.Sleep(5 * time.Millisecond) { // polling for the address file
		if b, err := os.ReadFile(filepath.Join(dir, "addr")); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b)), cmd.Process.Pid, stop
		}
		if time.Now().After(deadline) {
			stop()
			tb.Fatal("the server did not start")
		}
	}
}

// TestServeChild is the server of startServeChild.
func TestServeChild(t *testing.T) {
	dir := os.Getenv("QCHAT_SERVE_CHILD")
	if dir == "" {
		t.Skip("run by startServeChild")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg := Defaults()
	cfg.Listen, cfg.Data, cfg.AddrFile, cfg.Name, cfg.HashCost = "127.0.0.1:0", filepath.Join(dir, "data"), filepath.Join(dir, "addr"), "cost", 4
	cfg.AckGrace = time.Second // "delivered" for a client that acknowledges at once, however loaded the machine
	cfg.Log = testLogger()
	cfg.Limits.Exempt, _ = limits.ParseExempt([]string{"127.0.0.0/8"}) // an hour pressed into a second is no flood
	if err := Run(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// cpuTime is a process's user and system CPU time (Linux: /proc).
func cpuTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Skip("no /proc:", err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from the third on
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ
	return time.Duration(utime+stime) * time.Second / ticks
}

// BenchmarkTypingHour: one person typing to another for an hour, as chat
// says it (TYPING on at the first key and every typingRefresh while the
// typing goes on: 900 lines), pressed into as little time as the server
// takes; each line one write, relayed before the next goes. Reports the
// server's CPU time and the bytes on the wire of that hour.
func BenchmarkTypingHour(b *testing.B) {
	addr, pid, stop := startServeChild(b)
	defer stop()
	alice := dialWire(b, addr, "alice", true)
	bob := dialWire(b, addr, "bob", true)
	lines := int(time.Hour / (4 * time.Second)) // chat's typingRefresh
	to := strconv.FormatInt(bob.id, 10)
	var cpu time.Duration
	var bytes int64
	b.ResetTimer()
	for range b.N {
		alice.sync()
		bob.sync()
		alice.counted()
		bob.counted()
		before := cpuTime(b, pid)
		for range lines {
			alice.write("TYPING " + to + " on\n")
			bob.until("TYPING ")
		}
		cpu += cpuTime(b, pid) - before
		ab, _ := alice.counted()
		bb, _ := bob.counted()
		bytes += ab + bb
	}
	b.ReportMetric(float64(lines), "lines/hour")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "server-cpu-us/hour")
	b.ReportMetric(float64(bytes)/float64(b.N), "B/hour")
}
