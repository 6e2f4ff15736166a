package xfer

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// pattern is a stream whose every byte says where it is.
func pattern(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((off + i) * 7 % 251)
	}
	return b
}

// Two streams run both ways while they move from one connection (the
// relay) to another (direct), in the order of the MOVE handshake: every
// byte arrives once, in order, and the old connection is closed.
func TestMovableMovesMidStream(t *testing.T) {
	old1, old2 := tcpPair(t)
	new1, new2 := tcpPair(t)
	// The offerer side holds bytes of the old connection in a reader, as
	// a link does after HELLO.
	a := newMovable(old1, bufio.NewReader(old1))
	b := newMovable(old2, bufio.NewReader(old2))
	const total = 8 << 20
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	halfway := make(chan struct{}, 2)
	moved := make(chan struct{})
	// Half the stream goes before the move, a quarter while it runs, the
	// last quarter after it.
	send := func(m *movable) {
		defer wg.Done()
		for off := 0; off < total; {
			switch off {
			case total / 2:
				halfway <- struct{}{}
			case total * 3 / 4:
				<-moved
			}
			n := min(total-off, 32<<10)
			if _, err := m.Write(pattern(off, n)); err != nil {
				errs <- err
				return
			}
			off += n
		}
	}
	recv := func(m *movable, name string) {
		defer wg.Done()
		got := make([]byte, total)
		if _, err := io.ReadFull(m, got); err != nil {
			errs <- err
			return
		}
		if !bytes.Equal(got, pattern(0, total)) {
			i := 0
			for got[i] == pattern(i, 1)[0] {
				i++
			}
			t.Errorf("%s: the stream differs from byte %d on", name, i)
		}
	}
	wg.Add(4)
	go send(a)
	go send(b)
	go recv(a, "a")
	go recv(b, "b")
	<-halfway
	<-halfway

	// The handshake: a (the offerer) marks the move and says MOVE on the
	// new connection; b moves its reads, says MOVED, moves its writes; a
	// reads MOVED, then moves its reads and writes.
	a.beginMove()
	if _, err := new1.Write([]byte("MOVE\n")); err != nil {
		t.Fatal(err)
	}
	r2 := bufio.NewReader(new2)
	if line, err := r2.ReadString('\n'); err != nil || line != "MOVE\n" {
		t.Fatalf("b read %q, %v", line, err)
	}
	if err := b.moveReads(new2, r2); err != nil {
		t.Fatal(err)
	}
	if _, err := new2.Write([]byte("MOVED\n")); err != nil {
		t.Fatal(err)
	}
	if err := b.moveWrites(new2); err != nil {
		t.Fatal(err)
	}
	r1 := bufio.NewReader(new1)
	if line, err := r1.ReadString('\n'); err != nil || line != "MOVED\n" {
		t.Fatalf("a read %q, %v", line, err)
	}
	if err := a.moveReads(new1, r1); err != nil {
		t.Fatal(err)
	}
	if err := a.moveWrites(new1); err != nil {
		t.Fatal(err)
	}
	a.endMove()
	close(moved)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Both directions left the old connection: it is closed.
	old1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := old1.Read(make([]byte, 1)); err == nil {
		t.Error("the old connection is still open")
	}
	a.Close()
	b.Close()
}

// Without a move, the end of the connection is the end of the stream.
// While a move is under way, a reader at the end of the old connection
// waits, and goes on on the new one.
func TestMovableReaderWaitsForMove(t *testing.T) {
	c1, c2 := tcpPair(t)
	plain := newMovable(c1, c1)
	c2.Write([]byte("all"))
	c2.(*net.TCPConn).CloseWrite()
	if b, err := io.ReadAll(plain); string(b) != "all" || err != nil {
		t.Fatalf("read %q, %v", b, err)
	}

	o1, o2 := tcpPair(t)
	n1, n2 := tcpPair(t)
	atEnd := make(chan struct{})
	m := newMovable(o1, &endSignal{r: o1, end: atEnd})
	m.beginMove()
	got := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(m)
		if err != nil {
			t.Error(err)
		}
		got <- string(b)
	}()
	o2.Write([]byte("old,"))
	o2.(*net.TCPConn).CloseWrite()
	<-atEnd // the reader is at the end of the old connection
	if err := m.moveReads(n1, n1); err != nil {
		t.Fatal(err)
	}
	m.endMove()
	n2.Write([]byte("new"))
	n2.(*net.TCPConn).CloseWrite()
	if s := <-got; s != "old,new" {
		t.Fatalf("read %q, want old,new", s)
	}
}

// endSignal closes end when r reports its end.
type endSignal struct {
	r    io.Reader
	end  chan struct{}
	once sync.Once
}

func (e *endSignal) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.once.Do(func() { close(e.end) })
	}
	return n, err
}
