package testscripts

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// Commands for the stories of connections that heal (reconnect_*.txtar,
// resend_*.txtar); see commands.go.

func cmdSeqfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: seqfile FILE N FORMAT")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 0 {
		ts.Fatalf("seqfile: bad count %q", args[1])
	}
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, args[2]+"\n", i)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o644))
}

func cmdWaitmatch(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitmatch FILE REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	deadline := time.Now().Add(waitLimit)
	for {
		b, _ := os.ReadFile(ts.MkAbs(args[0]))
		if re.Match(b) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitmatch: nothing in %s matched %q within %s; it holds:\n%s", args[0], args[1], waitLimit, tail(string(b), 2000))
		}
		time.Sleep(20 * time.Millisecond) // polling, not waiting blind
	}
}

func cmdNumbered(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: numbered FILE REGEXP N")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	n, err := strconv.Atoi(args[2])
	if err != nil {
		ts.Fatalf("numbered: bad count %q", args[2])
	}
	want := 1
	for i, line := range strings.Split(ts.ReadFile(args[0]), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		got, err := strconv.Atoi(m[1])
		if err != nil {
			ts.Fatalf("numbered: line %d %q: %q is not a number", i+1, line, m[1])
		}
		switch {
		case got < want:
			ts.Fatalf("numbered: line %d %q: %d again (a duplicate, or out of order)", i+1, line, got)
		case got > want:
			ts.Fatalf("numbered: line %d %q: %d, but %d is missing", i+1, line, got, want)
		}
		want++
	}
	if want != n+1 {
		ts.Fatalf("numbered: %d of %d numbered lines in %s", want-1, n, args[0])
	}
}

// tail is the end of s, for a failure message.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
