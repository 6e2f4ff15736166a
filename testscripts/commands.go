package testscripts

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// Custom commands for the scripts:
//
//	waitfile FILE [VAR]
//	    poll until FILE exists and is not empty (30s at most); with VAR,
//	    set $VAR to its content without the line end. Servers write their
//	    address with --addr-file, so scripts never guess ports or sleep.
//	fmode PERM PATH
//	    check PATH's permission bits (octal, e.g. 0600).
//	decode [-n] SRC DST
//	    write DST from SRC with Go escapes (\x1b, \t, \u202e) decoded in
//	    every line, to make hostile input without raw bytes in the txtar;
//	    -n drops the final newline (to make a torn last line).
//	rawconn [-rcvbuf N] ADDR SCRIPT
//	    talk raw protocol to ADDR as a script says, printing every line
//	    received as "< line" on stdout. Script lines:
//	      send TEXT        send TEXT (a Go-quoted "..." TEXT is unquoted)
//	      sendlong N [PFX] send one line of N bytes of x, after PFX and a space
//	      expect REGEXP    read until a line matches (fail after 30s)
//	      flood N TEXT     send TEXT N times without reading, stop at the
//	                       first write error; prints "flood: ..." saying which
//	      waitclose        read until the server closes; prints "closed"
//	      close            close the connection
//	mkfile FILE SIZE
//	    write SIZE bytes (512, 3MiB) of pseudo-random data to FILE, the
//	    same bytes for the same SIZE: big files are made, never stored.
//	waitsize FILE SIZE
//	    poll until FILE exists and holds at least SIZE bytes (30s at most).
//	hostilesend SERVER USER TO LOCAL NAME...
//	    act as a hostile sender: log in as USER (password $QCHAT_PASSWORD),
//	    offer LOCAL's bytes to TO under each raw NAME (Go-quoted; "../x",
//	    "/etc/x", escapes), send what is accepted and print one line per
//	    name: "saved NAME as PATH" or "refused NAME: why".
//	seqfile FILE N FORMAT
//	    write N lines to FILE, line i (1..N) being fmt.Sprintf(FORMAT, i).
//	waitmatch FILE REGEXP
//	    poll until a line of FILE matches (30s at most): FILE is the
//	    output of a background process redirected by sh, so scripts can
//	    wait for what it says while it runs.
//	numbered FILE REGEXP N
//	    check that the lines of FILE matching REGEXP carry (first group)
//	    the numbers 1 to N, each exactly once, in increasing order.
//	tap ADDR_FILE TARGET OUTFILE
//	    start a recording TCP proxy to TARGET that runs until the script
//	    ends; its address goes to ADDR_FILE, every byte it forwards (both
//	    ways) to OUTFILE, before it is forwarded.
//	[!] holds FILE PART
//	    FILE holds a piece of PART (64 bytes taken every 4 KiB); with !,
//	    no piece of PART is in FILE.
//
// The TLS stories' commands (exitcode, hostip) are in tls_cmds.go.
var commands = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"seqfile":     cmdSeqfile,
	"waitmatch":   cmdWaitmatch,
	"numbered":    cmdNumbered,
	"waitfile":    cmdWaitfile,
	"fmode":       cmdFmode,
	"decode":      cmdDecode,
	"rawconn":     cmdRawconn,
	"mkfile":      cmdMkfile,
	"waitsize":    cmdWaitsize,
	"hostilesend": cmdHostileSend,
	"tap":         cmdTap,
	"holds":       cmdHolds,
}

const waitLimit = 30 * time.Second

func cmdWaitfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: waitfile FILE [VAR]")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(waitLimit)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			if len(args) == 2 {
				ts.Setenv(args[1], strings.TrimRight(string(b), "\r\n"))
			}
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfile: %s still missing or empty after %s", args[0], waitLimit)
		}
		time.Sleep(20 * time.Millisecond) // polling, not waiting blind
	}
}

