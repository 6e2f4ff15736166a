package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"qchat/protocol"
	"qchat/xfer"
)

// fakeClock is the offline files' clock in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// offlineUser is a raw client with a peer of its own for links.
type offlineUser struct {
	*client
	id     int64
	peer   *xfer.Peer
	events []protocol.Line // OFFLINE events read before LINKKEY's reply
}

// nextOffline returns the next OFFLINE event.
func (u *offlineUser) nextOffline() protocol.Line {
	u.t.Helper()
	if len(u.events) > 0 {
		l := u.events[0]
		u.events = u.events[1:]
		return l
	}
	return u.waitFor("OFFLINE", func(l protocol.Line) bool { return l.Kind == "OFFLINE" })
}

// newOfflineUser logs nick in (registering it first unless it exists).
func newOfflineUser(t *testing.T, srv *Server, nick string) *offlineUser {
	t.Helper()
	c := dial(t, srv, nick)
	var id int64
	if a := srv.dir.lookup(nick); a != nil {
		id = a.id
	} else {
		id = register(c, nick, "pw")
	}
	c.login(nick, "pw")
	p, err := xfer.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.SetMe(id)
	u := &offlineUser{client: c, id: id, peer: p}
	c.send("@key LINKKEY " + p.Fingerprint())
	for {
		l := c.next()
		if l.Kind == "OFFLINE" {
			u.events = append(u.events, l)
		}
		if l.Tag == "key" {
			if l.Code != protocol.CodeOK {
				t.Fatalf("LINKKEY: %d %s", l.Code, l.Text)
			}
			return u
		}
	}
}

