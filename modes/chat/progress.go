package chat

import (
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"qchat/modes/client"
	"qchat/xfer"
)

// meter shows a transfer's progress on a terminal: a progress bar
// (schollz/progressbar) drawn on the line above the prompt and redrawn in
// place, so the user can go on typing. Piped there is no bar: the
// commands print a plain line per file when it is through.
type meter struct {
	t     *terminal
	label string
	key   string
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
}

func (a *app) newMeter(label string) xfer.Meter {
	if a.term == nil {
		return nil
	}
	return &meter{t: a.term, label: label, key: label + time.Now().String()}
}

func (m *meter) Begin(files int, all, total int64) {
	if total <= 0 {
		return // nothing to move (an empty file, or all resumed): no bar
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(barWriter{m}),
		progressbar.OptionSetDescription(m.label+" ("+client.Plural(files, "file")+")"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetRenderBlankState(false),
		progressbar.OptionSetPredictTime(true),
	)
}

func (m *meter) Bytes(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bar != nil && !m.bar.IsFinished() {
		// The bar refuses to pass its maximum; bytes sent again after a
		// retry are more than it was told, so they only fill it up.
		if left := m.bar.GetMax64() - m.bar.State().CurrentNum; int64(n) > left {
			n = int(left)
		}
		m.bar.Add(n)
	}
}

func (m *meter) FileDone(xfer.FileResult) {}

// barWriter takes what the bar draws and puts it on its line above the
// prompt.
type barWriter struct{ m *meter }

func (w barWriter) Write(p []byte) (int, error) {
	s := strings.TrimRight(strings.ReplaceAll(string(p), "\r", ""), " \n")
	if s != "" {
		w.m.t.status(w.m.key, s)
	}
	return len(p), nil
}
