package chat

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"qchat/modes/client"
	"qchat/modes/internal/fakeserver"
)

// syncApp is a logged-in app with history files (under a temporary
// XDG_DATA_HOME) on a fake server that keeps history; login's own sync is
// answered with first (a page), then an empty page.
func syncApp(t *testing.T, first ...string) (*app, *fakeserver.Conn, *fakeserver.Buffer, string) {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	a, out, _ := newTestApp(t, false)
	a.cfg.NoHistory = false
	s := fakeserver.New(t, fakeserver.Greeting+" history")
	ctx, cancel := context.WithTimeout(context.Background(), fakeserver.Guard)
	defer cancel()
	cl := client.NewSession(client.SessionConfig{Addr: s.Addr(), GiveUp: fakeserver.Guard, WaitUp: fakeserver.Guard, Options: client.Options{NoTLS: true}})
	if err := cl.Connect(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	a.cl = cl
	sc := s.Accept(t)
	done := fakeserver.Async(func() error { return a.login(context.Background(), "alice", nil) })
	sc.Login(t, 1000, "alice")
	if cmd := sc.Answer(t, "HISTORY", first...); !slices.Equal(cmd.Args, []string{"*", "after", "0", "200"}) {
		t.Fatalf("the sync at login asked HISTORY %q", cmd.Args)
	}
	if strings.HasSuffix(first[len(first)-1], " more") {
		sc.Answer(t, "HISTORY", "210 0 messages")
	}
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(os.Getenv("XDG_DATA_HOME"), "qchat", "test", "1000")
	return a, sc, out, dir
}

func fileLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.SplitN(l, "\t", 3)
		out = append(out, f[1]+" "+strings.ReplaceAll(f[2], "\t", " "))
	}
	return out
}

// TestSyncAtLoginAndAgain: the login's sync pages through everything,
// into each conversation's file, escaped, and keeps its mark; /sync goes
// on from the mark, and what it had already is not written twice.
func TestSyncAtLoginAndAgain(t *testing.T) {
	a, sc, out, dir := syncApp(t,
		"210-5 2026-11-22T10:00:00.000Z out 1000 alice 1001 hi bob",
		"210-6 2026-11-22T10:00:01.000Z in 1001 bob 1001 \x1b[31mred\ttab",
		"210-7 2026-11-22T10:00:02.000Z in 1002 carol #team team news",
		"210 3 messages more")
	if got, want := fileLines(t, filepath.Join(dir, "1001.log")), []string{"5 out 1000 alice hi bob", `6 in 1001 bob \x1b[31mred\ttab`}; !slices.Equal(got, want) {
		t.Fatalf("1001.log: %q, want %q", got, want)
	}
	if got := fileLines(t, filepath.Join(dir, "#team.log")); !slices.Equal(got, []string{"7 in 1002 carol team news"}) {
		t.Fatalf("#team.log: %q", got)
	}
	if !strings.Contains(out.String(), "synced: 3 messages from the server, 3 new here in 2 conversations") {
		t.Fatalf("login printed %q", out.String())
	}

	done := execAsync(a, "/sync")
	cmd := sc.Answer(t, "HISTORY",
		"210-6 2026-11-22T10:00:01.000Z in 1001 bob 1001 \x1b[31mred\ttab", // had it
		"210-9 2026-11-22T10:00:03.000Z in 1001 bob 1001 new",
		"210 2 messages")
	if !slices.Equal(cmd.Args, []string{"*", "after", "7", "200"}) {
		t.Fatalf("/sync asked HISTORY %q, want after the mark 7", cmd.Args)
	}
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "synced: 2 messages from the server, 1 new here in 1 conversations") {
		t.Fatalf("/sync printed %q", out.String())
	}
	if got := fileLines(t, filepath.Join(dir, "1001.log")); len(got) != 3 || got[2] != "9 in 1001 bob new" {
		t.Fatalf("1001.log after /sync: %q", got)
	}
	if mark, err := a.rec.Hist.Mark(syncMark); err != nil || mark != 9 {
		t.Fatalf("mark %d, %v; want 9", mark, err)
	}
}

// TestHistoryServerMerges: /history ID --server asks for the last N of
// the conversation, merges older lines in front of newer ones, and shows
// the result, escaped; a malformed page writes nothing.
func TestHistoryServerMerges(t *testing.T) {
	a, sc, out, dir := syncApp(t,
		"210-9 2026-11-22T10:00:03.000Z in 1001 bob 1001 newest",
		"210 1 messages")
	done := execAsync(a, "/history 1001 3 --server")
	cmd := sc.Answer(t, "HISTORY",
		"210-4 2026-11-22T09:00:00.000Z out 1000 alice 1001 older \x1b]0;x\x07",
		"210-9 2026-11-22T10:00:03.000Z in 1001 bob 1001 newest",
		"210 2 messages more")
	if !slices.Equal(cmd.Args, []string{"1001", "3"}) {
		t.Fatalf("asked HISTORY %q", cmd.Args)
	}
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	if got := fileLines(t, filepath.Join(dir, "1001.log")); !slices.Equal(got, []string{`4 out 1000 alice older \x1b]0;x\x07`, "9 in 1001 bob newest"}) {
		t.Fatalf("1001.log: %q", got)
	}
	o := out.String()
	if !strings.Contains(o, "server: 2 messages of bob (1001), 1 new here") || !strings.Contains(o, `older \x1b]0;x\x07`) || strings.Contains(o, "\x1b") {
		t.Fatalf("printed %q", o)
	}

	done = execAsync(a, "/history 1001 --server")
	sc.Answer(t, "HISTORY", "210-11 noon in 1001 bob 1001 bad time", "210 1 messages")
	if err := fakeserver.Await(t, done); err == nil || !strings.Contains(err.Error(), "malformed HISTORY line") {
		t.Fatalf("a malformed page: %v", err)
	}
	if got := fileLines(t, filepath.Join(dir, "1001.log")); len(got) != 2 {
		t.Fatalf("1001.log after a malformed page: %q", got)
	}
}

// TestSyncNeedsServerHistory: against a server that keeps none, /sync
// and --server say so and send nothing.
func TestSyncNeedsServerHistory(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	a, _, _ := newTestApp(t, false)
	a.cfg.NoHistory = false
	sc := connect(t, a)
	loginApp(t, a, sc)
	for _, line := range []string{"/sync", "/history 1001 --server"} {
		if err := a.exec(context.Background(), line); err == nil || !strings.Contains(err.Error(), "keeps no history") {
			t.Errorf("%s: %v", line, err)
		}
	}
}
