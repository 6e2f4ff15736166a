package xfer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

// ioWait bounds every wait in these tests; it is a guard against a hang,
// never a timing assertion.
const ioWait = 20 * time.Second

func listen(t *testing.T, me int64) *Peer {
	t.Helper()
	p, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.SetMe(me)
	t.Cleanup(func() { p.Close() })
	return p
}

func addrOf(p *Peer) string { return "127.0.0.1:" + strconv.Itoa(p.Port()) }

// tickets returns the two halves of one grant: A (1, the offerer) and B (2).
func tickets(a, b *Peer, id string) (Ticket, Ticket) {
	exp := time.Now().Add(time.Minute)
	return Ticket{ID: id, Purpose: "file", Peer: 2, PeerAddr: addrOf(b), Expires: exp, Offerer: true, PeerKey: b.Fingerprint()},
		Ticket{ID: id, Purpose: "file", Peer: 1, PeerAddr: addrOf(a), Expires: exp, PeerKey: a.Fingerprint()}
}

// connectPair connects both sides of a ticket at once.
func connectPair(t *testing.T, a, b *Peer, ta, tb Ticket, opts ConnectOptions) (*Link, *Link) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioWait)
	defer cancel()
	var la, lb *Link
	var ea, eb error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); la, ea = a.Connect(ctx, ta, opts) }()
	go func() { defer wg.Done(); lb, eb = b.Connect(ctx, tb, opts) }()
	wg.Wait()
	if ea != nil || eb != nil {
		t.Fatalf("connect: A %v, B %v", ea, eb)
	}
	t.Cleanup(func() { la.Close(); lb.Close() })
	return la, lb
}

func TestDirectLinkOffererDials(t *testing.T) {
	a, b := listen(t, 1), listen(t, 2)
	ta, tb := tickets(a, b, "ticket1")
	la, lb := connectPair(t, a, b, ta, tb, ConnectOptions{})
	if la.Path != "direct" || lb.Path != "direct" {
		t.Fatalf("paths %s/%s, want direct", la.Path, lb.Path)
	}
	if la.Peer != 2 || lb.Peer != 1 {
		t.Errorf("peers %d/%d", la.Peer, lb.Peer)
	}
	// The link works both ways.
	go la.send("PING", "x")
	if v, r, err := lb.readLine(); err != nil || v != "PING" || r != "x" {
		t.Fatalf("B read %q %q %v", v, r, err)
	}
}

func TestDirectLinkOtherSideDials(t *testing.T) {
	a, b := listen(t, 1), listen(t, 2)
	ta, tb := tickets(a, b, "ticket2")
	// A cannot reach B's endpoint (nothing listens there): B dials A.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta.PeerAddr = dead.Addr().String()
	dead.Close()
	la, lb := connectPair(t, a, b, ta, tb, ConnectOptions{})
	if !strings.HasPrefix(lb.Via, "dialed") || !strings.HasPrefix(la.Via, "accepted") {
		t.Fatalf("A %q, B %q: want B to have dialed A", la.Via, lb.Via)
	}
}

// hello sends raw HELLO lines to a peer listener and returns its answer.
func rawHello(t *testing.T, p *Peer, line string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addrOf(p), ioWait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioWait))
	c.Write([]byte(line + "\n"))
	r := bufio.NewReader(c)
	got, _ := r.ReadString('\n')
	if _, err := r.ReadString('\n'); err == nil {
		t.Errorf("connection still open after %q", got)
	}
	return strings.TrimSpace(got)
}

