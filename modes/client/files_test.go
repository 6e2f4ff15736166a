package client

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qchat/xfer"
)

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		content, want, err string
	}{
		{"secret\n", "secret", ""},
		{"secret", "secret", ""},
		{"pass word\r\nsecond line\n", "pass word", ""},
		{" spaced \n", " spaced ", ""},
		{"\nsecret\n", "", "first line is empty"},
		{"", "", "first line is empty"},
	} {
		path := filepath.Join(dir, "pw")
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadPasswordFile(path)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ReadPasswordFile(%q) = %q, %v; want %q, %q", tc.content, got, err, tc.want, tc.err)
		}
	}
	if _, err := ReadPasswordFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "password file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestWriteReadyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	if err := os.WriteFile(path, []byte("old content that is longer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteReadyFile(path, 1000); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "1000\n" {
		t.Errorf("ready file %q, %v", b, err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	if err := WriteReadyFile(filepath.Join(t.TempDir(), "no", "such", "dir"), 1); err == nil {
		t.Error("wrote into a missing folder")
	}
}

func TestBarMeter(t *testing.T) {
	var buf bytes.Buffer
	done := 0
	m := &BarMeter{W: &buf, Label: "receiving a.txt", Width: 10, Done: func() { done++ }}
	m.Begin(2, 200, 100)
	m.Bytes(60)
	m.Bytes(60) // more than is left (bytes sent again after a retry): fills the bar
	m.Bytes(10) // after the end: nothing
	m.FileDone(xfer.FileResult{})
	if done != 1 {
		t.Errorf("Done called %d times, want once", done)
	}
	if out := buf.String(); !strings.Contains(out, "receiving a.txt (2 files)") {
		t.Errorf("bar drew %q", out)
	}

	// Nothing to move (an empty or fully resumed file): no bar at all.
	buf.Reset()
	m = &BarMeter{W: &buf, Label: "x", Width: 10, Done: func() { done++ }}
	m.Begin(1, 100, 0)
	m.Bytes(5)
	if buf.Len() != 0 || done != 1 {
		t.Errorf("no bytes to move drew %q (done %d)", buf.String(), done)
	}
}
