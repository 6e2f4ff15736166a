package testscripts

import (
	"bytes"
	"io"
	"net"
	"os"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdTap starts a recording TCP proxy that runs until the script ends:
// it listens on a free port of 127.0.0.1, writes its address to
// ADDR_FILE, forwards every connection to TARGET and appends every byte
// it forwards, both ways, to OUTFILE as it passes (written before it is
// forwarded, so whatever a client has received is in OUTFILE).
func cmdTap(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: tap ADDR_FILE TARGET OUTFILE")
	}
	target := args[1]
	out, err := os.OpenFile(ts.MkAbs(args[2]), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	ts.Check(err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	rec := &recorder{f: out}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); pass(up, c, rec) }()
			go func() { defer wg.Done(); pass(c, up, rec) }()
		}
	}()
	ts.Defer(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		out.Close()
	})
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(ln.Addr().String()+"\n"), 0o644))
}

// pass copies src to dst through the recorder, then passes the half-close on.
func pass(dst, src net.Conn, rec *recorder) {
	io.Copy(dst, io.TeeReader(src, rec))
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// recorder appends to a file from several goroutines, a write at a time.
type recorder struct {
	mu sync.Mutex
	f  *os.File
}

func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(b)
}

// cmdHolds checks whether FILE holds any part of PART: a 64-byte piece of
// it taken every 4 KiB (and its last 64 bytes). With `!`, that no piece
// of PART is in FILE: PART's content did not cross in clear.
func cmdHolds(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: holds FILE PART")
	}
	hay, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	part, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	if len(part) < 64 {
		ts.Fatalf("holds: %s has fewer than 64 bytes", args[1])
	}
	found := -1
	for off := 0; ; off += 4 << 10 {
		off = min(off, len(part)-64)
		if bytes.Contains(hay, part[off:off+64]) {
			found = off
			break
		}
		if off == len(part)-64 {
			break
		}
	}
	switch {
	case found >= 0 && neg:
		ts.Fatalf("%s holds %s's bytes at offset %d", args[0], args[1], found)
	case found < 0 && !neg:
		ts.Fatalf("%s holds no piece of %s", args[0], args[1])
	}
}
