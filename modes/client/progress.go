package client

import (
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"qchat/xfer"
)

// BarMeter is an xfer.Meter drawing a progress bar (schollz/progressbar)
// on W: stderr for recv, the line above the prompt for chat. The bar is
// made once the peer has answered (its size known) and only when bytes
// will move; an empty file or a fully resumed one draws nothing.
type BarMeter struct {
	W        io.Writer
	Label    string        // what moves, safe to show
	Width    int           // of the bar itself
	Throttle time.Duration // least time between redraws
	Done     func()        // called once when the bar is full (may be nil)

	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func (m *BarMeter) Begin(files int, all, total int64) {
	if total <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(m.W),
		progressbar.OptionSetDescription(m.Label + " (" + Plural(files, "file") + ")"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(m.Width),
		progressbar.OptionThrottle(m.Throttle),
		progressbar.OptionSetRenderBlankState(false),
		progressbar.OptionSetPredictTime(true),
	}
	if m.Done != nil {
		opts = append(opts, progressbar.OptionOnCompletion(m.Done))
	}
	m.bar = progressbar.NewOptions64(total, opts...)
}

func (m *BarMeter) Bytes(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bar == nil || m.bar.IsFinished() {
		return
	}
	// The bar refuses to pass its maximum (and a copy through it would
	// fail); bytes sent again after a retry only fill it up.
	if left := m.bar.GetMax64() - m.bar.State().CurrentNum; int64(n) > left {
		n = int(left)
	}
	m.bar.Add(n)
}

func (m *BarMeter) FileDone(xfer.FileResult) {}