func cmdFmode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: fmode PERM PATH")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil {
		ts.Fatalf("fmode: bad mode %q", args[0])
	}
	fi, err := os.Stat(ts.MkAbs(args[1]))
	ts.Check(err)
	got := fi.Mode().Perm()
	if (got == os.FileMode(want)) == neg {
		ts.Fatalf("fmode: %s is %#o, want %s%#o", args[1], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

func cmdDecode(ts *testscript.TestScript, neg bool, args []string) {
	trim := len(args) > 0 && args[0] == "-n"
	if trim {
		args = args[1:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: decode [-n] SRC DST")
	}
	src := ts.ReadFile(args[0])
	var out strings.Builder
	for _, line := range strings.SplitAfter(src, "\n") {
		body := strings.TrimSuffix(line, "\n")
		u, err := strconv.Unquote(`"` + strings.ReplaceAll(body, `"`, `\"`) + `"`)
		if err != nil {
			ts.Fatalf("decode: %q: %v", body, err)
		}
		out.WriteString(u)
		if strings.HasSuffix(line, "\n") {
			out.WriteString("\n")
		}
	}
	data := out.String()
	if trim {
		data = strings.TrimSuffix(data, "\n")
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(data), 0o644))
}

func cmdRawconn(ts *testscript.TestScript, neg bool, args []string) {
	rcvbuf := 0
	if len(args) > 0 && args[0] == "-rcvbuf" {
		if len(args) < 2 {
			ts.Fatalf("usage: rawconn [-rcvbuf N] ADDR SCRIPT")
		}
		n, err := strconv.Atoi(args[1])
		ts.Check(err)
		rcvbuf, args = n, args[2:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: rawconn [-rcvbuf N] ADDR SCRIPT")
	}
	d := net.Dialer{Timeout: waitLimit}
	if rcvbuf > 0 {
		// Set before connecting, so the window the server sees is small.
		d.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
			return serr
		}
	}
	conn, err := d.Dial("tcp", args[0])
	ts.Check(err)
	defer conn.Close()
	rd := bufio.NewReaderSize(conn, 64<<10)
	out := ts.Stdout()
	readLine := func() (string, error) {
		conn.SetReadDeadline(time.Now().Add(waitLimit))
		l, err := rd.ReadString('\n')
		if l != "" {
			fmt.Fprintf(out, "< %s\n", strings.TrimRight(l, "\r\n"))
		}
		return l, err
	}
	for n, line := range strings.Split(ts.ReadFile(args[1]), "\n") {
		verb, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		fail := func(format string, a ...any) {
			ts.Fatalf("rawconn line %d (%s): %s", n+1, line, fmt.Sprintf(format, a...))
		}
		switch verb {
		case "", "#":
		case "send":
			if strings.HasPrefix(rest, `"`) {
				u, err := strconv.Unquote(rest)
				if err != nil {
					fail("%v", err)
				}
				rest = u
			}
			if _, err := conn.Write([]byte(rest + "\n")); err != nil {
				fail("%v", err)
			}
		case "sendlong":
			count, prefix, _ := strings.Cut(rest, " ")
			size, err := strconv.Atoi(count)
			if err != nil {
				fail("%v", err)
			}
			if prefix != "" {
				prefix += " "
			}
			if _, err := conn.Write([]byte(prefix + strings.Repeat("x", size) + "\n")); err != nil {
				fail("%v", err)
			}
		case "expect":
			re, err := regexp.Compile(rest)
			if err != nil {
				fail("%v", err)
			}
			for {
				l, err := readLine()
				if re.MatchString(strings.TrimRight(l, "\r\n")) {
					break
				}
				if err != nil {
					fail("no line matching %q: %v", rest, err)
				}
			}
		case "flood":
			count, text, _ := strings.Cut(rest, " ")
			total, err := strconv.Atoi(count)
			if err != nil {
				fail("%v", err)
			}
			msg := []byte(text + "\n")
			i := 0
			for ; i < total; i++ {
				conn.SetWriteDeadline(time.Now().Add(waitLimit))
				if _, err := conn.Write(msg); err != nil {
					break
				}
			}
			if i < total {
				fmt.Fprintf(out, "flood: server closed the connection after %d writes\n", i)
			} else {
				fmt.Fprintf(out, "flood: all %d written\n", total)
			}
		case "waitclose":
			for {
				if _, err := readLine(); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						fail("server did not close the connection")
					}
					fmt.Fprintln(out, "closed")
					break
				}
			}
		case "close":
			conn.Close()
		default:
			fail("unknown verb %q", verb)
		}
	}
}
