package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// result is what one run measured.
type result struct {
	cfg    Config
	nodes  []string // the servers the clients spread over
	spread string   // how, "" with one server

	// idle phase
	idle                         int
	loginTime                    time.Duration
	idleEvents                   atomic.Int64
	rssBefore, rssAfter, rssHeld int64         // bytes, 0 when not measured
	heldFor, cpuHeld             time.Duration // the hold, and the server's CPU time during it
	relogins                     int           // idle clients logged out and in again after the hold
	reloginTime, reloginCPU      time.Duration // how long that took, and the server's CPU time
	reloginHow                   string        // "resumption tokens" or "passwords"
	sent, received, stale        int64
	confirmed, delivered, stored int64
	refused                      int64
	elapsed, confirmElapsed      time.Duration
	lat, conf                    *hist       // nil when the pairs did not run
	pairCost                     *serverCost // nil without --pid

	groups []*groupResult // one per group, in the order run
}

// pairsPerS is the one-to-one figure: delivered msgs/s, 0 when the pairs
// did not run.
func (r *result) pairsPerS() float64 {
	if r.lat == nil {
		return 0
	}
	return perSecond(r.received, r.elapsed)
}

func (r *result) addPairs(pairs []*pair, start int64) {
	r.lat, r.conf = newHist(), newHist()
	var last, lastConf int64
	for _, p := range pairs {
		r.sent += p.sent.Load()
		r.received += p.received.Load()
		r.stale += p.stale.Load()
		r.confirmed += p.confirmed.Load()
		r.delivered += p.delivered.Load()
		r.stored += p.stored.Load()
		r.refused += p.refused.Load()
		last = max(last, p.lastRecv.Load())
		lastConf = max(lastConf, p.lastConfirm.Load())
		r.lat.merge(p.lat)
		r.conf.merge(p.conf)
	}
	if last > start {
		r.elapsed = time.Duration(last - start)
	}
	if lastConf > start {
		r.confirmElapsed = time.Duration(lastConf - start)
	}
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func (r *result) writeText(w io.Writer) {
	cfg := r.cfg
	fmt.Fprintf(w, "tls:       %s\n", tlsLine(cfg))
	if r.spread != "" {
		fmt.Fprintf(w, "nodes:     %s\n", r.spread)
	}
	if len(cfg.PIDs) > 1 {
		fmt.Fprintf(w, "processes: %d (--pid): their CPU, disk writes and RSS summed as the server's\n", len(cfg.PIDs))
	}
	if r.idle > 0 {
		fmt.Fprintf(w, "idle:      %d connections logged in in %.1fs (%.0f logins/s), %d events read\n",
			r.idle, r.loginTime.Seconds(), perSecond(int64(r.idle), r.loginTime), r.idleEvents.Load())
		if r.rssAfter > 0 {
			fmt.Fprintf(w, "memory:    server RSS %.1f MiB before, %.1f MiB after: %.2f KiB per idle connection\n",
				float64(r.rssBefore)/(1<<20), float64(r.rssAfter)/(1<<20), r.kibPerConn(r.rssAfter))
		}
		if r.rssHeld > 0 {
			fmt.Fprintf(w, "           after holding %s: %.1f MiB, %.2f KiB per idle connection\n",
				cfg.Hold, float64(r.rssHeld)/(1<<20), r.kibPerConn(r.rssHeld))
		}
		if r.heldFor > 0 {
			fmt.Fprintf(w, "cpu:       server %.2f%% of one core while holding them idle (%s of CPU in %.1fs)\n",
				r.idleCPU(), r.cpuHeld, r.heldFor.Seconds())
		}
		if r.relogins > 0 {
			fmt.Fprintf(w, "relogin:   %d logged out and in again with %s in %.1fs (%.0f logins/s), at least %d others online throughout",
				r.relogins, r.reloginHow, r.reloginTime.Seconds(), perSecond(int64(r.relogins), r.reloginTime), r.idle-min(r.relogins, cfg.Connect))
			if r.reloginCPU > 0 {
				fmt.Fprintf(w, "; server CPU %.0f µs per login", float64(r.reloginCPU.Microseconds())/float64(r.relogins))
			}
			fmt.Fprintln(w)
		}
	}
	if cfg.Pairs > 0 && r.lat != nil {
		r.writePairs(w)
	}
	for _, g := range r.groups {
		g.writeText(w, cfg)
	}
	if r.lat != nil {
		for _, g := range r.groups {
			fmt.Fprintf(w, "fan-out:   %s\n", fanLine(g.members, g.deliveriesPerS(), r.pairsPerS()))
		}
	}
}

func (r *result) writePairs(w io.Writer) {
	cfg := r.cfg
	rate := "as fast as possible"
	if cfg.Rate > 0 {
		rate = fmt.Sprintf("%.0f msgs/s offered", cfg.Rate)
	}
	fmt.Fprintf(w, "traffic:   %d pairs, %d messages of %d bytes, %s, window %d, %s\n",
		cfg.Pairs, cfg.Messages, cfg.Size, rate, cfg.Window, writesLine(cfg))
	fmt.Fprintf(w, "delivered: %d in %.3fs: %.0f msgs/s\n", r.received, r.elapsed.Seconds(), perSecond(r.received, r.elapsed))
	fmt.Fprintf(w, "confirmed: %d (%d delivered, %d stored, %d refused)\n", r.confirmed, r.delivered, r.stored, r.refused)
	if r.stale > 0 {
		fmt.Fprintf(w, "stale:     %d messages of an earlier run received and acknowledged\n", r.stale)
	}
	writeLatency(w, "latency:", r.lat, "sent to received")
	writeLatency(w, "confirm:", r.conf, "sent to 250 reply")
	if r.pairCost != nil {
		fmt.Fprintf(w, "server:    %s\n", costLine(r.pairCost, r.received, "message"))
	}
}

func (g *groupResult) writeText(w io.Writer, cfg Config) {
	senders := "1 sender"
	if g.senders != 1 {
		senders = fmt.Sprintf("%d senders", g.senders)
	}
	fmt.Fprintf(w, "group:     %s, %d members online, %s, %d messages of %d bytes, window %d (set up in %.1fs)\n",
		g.name, g.members, senders, g.messages, cfg.Size, cfg.GroupWindow, g.setup.Seconds())
	fmt.Fprintf(w, "posted:    %d confirmed in %.3fs: %.0f msgs/s (%d delivered, %d stored, %d refused)\n",
		g.confirmed, g.confirmElapsed.Seconds(), g.postedPerS(), g.delivered, g.stored, g.refused)
	fmt.Fprintf(w, "fanned:    %d of %d deliveries in %.3fs: %.0f deliveries/s\n",
		g.deliveries, g.expected, g.elapsed.Seconds(), g.deliveriesPerS())
	if g.stale > 0 {
		fmt.Fprintf(w, "stale:     %d messages of an earlier run received and acknowledged\n", g.stale)
	}
	writeLatency(w, "latency:", g.lat, "sent to received")
	writeLatency(w, "confirm:", g.conf, "sent to 250 reply: the last member's ACK")
	if g.cost != nil {
		fmt.Fprintf(w, "server:    %s\n", costLine(g.cost, g.deliveries, "delivery"))
	}
}

// writesLine says how the clients wrote.
func writesLine(cfg Config) string {
	s := "MSGs batched per write"
	if cfg.Unbatched {
		s = "one MSG per write"
	}
	if cfg.AckEach {
		return s + ", one ACK per message"
	}
	return s + ", one ACK per read"
}

func writeLatency(w io.Writer, label string, h *hist, what string) {
	fmt.Fprintf(w, "%-10s p50 %.3fms  p90 %.3fms  p99 %.3fms  p99.9 %.3fms  max %.3fms  (%s)\n", label,
		ms(h.quantile(.5)), ms(h.quantile(.9)), ms(h.quantile(.99)), ms(h.quantile(.999)), ms(time.Duration(h.max)), what)
}

func (r *result) kibPerConn(rss int64) float64 {
	if r.idle == 0 {
		return 0
	}
	return float64(rss-r.rssBefore) / 1024 / float64(r.idle)
}

// idleCPU is the server's CPU while the idle clients were held, in
// percent of one core.
func (r *result) idleCPU() float64 {
	return 100 * r.cpuHeld.Seconds() / r.heldFor.Seconds()
}

type jsonLatency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

func latencyOf(h *hist) *jsonLatency {
	return &jsonLatency{ms(h.quantile(.5)), ms(h.quantile(.9)), ms(h.quantile(.99)), ms(h.quantile(.999)), ms(time.Duration(h.max))}
}

func (r *result) writeJSON(w io.Writer) {
	cfg := r.cfg
	out := map[string]any{
		"server": cfg.Server, "pairs": cfg.Pairs, "messages": cfg.Messages, "size": cfg.Size,
		"rate": cfg.Rate, "window": cfg.Window, "clients": cfg.Clients, "tls": !cfg.NoTLS,
		"unbatched": cfg.Unbatched, "ack_each": cfg.AckEach, "nodes": r.nodes,
	}
	if len(cfg.PIDs) > 0 {
		out["pids"] = cfg.PIDs
	}
	if r.idle > 0 {
		out["idle"] = r.idle
		out["login_s"] = r.loginTime.Seconds()
		out["idle_events"] = r.idleEvents.Load()
		if r.rssAfter > 0 {
			out["rss_before_kib"] = r.rssBefore / 1024
			out["rss_after_kib"] = r.rssAfter / 1024
			out["kib_per_conn"] = r.kibPerConn(r.rssAfter)
		}
		if r.rssHeld > 0 {
			out["rss_held_kib"] = r.rssHeld / 1024
			out["kib_per_conn_held"] = r.kibPerConn(r.rssHeld)
		}
		if r.heldFor > 0 {
			out["idle_cpu_percent"] = r.idleCPU()
		}
		if r.relogins > 0 {
			out["relogins"] = r.relogins
			out["relogin_with"] = r.reloginHow
			out["relogin_s"] = r.reloginTime.Seconds()
			out["relogins_per_s"] = perSecond(int64(r.relogins), r.reloginTime)
			if r.reloginCPU > 0 {
				out["relogin_cpu_us"] = float64(r.reloginCPU.Microseconds()) / float64(r.relogins)
			}
		}
	}
	if cfg.Pairs > 0 && r.lat != nil {
		out["sent"] = r.sent
		out["received"] = r.received
		out["stale"] = r.stale
		out["confirmed"] = r.confirmed
		out["confirmed_delivered"] = r.delivered
		out["confirmed_stored"] = r.stored
		out["refused"] = r.refused
		out["elapsed_s"] = r.elapsed.Seconds()
		out["msgs_per_s"] = perSecond(r.received, r.elapsed)
		out["latency"] = latencyOf(r.lat)
		out["confirm_latency"] = latencyOf(r.conf)
		if c := r.pairCost; c != nil {
			out["server_cpu_s"] = c.cpu.Seconds()
			out["server_us_per_msg"] = c.perItem(r.received)
			out["server_disk_written"] = c.written
		}
	}
	if len(cfg.Groups) > 0 {
		out["group_members"] = cfg.Groups
		out["group_messages"] = cfg.GroupMsgs
		out["group_senders"] = cfg.GroupSenders
		out["group_window"] = cfg.GroupWindow
		groups := make([]map[string]any, len(r.groups))
		for i, g := range r.groups {
			o := map[string]any{
				"group": g.name, "members": g.members, "senders": g.senders, "messages": g.messages,
				"setup_s": g.setup.Seconds(), "sent": g.sent, "confirmed": g.confirmed,
				"confirmed_delivered": g.delivered, "confirmed_stored": g.stored, "refused": g.refused,
				"deliveries": g.deliveries, "expected_deliveries": g.expected, "stale": g.stale,
				"elapsed_s": g.elapsed.Seconds(), "confirm_elapsed_s": g.confirmElapsed.Seconds(),
				"posted_per_s": g.postedPerS(), "deliveries_per_s": g.deliveriesPerS(),
				"latency": latencyOf(g.lat), "confirm_latency": latencyOf(g.conf),
			}
			if c := g.cost; c != nil {
				o["server_cpu_s"] = c.cpu.Seconds()
				o["server_us_per_delivery"] = c.perItem(g.deliveries)
				o["server_disk_written"] = c.written
				o["server_peak_rss_kib"] = c.peakRSS / 1024
			}
			if p := r.pairsPerS(); p > 0 {
				o["vs_one_to_one"] = g.deliveriesPerS() / p
			}
			groups[i] = o
		}
		out["groups"] = groups
	}
	b, _ := json.Marshal(out)
	w.Write(append(b, '\n'))
}

// readRSSAll is the sum of the resident set sizes of pids.
func readRSSAll(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		r, err := readRSS(pid)
		if err != nil {
			return 0, err
		}
		sum += r
	}
	return sum, nil
}