func TestForgedReplayedMisdirectedTicketsRefused(t *testing.T) {
	a, b := listen(t, 1), listen(t, 2)
	ta, tb := tickets(a, b, "realticket")
	b.Expect(tb)
	if got := rawHello(t, b, "HELLO forged 1"); !strings.HasPrefix(got, "ERR") {
		t.Errorf("forged ticket: %q", got)
	}
	if got := rawHello(t, b, "HELLO realticket 3"); !strings.HasPrefix(got, "ERR") {
		t.Errorf("ticket from the wrong user: %q", got)
	}
	if got := rawHello(t, b, "GET / HTTP/1.0"); !strings.HasPrefix(got, "ERR") {
		t.Errorf("not a peer: %q", got)
	}
	if n := b.Refused.Load(); n != 3 {
		t.Errorf("refused %d connections, want 3", n)
	}
	connectPair(t, a, b, ta, tb, ConnectOptions{})
	// Used: the same ticket again is refused.
	if got := rawHello(t, b, "HELLO realticket 1"); !strings.HasPrefix(got, "ERR") {
		t.Errorf("replayed ticket: %q", got)
	}
	// Expired.
	old := Ticket{ID: "oldticket", Peer: 1, Expires: time.Now().Add(-time.Second)}
	b.Expect(old)
	if got := rawHello(t, b, "HELLO oldticket 1"); !strings.HasPrefix(got, "ERR") {
		t.Errorf("expired ticket: %q", got)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writePart writes a partial file as the receiver makes them (marked as
// qchat's).
func writePart(t *testing.T, path string, data []byte) {
	t.Helper()
	writeFile(t, path, data)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	markPart(f)
	f.Close()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// transfer runs Send and Receive over a fresh direct link.
func transfer(t *testing.T, o *Offer, opts ReceiveOptions) (SendResult, []FileResult, error, error) {
	t.Helper()
	a, b := listen(t, 1), listen(t, 2)
	ta, tb := tickets(a, b, "t"+hex.EncodeToString(randomBytes(8)))
	la, lb := connectPair(t, a, b, ta, tb, ConnectOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), ioWait)
	defer cancel()
	var sres SendResult
	var serr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sres, serr = Send(ctx, la, o, nil)
	}()
	rres, rerr := Receive(ctx, lb, opts, nil)
	<-done
	return sres, rres, serr, rerr
}

func TestSendReceiveFilesAndFolder(t *testing.T) {
	src := t.TempDir()
	files := map[string][]byte{
		"empty":           nil,
		"one":             {'x'},
		"big.bin":         randomBytes(3<<20 + 17),
		"tree/a.txt":      []byte("alpha\n"),
		"tree/sub/b.txt":  []byte("beta\n"),
		"tree/sub/中文.txt": []byte("你好\n"),
	}
	for name, data := range files {
		writeFile(t, filepath.Join(src, name), data)
	}
	o, err := NewOffer(filepath.Join(src, "empty"), filepath.Join(src, "one"), filepath.Join(src, "big.bin"), filepath.Join(src, "tree"))
	if err != nil {
		t.Fatal(err)
	}
	if n, total, _ := o.Summary(); n != 6 || total != int64(3<<20+17+1+6+5+7) {
		t.Fatalf("summary %d files %d bytes", n, total)
	}
	dst := t.TempDir()
	sres, rres, serr, rerr := transfer(t, o, ReceiveOptions{Dir: dst})
	if serr != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", serr, rerr)
	}
	for _, f := range rres {
		if f.Err != nil {
			t.Errorf("%s: %v", f.Name, f.Err)
		}
	}
	if failed := sres.Failed(); len(failed) > 0 {
		t.Errorf("sender: failed %v", failed)
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", name, len(got), err, len(data))
		}
		if _, err := os.Stat(filepath.Join(dst, name+".part")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s.part left behind", name)
		}
	}
	want := blake3.Sum256(files["big.bin"])
	for _, f := range sres.Files {
		if f.Name == "big.bin" && f.Hash != hex.EncodeToString(want[:]) {
			t.Errorf("big.bin hash %s", f.Hash)
		}
	}
}

func TestResumeFromPart(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	data := randomBytes(1<<20 + 5)
	writeFile(t, filepath.Join(src, "f.bin"), data)
	writePart(t, filepath.Join(dst, "f.bin.part"), data[:300_000])
	o, err := NewOffer(filepath.Join(src, "f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	sres, _, serr, rerr := transfer(t, o, ReceiveOptions{Dir: dst})
	if serr != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", serr, rerr)
	}
	moved, resumed := sres.Moved()
	if resumed != 300_000 || moved != int64(len(data))-300_000 {
		t.Errorf("moved %d, resumed %d", moved, resumed)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "f.bin")); !bytes.Equal(got, data) {
		t.Error("resumed file differs")
	}

	// A part that is not a prefix of the source (the source changed):
	// everything is sent again, nothing is spliced.
	other := randomBytes(300_000)
	writePart(t, filepath.Join(dst, "f.bin.part"), other)
	sres, _, serr, rerr = transfer(t, o, ReceiveOptions{Dir: dst, Overwrite: true})
	if serr != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", serr, rerr)
	}
	if moved, resumed := sres.Moved(); resumed != 0 || moved != int64(len(data)) {
		t.Errorf("changed source: moved %d, resumed %d", moved, resumed)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "f.bin")); !bytes.Equal(got, data) {
		t.Error("file after a changed source differs")
	}
}

