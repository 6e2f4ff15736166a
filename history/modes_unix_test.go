//go:build unix

package history

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

func TestModes(t *testing.T) {
	old := syscall.Umask(0) // whatever the umask, the modes are forced
	defer syscall.Umask(old)

	root := t.TempDir()
	dir := filepath.Join(root, "qchat", "srv", "1000")
	l := openLog(t, dir)
	for d := dir; d != root; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o700 {
			t.Errorf("%s: mode %o, want 700", d, m)
		}
	}
	mustAppend(t, l, "bob", rec(1, "x"))
	// A file someone made with a wider mode is narrowed on open.
	wide := filepath.Join(dir, "alice.log")
	if err := os.WriteFile(wide, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, "alice", rec(1, "x"))
	for _, p := range []string{l.Path("bob"), wide} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", p, m)
		}
	}
	// Has and Read never create a file.
	if has, err := l.Has("nobody", 1); has || err != nil {
		t.Errorf("Has on a missing file = %v, %v", has, err)
	}
	if recs, err := l.Read("nobody", 0); recs != nil || err != nil {
		t.Errorf("Read on a missing file = %v, %v", recs, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nobody.log")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("nobody.log: %v; want it not created", err)
	}
	convs, err := l.Conversations()
	if err != nil || !reflect.DeepEqual(convs, []string{"alice", "bob"}) {
		t.Errorf("Conversations() = %q, %v", convs, err)
	}
}