// hostTicket reads a 260 of PUT or GET.
func hostTicketOf(t *testing.T, l protocol.Line, offerer bool) xfer.Ticket {
	t.Helper()
	f := strings.Fields(l.Text)
	if l.Code != protocol.CodeTicket || len(f) != 4 {
		t.Fatalf("got %d %q, want 260 <ticket> <link-by> <server-key> <secret>", l.Code, l.Text)
	}
	by, err := protocol.ParseTime(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return xfer.Ticket{ID: f[0], Purpose: "file", Peer: xfer.HostID, Expires: by, PeerKey: f[2], RelaySecret: f[3], Offerer: offerer}
}

func (u *offlineUser) link(t *testing.T, srv *Server, tk xfer.Ticket) *xfer.Link {
	t.Helper()
	l, err := u.peer.Connect(context.Background(), tk, xfer.ConnectOptions{Server: srv.Addr().String(), ForceRelay: true, Timeout: ioWait})
	if err != nil {
		t.Fatalf("%s: link to the server: %v", u.name, err)
	}
	return l
}

// put leaves a file for to and returns what Send said.
func (u *offlineUser) put(t *testing.T, srv *Server, to, local string) (xfer.SendResult, error) {
	t.Helper()
	o, err := xfer.NewOffer(local)
	if err != nil {
		t.Fatal(err)
	}
	n, total, name := o.Summary()
	tk := hostTicketOf(t, u.want("PUT "+to+" "+strconv.Itoa(n)+" "+strconv.FormatInt(total, 10)+" "+name, protocol.CodeTicket), true)
	return xfer.Send(context.Background(), u.link(t, srv, tk), o, nil)
}

func writeRandom(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOfflineFileLeftAndTaken: alice leaves a file for bob, who is
// offline; bob is told at login, takes it over a link to the server
// (verified, into his folder), and alice hears that he took it. The
// server's copy is gone then.
func TestOfflineFileLeftAndTaken(t *testing.T) {
	data := t.TempDir()
	srv := startTestServer(t, func(c *Config) { c.Data = data; c.OfflineQuota = 1 << 20 })
	defer srv.Shutdown()
	alice := newOfflineUser(t, srv, "alice")
	bobReg := dial(t, srv, "bobreg")
	register(bobReg, "bob", "pw")

	src := filepath.Join(t.TempDir(), "report.pdf")
	want := writeRandom(t, src, 300<<10)
	res, err := alice.put(t, srv, "bob", src)
	if err != nil || len(res.Failed()) > 0 {
		t.Fatalf("put: %v %+v", err, res)
	}
	blobs, _ := os.ReadDir(filepath.Join(data, "offline", "files"))
	if len(blobs) != 1 || blobs[0].Name() != res.Files[0].Hash {
		t.Fatalf("server's files: %v, want one named %s", blobs, res.Files[0].Hash)
	}

	bob := newOfflineUser(t, srv, "bob")
	ev := bob.nextOffline()
	if ev.Args[1] != strconv.FormatInt(alice.id, 10) || ev.Args[2] != "alice" || ev.Args[4] != strconv.Itoa(len(want)) || ev.Args[5] != "report.pdf" {
		t.Fatalf("OFFLINE event %q", ev.Args)
	}
	list := bob.do("FILES")
	if list.Code != protocol.CodeList || !strings.HasPrefix(list.Text, "1 ") {
		t.Fatalf("FILES: %d %q", list.Code, list.Text)
	}
	dir := t.TempDir()
	tk := hostTicketOf(t, bob.want("GET "+ev.Args[0], protocol.CodeTicket), false)
	files, err := xfer.Receive(context.Background(), bob.link(t, srv, tk), xfer.ReceiveOptions{Dir: dir, Count: 1, Bytes: int64(len(want))}, nil)
	if err != nil || len(files) != 1 || files[0].Err != nil {
		t.Fatalf("receive: %v %+v", err, files)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "report.pdf"))
	if !bytes.Equal(got, want) {
		t.Fatal("bob's copy differs")
	}
	n := alice.waitFor("the NOTICE", func(l protocol.Line) bool { return l.Kind == "NOTICE" })
	if strings.Join(n.Args[4:], " ") != "offline-taken "+ev.Args[0]+" report.pdf" {
		t.Fatalf("alice's notice %q", n.Args)
	}
	bob.want("GET "+ev.Args[0], protocol.CodeSequence) // gone
	if l := bob.do("FILES"); !strings.HasPrefix(l.Text, "0 ") {
		t.Fatalf("FILES after: %q", l.Text)
	}
	blobs, _ = os.ReadDir(filepath.Join(data, "offline", "files"))
	if len(blobs) != 0 {
		t.Fatalf("the server still holds %v", blobs)
	}
}

// TestOfflineQuotaAndRoom: a sender may leave up to the quota (what waits
// and what is under way); past it, and with no room on the disk, PUT is
// refused before a byte moves, with a reply that says why.
func TestOfflineQuotaAndRoom(t *testing.T) {
	var free int64 = 1 << 40
	var mu sync.Mutex
	srv := startTestServer(t, func(c *Config) {
		c.Data = t.TempDir()
		c.OfflineQuota = 100 << 10
		c.offlineFree = func(string) (int64, bool) { mu.Lock(); defer mu.Unlock(); return free, true }
	})
	defer srv.Shutdown()
	alice := newOfflineUser(t, srv, "alice")
	register(dial(t, srv, "reg"), "bob", "pw")
	src := filepath.Join(t.TempDir(), "a.bin")
	writeRandom(t, src, 60<<10)
	if res, err := alice.put(t, srv, "bob", src); err != nil || len(res.Failed()) > 0 {
		t.Fatalf("put: %v %+v", err, res)
	}
	l := alice.want("PUT bob 1 "+strconv.Itoa(60<<10)+" b.bin", protocol.CodeTooLong)
	if !strings.Contains(l.Text, "quota") {
		t.Errorf("over quota: %q does not say so", l.Text)
	}
	// A granted upload holds its share of the quota until it ends.
	alice.want("PUT bob 1 "+strconv.Itoa(30<<10)+" c.bin", protocol.CodeTicket)
	alice.want("PUT bob 1 "+strconv.Itoa(30<<10)+" d.bin", protocol.CodeTooLong)
	mu.Lock()
	free = 10 << 20
	mu.Unlock()
	alice.want("PUT bob 1 10 e.bin", protocol.CodeRateLimit)
	alice.want("PUT nobody 1 10 e.bin", protocol.CodeNoSuchUser)
	alice.want("PUT alice 1 10 e.bin", protocol.CodeSyntax)
	alice.want("PUT bob 0 10 e.bin", protocol.CodeSyntax)
	alice.want("GET 99999", protocol.CodeSequence)
	alice.want("GET x", protocol.CodeSyntax)
}

// TestOfflineOff: without --offline-files the verbs say so.
func TestOfflineOff(t *testing.T) {
	srv := testServer(t, t.TempDir())
	defer srv.Shutdown()
	alice := dial(t, srv, "alice")
	register(alice, "alice", "pw")
	alice.login("alice", "pw")
	for _, cmd := range []string{"PUT alice 1 1 x", "GET 1", "DROP 1", "FILES"} {
		if l := alice.want(cmd, protocol.CodeNotYet); !strings.Contains(l.Text, "--offline-files") {
			t.Errorf("%s: %q", cmd, l.Text)
		}
	}
}

// TestOfflineExpiryAndRefusal: a file not taken within the maximum age is
// deleted and its sender told, also when the sender was offline then (a
// stored notice); a refused file likewise.
func TestOfflineExpiryAndRefusal(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	data := t.TempDir()
	srv := startTestServer(t, func(c *Config) {
		c.Data = data
		c.OfflineQuota = 1 << 20
		c.OfflineMaxAge = time.Hour
		c.offlineNow = clock.now
	})
	defer srv.Shutdown()
	alice := newOfflineUser(t, srv, "alice")
	register(dial(t, srv, "reg"), "bob", "pw")
	dir := t.TempDir()
	writeRandom(t, filepath.Join(dir, "old.bin"), 1000)
	writeRandom(t, filepath.Join(dir, "new.bin"), 2000)
	writeRandom(t, filepath.Join(dir, "unwanted.bin"), 3000)
	for _, n := range []string{"old.bin", "new.bin", "unwanted.bin"} {
		if res, err := alice.put(t, srv, "bob", filepath.Join(dir, n)); err != nil || len(res.Failed()) > 0 {
			t.Fatalf("put %s: %v %+v", n, err, res)
		}
		if n == "old.bin" {
			clock.add(40 * time.Minute)
		}
	}
	alice.want("QUIT", protocol.CodeBye)

	clock.add(30 * time.Minute) // old.bin is 70 minutes old, new.bin 30
	srv.expireOffline()

	bob := newOfflineUser(t, srv, "bob")
	var ids []string
	for len(ids) < 2 {
		ev := bob.nextOffline()
		if ev.Args[5] == "old.bin" {
			t.Fatal("bob was told of an expired file")
		}
		ids = append(ids, ev.Args[0])
	}
	bob.want("DROP "+ids[1], protocol.CodeOK)
	bob.want("DROP "+ids[1], protocol.CodeSequence)

	alice2 := dial(t, srv, "alice2")
	alice2.login("alice", "pw")
	var notes []string
	for len(notes) < 2 {
		n := alice2.waitFor("a NOTICE", func(l protocol.Line) bool { return l.Kind == "NOTICE" })
		notes = append(notes, strings.Join(n.Args[4:], " "))
	}
	if !strings.HasPrefix(notes[0], "offline-expired ") || !strings.HasSuffix(notes[0], " old.bin") ||
		!strings.HasPrefix(notes[1], "offline-refused "+ids[1]+" unwanted.bin") {
		t.Fatalf("alice's notices: %q", notes)
	}
	blobs, _ := os.ReadDir(filepath.Join(data, "offline", "files"))
	if len(blobs) != 1 {
		t.Fatalf("the server holds %d files, want 1 (new.bin)", len(blobs))
	}
}

// TestOfflineHostileNames: names a sender makes up are reduced by the
// server as by any receiver (no way out of its folder, no control
// characters), told to the recipient safe, and saved inside its folder.
func TestOfflineHostileNames(t *testing.T) {
	data := t.TempDir()
	srv := startTestServer(t, func(c *Config) { c.Data = data; c.OfflineQuota = 1 << 20 })
	defer srv.Shutdown()
	alice := newOfflineUser(t, srv, "alice")
	register(dial(t, srv, "reg"), "bob", "pw")
	src := filepath.Join(t.TempDir(), "x")
	want := writeRandom(t, src, 100)
	o := &xfer.Offer{Items: []xfer.Item{
		{Local: src, Name: "../../../escape\x1b[2J.txt", Size: 100},
		{Local: src, Name: "/etc/passwd", Size: 100},
	}, Total: 200}
	tk := hostTicketOf(t, alice.want("PUT bob 2 200 2 files", protocol.CodeTicket), true)
	res, err := xfer.Send(context.Background(), alice.link(t, srv, tk), o, nil)
	if err != nil || len(res.Failed()) > 0 {
		t.Fatalf("put: %v %+v", err, res)
	}
	bob := newOfflineUser(t, srv, "bob")
	dir := t.TempDir()
	for range 2 {
		ev := bob.nextOffline()
		name := ev.Args[5]
		if strings.ContainsAny(name, "\x1b\\") || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
			t.Fatalf("told the name %q", name)
		}
		tk := hostTicketOf(t, bob.want("GET "+ev.Args[0], protocol.CodeTicket), false)
		files, err := xfer.Receive(context.Background(), bob.link(t, srv, tk), xfer.ReceiveOptions{Dir: dir, Count: 1, Bytes: 100}, nil)
		if err != nil || len(files) != 1 || files[0].Err != nil {
			t.Fatalf("receive %q: %v %+v", name, err, files)
		}
		got, err := os.ReadFile(filepath.Join(dir, files[0].Path))
		if err != nil || !bytes.Equal(got, want) || strings.HasPrefix(files[0].Path, "/") || strings.Contains(files[0].Path, "..") {
			t.Fatalf("saved as %q: %v", files[0].Path, err)
		}
	}
	// Nothing landed outside the folders of the test.
	if _, err := os.Stat(filepath.Join(data, "..", "escape\x1b[2J.txt")); err == nil {
		t.Fatal("a file was written outside the server's folder")
	}
}

// TestOfflineToldAtOnce: a file left for someone who is online (an offer
// not answered) is told at once, not at the next login.
func TestOfflineToldAtOnce(t *testing.T) {
	srv := startTestServer(t, func(c *Config) { c.Data = t.TempDir(); c.OfflineQuota = 1 << 20 })
	defer srv.Shutdown()
	alice := newOfflineUser(t, srv, "alice")
	bob := newOfflineUser(t, srv, "bob")
	src := filepath.Join(t.TempDir(), "now.txt")
	writeRandom(t, src, 10)
	if res, err := alice.put(t, srv, "bob", src); err != nil || len(res.Failed()) > 0 {
		t.Fatalf("put: %v %+v", err, res)
	}
	ev := bob.nextOffline()
	if ev.Args[5] != "now.txt" || ev.Args[4] != "10" {
		t.Fatalf("OFFLINE %q", ev.Args)
	}
}
