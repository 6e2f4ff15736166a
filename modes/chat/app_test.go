package chat

import (
	"context"
	"testing"

	"qchat/modes/client"
	"qchat/modes/internal/fakeserver"
)

// newTestApp is an app as Run makes it, without a connection (cl is nil
// until connect), piped, with no history.
func newTestApp(t *testing.T, jsonOut bool) (a *app, stdout, stderr *fakeserver.Buffer) {
	t.Helper()
	stdout, stderr = &fakeserver.Buffer{}, &fakeserver.Buffer{}
	a = newApp(context.Background(), Config{Timeout: fakeserver.Guard, NoHistory: true, Password: "pw", MaxChats: 8, Dir: t.TempDir(), JSON: jsonOut},
		stdout, stderr)
	t.Cleanup(func() {
		a.bgCancel()
		a.links.bg.Wait()
	})
	return a, stdout, stderr
}

// connect gives the app a connection to a fake server.
func connect(t *testing.T, a *app) *fakeserver.Conn {
	t.Helper()
	s := fakeserver.New(t, fakeserver.Greeting)
	ctx, cancel := context.WithTimeout(context.Background(), fakeserver.Guard)
	defer cancel()
	cl := client.NewSession(client.SessionConfig{Addr: s.Addr(), GiveUp: fakeserver.Guard, WaitUp: fakeserver.Guard, Options: client.Options{NoTLS: true}})
	if err := cl.Connect(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	a.cl = cl
	return s.Accept(t)
}

// loginApp logs the app in as 1000 alice.
func loginApp(t *testing.T, a *app, sc *fakeserver.Conn) {
	t.Helper()
	done := fakeserver.Async(func() error { return a.login(context.Background(), "alice", nil) })
	sc.Login(t, 1000, "alice")
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
}

// execAsync runs one input line while the test plays the server.
func execAsync(a *app, line string) <-chan error {
	return fakeserver.Async(func() error { return a.exec(context.Background(), line) })
}
