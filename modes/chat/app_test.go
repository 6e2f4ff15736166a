package chat

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"qchat/modes/client"
	"qchat/xfer"
)

// syncBuffer is a bytes.Buffer safe for the goroutines of an app.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTestApp is an app as Run makes it, without a connection (cl is nil
// until connect), piped, with no history.
func newTestApp(t *testing.T, jsonOut bool) (a *app, stdout, stderr *syncBuffer) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	a = &app{
		cfg:    Config{Timeout: guard, NoHistory: true, Password: "pw", MaxChats: 8, Dir: t.TempDir(), JSON: jsonOut},
		known:  make(map[int64]string),
		ready:  make(chan struct{}),
		stderr: stderr,
	}
	a.seenCond = sync.NewCond(&a.mu)
	a.links = links{offers: make(map[string]client.OfferEvent), chats: make(map[int64]*xfer.Chat), retry: make(map[string]retryable)}
	a.bgCtx, a.bgCancel = context.WithCancel(context.Background())
	t.Cleanup(func() {
		a.bgCancel()
		a.links.bg.Wait()
	})
	a.out = client.NewPrinter(stdout, jsonOut)
	return a, stdout, stderr
}

// connect gives the app a connection to a fake server.
func connect(t *testing.T, a *app) *serverConn {
	t.Helper()
	s := newFakeServer(t, "220 test qchat/1 ready")
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	cl, err := client.Dial(ctx, s.addr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	a.cl = cl
	return s.accept(t)
}

// loginApp logs the app in as 1000 alice.
func loginApp(t *testing.T, a *app, sc *serverConn) {
	t.Helper()
	done := async(func() error { return a.login(context.Background(), "alice", nil) })
	cmd := sc.expect(t, "USER")
	sc.reply(t, cmd.Tag, "331 password required")
	cmd = sc.expect(t, "PASS")
	sc.reply(t, cmd.Tag, "230 1000 alice")
	if err := await(t, done); err != nil {
		t.Fatal(err)
	}
}

// execAsync runs one input line while the test plays the server.
func execAsync(a *app, line string) <-chan error {
	return async(func() error { return a.exec(context.Background(), line) })
}
