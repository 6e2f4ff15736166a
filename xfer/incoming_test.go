package xfer

import (
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// listenSilent is a peer listener whose connections may stay silent
// for longer than any test runs.
func listenSilent(t *testing.T) *Peer {
	t.Helper()
	p, err := listenWait("127.0.0.1:0", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// dialSilent opens n connections to p that never say a word.
func dialSilent(t *testing.T, p *Peer, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addrOf(p), ioWait)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// TestSilentConnectionsCostLittle: anyone who reaches a client's peer
// port (its LAN, or the internet on a global IPv6 address) may connect
// and say nothing for the hello timeout. Each such connection held two
// 64 KiB buffers (a link's, for file data): ten thousand of them were
// 1.25 GiB of the client's memory.
func TestSilentConnectionsCostLittle(t *testing.T) {
	p := listenSilent(t)
	const n = 50
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g := runtime.NumGoroutine()
	dialSilent(t, p, n)
	deadline := time.Now().Add(ioWait)
	for runtime.NumGoroutine() < g+n && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapInuse) - int64(before.HeapInuse)) / n
	t.Logf("%d bytes of heap per silent connection", per)
	if per > 16<<10 {
		t.Errorf("a silent connection to the peer port holds %d bytes of heap; want at most 16 KiB", per)
	}
}

// TestSilentConnectionsCapped: past maxIncoming connections that have not
// proved a ticket yet, the listener closes new ones at once, rather than
// hold a goroutine and a descriptor for each until the hello timeout.
func TestSilentConnectionsCapped(t *testing.T) {
	p := listenSilent(t)
	dialSilent(t, p, maxIncoming)
	for i, c := range dialSilent(t, p, 3) {
		c.SetReadDeadline(time.Now().Add(ioWait))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("connection %d past the cap: %v, want it closed at once", maxIncoming+i+1, err)
		}
	}
}