func TestHostileNamesStayInside(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "payload"), []byte("payload\n"))
	parent := t.TempDir()
	dst := filepath.Join(parent, "in")
	outside := filepath.Join(parent, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dst, "exists.txt"), []byte("mine\n"))
	if err := os.Symlink(outside, filepath.Join(dst, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(dst, "planted.txt.part")); err != nil {
		t.Fatal(err)
	}
	names := []string{"../escape.txt", "/etc/passwd-qchat", "esc\x1b[31mred", "exists.txt", "link/x.txt", "planted.txt", "..", "a/../../b.txt"}
	o := &Offer{}
	for _, n := range names {
		o.Items = append(o.Items, Item{Local: filepath.Join(src, "payload"), Name: n, Size: 8})
		o.Total += 8
	}
	sres, rres, serr, rerr := transfer(t, o, ReceiveOptions{Dir: dst})
	if serr != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", serr, rerr)
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 0 {
		t.Errorf("wrote outside the folder: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(parent, "escape.txt")); err == nil {
		t.Error("../escape.txt escaped")
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "exists.txt")); string(b) != "mine\n" {
		t.Error("an existing file was overwritten")
	}
	saved := map[string]bool{}
	for _, f := range rres {
		if f.Err == nil {
			saved[f.Path] = true
		}
	}
	for _, want := range []string{"escape.txt", "etc/passwd-qchat", "esc_[31mred", "exists (1).txt", "a/b.txt"} {
		if !saved[want] {
			t.Errorf("not saved as %q; saved %v", want, saved)
		}
	}
	refused := 0
	for _, f := range sres.Files {
		if f.Err != nil {
			refused++
		}
	}
	// link/x.txt (through a symlink), planted.txt (its .part is a
	// symlink) and ".." (no name left) are refused.
	if refused != 3 {
		t.Errorf("%d files refused, want 3: %+v", refused, sres.Files)
	}
}

func TestSafePath(t *testing.T) {
	for in, want := range map[string]string{
		"a.txt":                  "a.txt",
		"../../etc/passwd":       "etc/passwd",
		"/abs/path":              "abs/path",
		`C:\win\file`:            "C:/win/file",
		"dir/./x":                "dir/x",
		"bad\x00nul":             "bad_nul",
		"\u202egnp.exe":          "_gnp.exe",
		"  spaced . ":            "spaced",
		"中文/😀.txt":               "中文/😀.txt",
		"x\xff":                  "x_",
		strings.Repeat("a", 300): strings.Repeat("a", MaxNameBytes),
	} {
		got, err := SafePath(in)
		if err != nil || got != want {
			t.Errorf("SafePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "..", "/", "./..", " . "} {
		if got, err := SafePath(in); err == nil {
			t.Errorf("SafePath(%q) = %q, want an error", in, got)
		}
	}
	if got := numbered("d/a.tar", 2); got != "d/a (2).tar" {
		t.Errorf("numbered: %q", got)
	}
	if got := numbered(".bashrc", 1); got != ".bashrc (1)" {
		t.Errorf("numbered: %q", got)
	}
}

// TestStalledTransferFails: a receiver that stops reading makes the sender
// fail after the idle timeout instead of sitting frozen, and the part of
// the file that arrived stays for a resume.
func TestStalledTransferFails(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "big"), randomBytes(32<<20))
	o, err := NewOffer(filepath.Join(src, "big"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := listen(t, 1), listen(t, 2)
	ta, tb := tickets(a, b, "stall")
	la, lb := connectPair(t, a, b, ta, tb, ConnectOptions{Idle: 300 * time.Millisecond})
	// The "receiver" answers GO and then reads nothing more.
	go func() {
		for {
			v, _, err := lb.readLine()
			if err != nil || v == "END" {
				break
			}
		}
		lb.send("GO")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), ioWait)
	defer cancel()
	start := time.Now()
	res, err := Send(ctx, la, o, nil)
	if err == nil {
		t.Fatal("a stalled transfer succeeded")
	}
	if ctx.Err() != nil {
		t.Fatalf("Send waited for the test's own deadline (%v) instead of the idle timeout", time.Since(start))
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("error %v, want a deadline", err)
	}
	if f := res.Files[0]; f.Err == nil || f.Moved != 0 {
		t.Errorf("file result %+v", f)
	}
}

// TestForeignPartUntouched: a NAME.part that the receiver did not make
// (someone's own file) is neither resumed nor truncated nor renamed, and
// a received file named like a partial is kept as it is.
func TestForeignPartUntouched(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "video"), []byte("the video"))
	writeFile(t, filepath.Join(dst, "video.part"), []byte("my own file"))
	probe, _ := os.Open(filepath.Join(dst, "video.part"))
	foreign := !isPart(probe)
	probe.Close()
	if !foreign {
		t.Skip("this file system cannot mark partial files (no user xattrs)")
	}
	o, err := NewOffer(filepath.Join(src, "video"))
	if err != nil {
		t.Fatal(err)
	}
	_, rres, serr, rerr := transfer(t, o, ReceiveOptions{Dir: dst})
	if serr != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", serr, rerr)
	}
	if rres[0].Err == nil {
		t.Error("received video over someone's video.part")
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "video.part")); string(b) != "my own file" {
		t.Errorf("video.part is now %q", b)
	}
}

