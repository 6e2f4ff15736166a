package chat

import (
	"strings"
	"time"

	"qchat/modes/client"
	"qchat/xfer"
)

// newMeter shows a transfer's progress on a terminal: a progress bar drawn
// on the line above the prompt and redrawn in place (terminal.status), so
// the user can go on typing. Piped there is no bar: the commands print a
// plain line per file when it is through.
func (a *app) newMeter(label string) xfer.Meter {
	if a.term == nil {
		return nil
	}
	key := label + time.Now().String()
	return &client.BarMeter{W: barWriter{a.term, key}, Label: label, Width: 24, Throttle: 200 * time.Millisecond}
}

// barWriter takes what the bar draws and puts it on its line above the
// prompt.
type barWriter struct {
	t   *terminal
	key string
}

func (w barWriter) Write(p []byte) (int, error) {
	s := strings.TrimRight(strings.ReplaceAll(string(p), "\r", ""), " \n")
	if s != "" {
		w.t.status(w.key, s)
	}
	return len(p), nil
}
