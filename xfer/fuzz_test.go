package xfer

import (
	"context"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzSafePath: whatever a peer sends, the name SafePath makes is
// relative, stays inside the folder, holds nothing a terminal or a file
// system would take for something else, keeps to the limits, and is its
// own SafePath.
func FuzzSafePath(f *testing.F) {
	for _, s := range []string{"a.txt", "../../etc/passwd", "/abs", `C:\x\y`, "a/./b/../c", "\x1b[31mred", "\u202etxt.exe",
		"中文/😀.txt", " . ", "x\xffy", strings.Repeat("d/", 40) + "f", strings.Repeat("é", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := SafePath(name)
		if err != nil {
			return
		}
		if p == "" || strings.HasPrefix(p, "/") || !utf8.ValidString(p) || len(p) > MaxPathBytes {
			t.Fatalf("SafePath(%q) = %q", name, p)
		}
		elems := strings.Split(p, "/")
		if len(elems) > MaxPathDepth+1 {
			t.Fatalf("SafePath(%q) = %q: %d elements", name, p, len(elems))
		}
		for _, e := range elems {
			if e == "" || e == "." || e == ".." || len(e) > MaxNameBytes || strings.ContainsRune(e, '\\') {
				t.Fatalf("SafePath(%q) = %q: element %q", name, p, e)
			}
		}
		for _, r := range p {
			if unsafeRune(r) {
				t.Fatalf("SafePath(%q) = %q holds %U", name, p, r)
			}
		}
		if !filepath.IsLocal(filepath.FromSlash(p)) {
			t.Fatalf("SafePath(%q) = %q is not local", name, p)
		}
		if q, err := SafePath(p); err != nil || q != p {
			t.Fatalf("SafePath(%q) = %q, but SafePath of that is %q, %v", name, p, q, err)
		}
	})
}

// FuzzReceive feeds a receiver what a hostile sender could send, in two
// writes split anywhere: the receiver must end (answering or failing, never
// hanging or panicking) and write nothing outside its folder.
func FuzzReceive(f *testing.F) {
	seeds := []string{
		"FILES 1 5\nF 0 5 a.txt\nEND\nDATA 0 0 5\nhelloSUM 0 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\nDONE\n",
		"FILES 2 3\nF 0 1 ../x\nF 1 2 /etc/y\nEND\nDATA 0 0 1\nzSUM 0 -\nDATA 1 0 2\nabSUM 1 00\nDONE\n",
		"FILES 1 0\nF 0 0 %2E%2E/%2E%2E/e\nEND\nDATA 0 0 0\nSUM 0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nDONE\n",
		"FILES 1 10\nF 0 10 big\nEND\nDATA 0 0 99999\n",
		"FILES 99999999 1\n",
		"FILES 1 1\nF 0 1 a\x1b]0;x\x07\nEND\n",
		"HELLO x 1\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, input []byte, cut uint16) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "in")
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			k := min(int(cut), len(input))
			a.Write(input[:k])
			a.Write(input[k:])
			a.Close()
		}()
		go io.Copy(io.Discard, a) // the receiver's answers
		l := newLink(b, 2*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			Receive(ctx, l, ReceiveOptions{Dir: dir, MaxSize: 1 << 20}, nil)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Receive did not end")
		}
		filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
			if err == nil && p != parent && p != dir && !strings.HasPrefix(p, dir+string(os.PathSeparator)) {
				t.Fatalf("wrote %s outside %s", p, dir)
			}
			return nil
		})
	})
}