// TestConcurrentSameName: two offers of one name into one folder at once
// never mix: each file saved holds exactly the bytes its hash says.
func TestConcurrentSameName(t *testing.T) {
	dst := t.TempDir()
	var offers []*Offer
	var datas [][]byte
	for i := range 2 {
		d := t.TempDir()
		data := randomBytes(4<<20 + i)
		datas = append(datas, data)
		writeFile(t, filepath.Join(d, "report.bin"), data)
		o, err := NewOffer(filepath.Join(d, "report.bin"))
		if err != nil {
			t.Fatal(err)
		}
		offers = append(offers, o)
	}
	var wg sync.WaitGroup
	results := make([][]FileResult, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i], _, _ = transfer(t, offers[i], ReceiveOptions{Dir: dst})
		}()
	}
	wg.Wait()
	for i, res := range results {
		for _, f := range res {
			if f.Err != nil {
				continue // refused while the other held the name: fine
			}
			got, err := os.ReadFile(filepath.Join(dst, f.Path))
			sum := blake3.Sum256(got)
			if err != nil || hex.EncodeToString(sum[:]) != f.Hash || !bytes.Equal(got, datas[i]) {
				t.Errorf("offer %d saved %s: %d bytes, not what it sent (%v)", i, f.Path, len(got), err)
			}
		}
	}
}

// TestEscapeNameRoundTrip: every name a file system can hold crosses a
// link line intact (and the line passes the receiver's checks).
func TestEscapeNameRoundTrip(t *testing.T) {
	for _, name := range []string{"plain.txt", "100%.txt", "a\x1b[31m", "\u202egnp.exe", "x\xffy", "中文 😀", "\u0085c1", "a%2Fb"} {
		e := escapeName(name)
		for _, r := range e {
			if unsafeRune(r) {
				t.Errorf("escapeName(%q) = %q holds %U", name, e, r)
			}
		}
		if got := unescapeName(e); got != name {
			t.Errorf("unescapeName(escapeName(%q)) = %q", name, got)
		}
	}
}

// TestManifestSizesCannotWrap: sizes that add up past int64 (to wrap
// round to a small total) are refused before anything is written.
func TestManifestSizesCannotWrap(t *testing.T) {
	dir := t.TempDir()
	a, b := net.Pipe()
	defer a.Close()
	answers := make(chan string, 1)
	go func() {
		var m strings.Builder
		m.WriteString("FILES 16384 0\n")
		for i := range 16384 {
			m.WriteString("F " + strconv.Itoa(i) + " 1125899906842624 f" + strconv.Itoa(i) + "\n")
		}
		m.WriteString("END\n")
		a.Write([]byte(m.String()))
	}()
	go func() {
		got, _ := io.ReadAll(a)
		answers <- string(got)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), ioWait)
	defer cancel()
	_, err := Receive(ctx, newLink(b, ioWait), ReceiveOptions{Dir: dir, MaxSize: 1000}, nil)
	if !errors.Is(err, ErrLinkProtocol) {
		t.Fatalf("Receive: %v, want a protocol error", err)
	}
	if got := <-answers; strings.Contains(got, "GO") {
		t.Errorf("the receiver answered %q", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("wrote %v", ents)
	}
}

// TestSlowFileOutlastsIdle: a file that takes longer than the idle timeout
// to cross (the receiver silent meanwhile) is not taken for a dead link,
// as long as bytes keep moving.
func TestSlowFileOutlastsIdle(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	data := randomBytes(600 << 10)
	writeFile(t, filepath.Join(src, "slow"), data)
	o, err := NewOffer(filepath.Join(src, "slow"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := listen(t, 1), listen(t, 2)
	ta, tb := tickets(a, b, "slow")
	la, lb := connectPair(t, a, b, ta, tb, ConnectOptions{Idle: 300 * time.Millisecond})
	la.SetRate(600 << 10) // a second for the file: three idle timeouts
	ctx, cancel := context.WithTimeout(context.Background(), ioWait)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Receive(ctx, lb, ReceiveOptions{Dir: dst}, nil)
		done <- err
	}()
	res, err := Send(ctx, la, o, nil)
	if err != nil || res.Files[0].Err != nil {
		t.Fatalf("send: %v, %v", err, res.Files[0].Err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "slow")); !bytes.Equal(got, data) {
		t.Error("the slow file differs")
	}
}
