package recv

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"qchat/modes/client"
	"qchat/xfer"
)

// meter draws a progress bar on stderr when stderr is a terminal; recv
// has no prompt, so the bar owns its line. Otherwise there is no bar (the
// files are printed when through).
type meter struct {
	w     io.Writer
	label string
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
}

func newMeter(stderr io.Writer, label string) xfer.Meter {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &meter{w: stderr, label: label}
}

func (m *meter) Begin(files int, all, total int64) {
	if total <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(m.w),
		progressbar.OptionSetDescription("receiving "+m.label+" ("+client.Plural(files, "file")+")"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetRenderBlankState(false),
		progressbar.OptionOnCompletion(func() { io.WriteString(m.w, "\n") }),
	)
}

func (m *meter) Bytes(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bar != nil && !m.bar.IsFinished() {
		if left := m.bar.GetMax64() - m.bar.State().CurrentNum; int64(n) > left {
			n = int(left)
		}
		m.bar.Add(n)
	}
}

func (m *meter) FileDone(xfer.FileResult) {}
