package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"qchat/modes/serve/dedupe"
	"qchat/modes/serve/resume"
	"qchat/modes/serve/store/storetest"
	"qchat/protocol"
)

// A client id record crosses nodes as text and comes back the same; what
// no node writes is refused.
func TestSentIDRecord(t *testing.T) {
	at := time.UnixMilli(1764748800123)
	for _, e := range []dedupe.Entry{
		{Sender: 1000, CID: "k3f9qz2a.7", ID: 812, To: 1001, Time: at},
		{Sender: 1000, CID: "a-b_c", ID: 1 << 40, Group: "#team", Time: at},
	} {
		got, err := parseSentID(appendSentID(nil, e))
		if err != nil || got != e {
			t.Errorf("round trip of %+v: %+v, %v", e, got, err)
		}
	}
	for _, bad := range []string{"", "1000 k 812 1001 - 1 x", "x k 812 1001 - 1", "1000 k 0 1001 - 1",
		"1000 k 812 -1 - 1", "1000 k 812 0 - 1", "1000 k 812 1001 #team 1", "1000 k\x00 812 1001 - 1",
		"1000 " + strings.Repeat("k", 33) + " 812 1001 - 1", "1000 k 812 0 # 1", "1000 k 812 0 #\x1b 1", "1000 k 812 1001 - soon"} {
		if _, err := parseSentID([]byte(bad)); !errors.Is(err, errSentID) {
			t.Errorf("parseSentID(%q) = %v, want a refusal", bad, err)
		}
	}
}

// An offer message is checked before anything is done with it.
func TestOfferMsgCheck(t *testing.T) {
	key := "SHA256:" + strings.Repeat("A", 43)
	ticket := strings.Repeat("a", 26)
	good := []offerMsg{
		{Kind: "offer", Ticket: ticket, From: 1000, To: 1001, Purpose: "file", Summary: "1 10 f.bin", Key: key, Remote: "127.0.0.1:5000", Eps: " 10.0.0.1:5000"},
		{Kind: "accepted", Ticket: ticket, Key: key, Remote: "[::1]:5000", LinkBy: 1, Secret: ticket},
		{Kind: "accepted", Ticket: ticket, Key: key, Remote: "[::1]:5000", LinkBy: 1, Secret: ticket, Eps: " port=4000 [2001:db8::1]:4000"},
		{Kind: "refused", Ticket: ticket}, {Kind: "cancel", Ticket: ticket}, {Kind: "gone", Ticket: ticket},
	}
	for _, m := range good {
		if err := m.check(); err != nil {
			t.Errorf("%+v refused: %v", m, err)
		}
	}
	bad := []offerMsg{
		{Kind: "nope", Ticket: ticket},
		{Kind: "gone", Ticket: "short"},
		{Kind: "gone", Ticket: strings.Repeat("A", 26)},
		{Kind: "offer", Ticket: ticket, From: 1000, To: 1001, Purpose: "shell", Key: key, Remote: "127.0.0.1:5000"},
		{Kind: "offer", Ticket: ticket, From: 1000, To: 1001, Purpose: "chat", Key: "nokey", Remote: "127.0.0.1:5000"},
		{Kind: "offer", Ticket: ticket, From: 1000, To: 1001, Purpose: "file", Summary: "1 1 \x1b[2J", Key: key, Remote: "127.0.0.1:5000"},
		{Kind: "offer", Ticket: ticket, From: 0, To: 1001, Purpose: "chat", Key: key, Remote: "127.0.0.1:5000"},
		{Kind: "accepted", Ticket: ticket, Key: key, Remote: "nowhere", LinkBy: 1, Secret: ticket},
		{Kind: "accepted", Ticket: ticket, Key: key, Remote: "h:1", LinkBy: 1, Secret: ticket, Eps: " h:1 junk"},
		{Kind: "accepted", Ticket: ticket, Key: key, Remote: "h:1", LinkBy: 1, Secret: ticket, Eps: " port=0"},
		{Kind: "accepted", Ticket: ticket, Key: key, Remote: "h:1", LinkBy: 1, Secret: ticket, Eps: " h:1 port=4000"},
	}
	for _, m := range bad {
		if err := m.check(); !errors.Is(err, errOfferMsg) {
			t.Errorf("%+v taken: %v", m, err)
		}
	}
}

// clusterNode starts a node of a cluster on store (a PostgreSQL URL) and
// NATS at url, with a short node timeout.
func clusterNode(t *testing.T, storeURL, url, node string) *Server {
	t.Helper()
	srv := startTestServer(t, func(c *Config) {
		c.Data = t.TempDir()
		c.Store, c.Cluster, c.Node, c.NodeTimeout = storeURL, url, node, 400*time.Millisecond
		c.TLS = TLSOff
	})
	t.Cleanup(srv.Shutdown)
	return srv
}