// readRSS returns the resident set size of process pid, in bytes, from
// /proc/PID/status (Linux).
func readRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("server RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("server RSS: %q: %w", v, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("server RSS: no VmRSS in /proc/%d/status", pid)
}

// settleEvents waits until the idle clients have read nothing for one and
// a half seconds (at most cfg.Settle): the server has sent them everything
// it queued during the logins, the last presence batch too (one a second
// at the server's default --presence-interval).
func (b *bench) settleEvents(ctx context.Context, events *atomic.Int64) {
	deadline := time.Now().Add(b.cfg.Settle)
	prev := events.Load()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		sleepCtx(ctx, 1500*time.Millisecond)
		n := events.Load()
		if n == prev {
			return
		}
		prev = n
	}
}

// settleRSS waits until the server's RSS holds still (two readings half a
// second apart within 0.5%), at most cfg.Settle, and returns the last reading.
func (b *bench) settleRSS(ctx context.Context, pids []int) (int64, error) {
	deadline := time.Now().Add(b.cfg.Settle)
	prev, err := readRSSAll(pids)
	if err != nil {
		return 0, err
	}
	for time.Now().Before(deadline) {
		if !sleepCtx(ctx, 500*time.Millisecond) {
			return prev, ctx.Err()
		}
		rss, err := readRSSAll(pids)
		if err != nil {
			return 0, err
		}
		if d := rss - prev; d < prev/200 && -d < prev/200 {
			return rss, nil
		}
		prev = rss
	}
	return prev, nil
}
