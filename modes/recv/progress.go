package recv

import (
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"qchat/modes/client"
	"qchat/xfer"
)

// newMeter draws a progress bar on stderr when stderr is a terminal; recv
// has no prompt, so the bar owns its line. Otherwise there is no bar (the
// files are printed when through).
func newMeter(stderr io.Writer, label string) xfer.Meter {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &client.BarMeter{W: stderr, Label: "receiving " + label, Width: 30, Throttle: 100 * time.Millisecond,
		Done: func() { io.WriteString(stderr, "\n") }}
}