// Two nodes with one resume.key (as the README asks): a token is good
// for one login on either, not one on each.
func TestTokenSpentOnEveryNode(t *testing.T) {
	storeURL, url := clusterEnv(t)
	a := clusterNode(t, storeURL, url, "a")
	key, err := os.ReadFile(filepath.Join(a.cfg.Data, resume.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	dataB := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataB, resume.KeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	b := startTestServer(t, func(c *Config) {
		c.Data, c.Store, c.Cluster, c.Node, c.NodeTimeout = dataB, storeURL, url, "b", 400*time.Millisecond
		c.TLS = TLSOff
	})
	t.Cleanup(b.Shutdown)
	alice := dial(t, a, "alice")
	register(alice, "alice", "pw")
	alice.login("alice", "pw")
	tok, tok2 := alice.token(), alice.token()
	alice.want("QUIT", protocol.CodeBye)
	dial(t, b, "bob1").want("RESUME "+tok, protocol.CodeLoggedIn)
	dial(t, a, "replayA").want("RESUME "+tok, protocol.CodeLoginFailed)
	dial(t, b, "replayB").want("RESUME "+tok, protocol.CodeLoginFailed)
	dial(t, a, "otherA").want("RESUME "+tok2, protocol.CodeLoggedIn)
}

func clusterEnv(t *testing.T) (storeURL, natsURL string) {
	t.Helper()
	natsURL = os.Getenv("QCHAT_TEST_NATS")
	if natsURL == "" || os.Getenv(storetest.EnvPostgres) == "" {
		t.Skip("cluster tests skipped: set QCHAT_TEST_NATS and " + storetest.EnvPostgres)
	}
	s, err := storetest.NewPostgresSchema(os.Getenv(storetest.EnvPostgres))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Drop() })
	return s.URL, natsURL
}

// A message forwarded to the node of its recipient, which dies before it
// answers: the sender's node stores it under the id the sender was given,
// and the recipient, logging in again, gets it once under that id.
func TestForwardedMessageOutlivesItsNode(t *testing.T) {
	storeURL, url := clusterEnv(t)
	a := clusterNode(t, storeURL, url, "a")
	alice := dial(t, a, "alice")
	register(alice, "alice", "pw")
	alice.login("alice", "pw")
	bobC := dial(t, a, "bob")
	bob := register(bobC, "bob", "pw")
	bobC.want("QUIT", protocol.CodeBye)

	// a ghost node, as NATS shows it: heartbeats and bob online on it
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	prefix := a.cl.Prefix()
	var fwd atomic.Int32
	sub, err := nc.Subscribe(prefix+".node.ghost.fwd", func(*nats.Msg) { fwd.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	const inc = "00000000000000aa"
	beat := func() { nc.Publish(prefix+".hb", []byte("HB ghost "+inc+" 127.0.0.1:1")) }
	stop := make(chan struct{})
	beating := make(chan struct{})
	go func() { // alive until the message is forwarded to it
		defer close(beating)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			beat()
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	nc.Publish(prefix+".pres", []byte(fmt.Sprintf("FROM ghost %s\nBATCH 0 1\nPRESENCE %d bob online\n", inc, bob)))
	nc.Flush()
	deadline := time.Now().Add(5 * time.Second)
	for !a.onAnotherNode(bob) {
		if time.Now().After(deadline) {
			t.Fatal("node a never saw bob on the ghost node")
		}
		time.Sleep(20 * time.Millisecond) // polling, not waiting blind
	}

	// alice's message goes to the ghost, which never answers, then stops
	alice.send("@m1 MSG bob across")
	deadline = time.Now().Add(5 * time.Second)
	for fwd.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing was forwarded to the ghost node")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop) // SIGKILL, as NATS sees it
	<-beating
	l := alice.waitFor("the answer", func(l protocol.Line) bool { return l.Tag == "m1" })
	id := sent(t, l, "stored", bob) // once the ghost was taken for dead

	bobC = dial(t, a, "bob")
	bobC.login("bob", "pw")
	m := bobC.nextMsg()
	if m.id != id || m.text != "across" {
		t.Fatalf("bob got %+v, want message %d 'across'", m, id)
	}
	bobC.send("ACK " + strconv.FormatInt(id, 10))
	bobC.quiet()
}

// FuzzClusterPayloads feeds what the server reads from other nodes (JSON
// of forwarded messages, answers and offers, and client-id records) with the same bytes: none may panic or take what no node
// writes.
func FuzzClusterPayloads(f *testing.F) {
	for _, s := range []string{
		`[{"Recipient":1001,"ID":812,"Kind":"MSG","Sender":1000,"Nick":"alice","Time":"2026-12-03T07:00:00Z","Body":"hi","CID":"k.1","GroupKey":""}]`,
		`[{"to":1001,"id":812,"how":"delivered","mark":"shown"}]`,
		`{"kind":"offer","ticket":"aaaaaaaaaaaaaaaaaaaaaaaaaa","from":1000,"to":1001,"purpose":"chat","key":"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","remote":"127.0.0.1:1"}`,
		"1000 k3f9.1 812 1001 - 1764748800123",
		"1000 k 812 0 #team 1",
		`[{"Recipient":-1}]`, `null`, `[`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if items, err := decodeForward(data); err == nil {
			for _, it := range items {
				if it.Recipient <= 0 || it.ID <= 0 || !it.Stored && it.Kind != "MSG" && it.Kind != "GMSG" {
					t.Fatalf("decodeForward took %+v", it)
				}
			}
		}
		if answers, err := decodeSafe(data); err == nil {
			for _, a := range answers {
				if a.ID <= 0 || a.How != "delivered" && a.How != "stored" && a.How != "failed" {
					t.Fatalf("decodeSafe took %+v", a)
				}
			}
		}
		var m offerMsg
		if json.Unmarshal(data, &m) == nil && m.check() == nil && len(m.Ticket) != 26 {
			t.Fatalf("offerMsg.check took %+v", m)
		}
		if e, err := parseSentID(data); err == nil {
			again, err := parseSentID(appendSentID(nil, e))
			if err != nil || again != e {
				t.Fatalf("parseSentID(%q) = %+v, but not again: %+v %v", data, e, again, err)
			}
		}
	})
}
