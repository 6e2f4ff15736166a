package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// What the bench reads of the server's process from /proc (Linux), with
// --pid: the CPU it used (user and system, all threads) and the bytes it
// caused to be written to disk, before and after a phase, so that the
// report gives the server's cost per message next to the throughput.

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux the bench runs on.
const clockTick = 10 * time.Millisecond

// procSample is one reading of the server's counters.
type procSample struct {
	cpu     time.Duration // user + system
	written int64         // write_bytes: bytes sent to the storage layer
}

// readProcs is readProc of each process, summed: the nodes of a cluster
// (and their NATS and PostgreSQL, when given) as one server.
func readProcs(pids []int) (procSample, error) {
	var sum procSample
	for _, pid := range pids {
		p, err := readProc(pid)
		if err != nil {
			return sum, err
		}
		sum.cpu += p.cpu
		sum.written += p.written
	}
	return sum, nil
}

// readProc reads the server's CPU time and disk bytes written.
func readProc(pid int) (procSample, error) {
	var p procSample
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return p, fmt.Errorf("server CPU: %w", err)
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return p, fmt.Errorf("server CPU: cannot read /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return p, fmt.Errorf("server CPU: short /proc/%d/stat", pid)
	}
	// Fields 14 and 15 of the line (utime, stime) are 12 and 13 after ')'.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return p, fmt.Errorf("server CPU: bad /proc/%d/stat", pid)
	}
	p.cpu = time.Duration(ut+st) * clockTick
	io, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return p, fmt.Errorf("server disk writes: %w", err)
	}
	for _, line := range strings.Split(string(io), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			p.written, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return p, fmt.Errorf("server disk writes: %q: %w", line, err)
			}
		}
	}
	return p, nil
}

// serverCost is what the server spent on one phase.
type serverCost struct {
	cpu     time.Duration
	written int64
	peakRSS int64 // the highest RSS seen during the phase (0: not sampled)
}

// perItem is the CPU per message (or delivery) in microseconds.
func (c *serverCost) perItem(n int64) float64 {
	if c == nil || n <= 0 {
		return 0
	}
	return float64(c.cpu) / 1e3 / float64(n)
}

// watch starts measuring the server for a phase, when the bench knows its
// pid; the function it returns ends the phase and gives the cost (nil
// without --pid or when /proc could not be read). With rss, the server's
// RSS is also sampled every 50 ms for its peak.
func (b *bench) watch(ctx context.Context, rss bool) func() *serverCost {
	pids := b.cfg.PIDs
	if len(pids) == 0 {
		return func() *serverCost { return nil }
	}
	before, err := readProcs(pids)
	if err != nil {
		fmt.Fprintln(b.stderr, "qchat bench:", err)
		return func() *serverCost { return nil }
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !rss {
			return
		}
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if r, err := readRSSAll(pids); err == nil && r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-t.C:
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() *serverCost {
		close(stop)
		<-done
		after, err := readProcs(pids)
		if err != nil {
			fmt.Fprintln(b.stderr, "qchat bench:", err)
			return nil
		}
		return &serverCost{cpu: after.cpu - before.cpu, written: after.written - before.written, peakRSS: peak.Load()}
	}
}

// costLine says what a phase cost the server: CPU per item, disk bytes.
func costLine(c *serverCost, n int64, item string) string {
	s := fmt.Sprintf("%.2f µs CPU per %s (%.2f s in all), %s written to disk", c.perItem(n), item, c.cpu.Seconds(), sizeText(c.written))
	if c.peakRSS > 0 {
		s += fmt.Sprintf(", peak RSS %.1f MiB", float64(c.peakRSS)/(1<<20))
	}
	return s
}

// sizeText writes a byte count for people.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
