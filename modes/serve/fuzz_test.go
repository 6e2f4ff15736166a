package serve

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"qchat/protocol"
)

// Run with: go test -run='^$' -fuzz=FuzzStartTLS -fuzztime=30s ./modes/serve/

// pipeListener hands the server the connections the test makes (net.Pipe:
// each write reaches the server as it was written, so a split input is
// read split). They come from no loopback address: the server treats
// them as from another host.
type pipeListener struct {
	net.Listener // the real one, for Addr and Close
	conns        chan net.Conn
	done         chan struct{}
	once         sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// endMark ends every input: its answer (or the connection's end) says the
// server has handled all that came before.
const endMark = "\nPING fuzz-end\n"

// FuzzStartTLS feeds the server's STARTTLS state machine any bytes before
// login, written in two pieces split anywhere, from a host that is not
// this one, and checks what the server says:
//   - after a 234 nothing comes in clear: only TLS records, if anything;
//   - a STARTTLS with bytes after it in the same read is answered 501,
//     then BYE starttls-pipelined, then nothing;
//   - nothing in clear ever logs in or registers (230, 201): from another
//     host passwords need TLS;
//   - every clear line is a well-formed reply or event.
func FuzzStartTLS(f *testing.F) {
	for _, s := range []string{
		"STARTTLS\n",
		"STARTTLS\r\nPASS x\r\n",
		"USER alice\nSTARTTLS\nPASS secret\n",
		"starttls\n",
		"@t1 STARTTLS\n",
		"STARTTLS extra\n",
		"STARTTLS\nSTARTTLS\n",
		"REG bob pw\nUSER bob\nPASS pw\n",
		"HELP\nSTARTTLS\n\x16\x03\x01\x00\x05hello",
		"PING a\nSTARTTLS\n",
		"QUIT\nSTARTTLS\n",
		"STARTTLS\n\n",
		"\r\nSTARTTLS\r\n",
	} {
		f.Add([]byte(s), uint16(len(s)))
		f.Add([]byte(s), uint16(len("STARTTLS\n")))
	}
	pl := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	cfg := Defaults()
	cfg.Listen, cfg.Data, cfg.Name = "127.0.0.1:0", f.TempDir(), "fuzz"
	cfg.HashCost, cfg.Sync, cfg.Log = bcrypt.MinCost, "normal", testLogger()
	cfg.LoginTimeout = 300 * time.Millisecond // ends a session left waiting for a handshake
	cfg.wrapListener = func(ln net.Listener) net.Listener { pl.Listener = ln; return pl }
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Shutdown)

	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		server, c := net.Pipe()
		defer c.Close()
		pl.conns <- server
		c.SetDeadline(time.Now().Add(ioWait))
		k := int(cut) % (len(data) + 1)
		go func() {
			for _, p := range [][]byte{data[:k], data[k:], []byte(endMark)} {
				if _, err := c.Write(p); err != nil {
					return
				}
			}
		}()
		out := readUntilEnd(t, c)
		checkStartTLSOutput(t, data, k, out)
	})
}

// readUntilEnd reads what the server writes until it answers the end
// mark or closes the connection.
func readUntilEnd(t *testing.T, c net.Conn) []byte {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if bytes.Contains(out, []byte("200 pong fuzz-end\n")) || err == io.EOF || err == io.ErrClosedPipe {
			return out
		}
		if err != nil {
			t.Fatalf("reading the server: %v (so far %q)", err, out)
		}
	}
}

func checkStartTLSOutput(t *testing.T, data []byte, cut int, out []byte) {
	t.Helper()
	rest := out
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			t.Fatalf("input %q cut at %d: torn clear line %q", data, cut, rest)
		}
		line := rest[:i]
		rest = rest[i+1:]
		l, err := protocol.ParseLine(line)
		if err != nil {
			t.Fatalf("input %q cut at %d: the server sent %q: %v", data, cut, line, err)
		}
		switch {
		case l.Code == protocol.CodeLoggedIn || l.Code == protocol.CodeRegistered:
			t.Fatalf("input %q cut at %d: %q in clear from another host", data, cut, line)
		case l.Code == protocol.CodeStartTLS:
			if len(rest) > 0 && rest[0] != 0x15 && rest[0] != 0x16 {
				t.Fatalf("input %q cut at %d: after 234 came %q, not TLS", data, cut, rest)
			}
			return
		case l.Code == protocol.CodeSyntax && strings.Contains(l.Text, "nothing may follow STARTTLS"):
			want := "BYE " + reasonTLSPipelined + " "
			if !bytes.HasPrefix(rest, []byte(want)) || bytes.Count(rest, []byte("\n")) != 1 || rest[len(rest)-1] != '\n' {
				t.Fatalf("input %q cut at %d: after the 501 came %q, want only %q...", data, cut, rest, want)
			}
			return
		}
	}
}
