package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"qchat/modes/client"
)

// Config is what `qchat bench` is told.
type Config struct {
	Server       string // HOST:PORT, or the nodes of one service HOST:PORT,HOST:PORT,... (the clients spread over them)
	Password     string // from QCHAT_PASSWORD; DefaultPassword when empty
	PasswordFile string
	Prefix       string        // nicknames: <prefix>-s<i>, <prefix>-r<i>, <prefix>-i<i>, <prefix>-g<i>
	Clients      int           // idle logged-in connections to hold
	Pairs        int           // sender/receiver pairs
	Messages     int           // messages in all, split evenly among the pairs
	Groups       []int         // group fan-out: online members of each group, one group after another
	GroupMsgs    int           // messages posted to each group in all, split evenly among the senders
	GroupSenders int           // members of a group that post to it
	GroupWindow  int           // MSGs one group sender has waiting for their reply; 0: Window
	Size         int           // bytes of message text
	Rate         float64       // messages per second in all; 0 for as fast as possible
	Window       int           // MSGs one sender has waiting for their reply
	PIDs         []int         // the server's processes (one per node, and any others to count), for CPU and RSS, summed (none: not measured)
	Hold         time.Duration // keep the idle connections this long before the traffic
	Relogin      int           // after the hold, idle clients that log out and in again, one after another, while the others stay
	ReloginPW    bool          // log them in again with the password rather than the resumption token
	Settle       time.Duration // longest wait for the server's RSS to settle
	Connect      int           // logins in flight at once
	Timeout      time.Duration // for the whole run (0: none)
	JSON         bool
	Unbatched    bool // --unbatched: every MSG in a write of its own, as a person's client sends
	AckEach      bool // --ack-each: every message acknowledged by an ACK of its own, in a write of its own
	NoTLS        bool // --no-tls: clear text; otherwise STARTTLS, and the server's key checked as chat does
}

// DefaultPassword is the password of bench accounts when none is given.
// Bench accounts are throwaway; run the bench against a test server.
const DefaultPassword = "qchat-bench"

// Defaults returns a Config with every default filled in.
func Defaults() Config {
	return Config{Prefix: "bench", Pairs: 10, Messages: 1_000_000, Size: 64, Window: 256,
		GroupMsgs: 1000, GroupSenders: 1,
		Settle: 10 * time.Second, Connect: 64, Timeout: 5 * time.Minute}
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// bench is one run.
type bench struct {
	cfg      Config
	pw       string
	run      string // this run's token in every message text
	t0       time.Time
	stopping atomic.Bool
	readers  *sync.WaitGroup
	stderr   io.Writer
	keys     *client.ServerKeys // nil with --no-tls
	servers  []string           // Config.Server as a list: the nodes, spread as spread.go says
}

// now is the bench clock: monotonic ns since the start.
func (b *bench) now() int64 { return int64(time.Since(b.t0)) }

// Run runs the bench and prints its result; the int is the exit status.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) int {
	if err := check(&cfg); err != nil {
		fmt.Fprintln(stderr, "qchat bench:", err)
		return exitUsage
	}
	pw := cfg.Password
	if cfg.PasswordFile != "" {
		p, err := client.ReadPasswordFile(cfg.PasswordFile)
		if err != nil {
			fmt.Fprintln(stderr, "qchat bench:", err)
			return exitUsage
		}
		pw = p
	}
	if pw == "" {
		pw = DefaultPassword
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	servers, _ := client.ParseServers(cfg.Server) // checked by check
	b := &bench{cfg: cfg, pw: pw, run: runToken(), t0: time.Now(), stderr: stderr, servers: servers}
	if !cfg.NoTLS {
		b.keys = &client.ServerKeys{Notify: stderr}
	}
	res, err := b.do(ctx)
	if res != nil {
		if cfg.JSON {
			res.writeJSON(stdout)
		} else {
			res.writeText(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "qchat bench:", err)
		return exitFailed
	}
	return exitOK
}

// maxGroup is the largest --group-members: the group's name,
// #<prefix>-fan<members>, must stay within 32 characters.
const maxGroup = 1_000_000

func check(cfg *Config) error {
	var groups []int
	for _, n := range cfg.Groups {
		if n < 0 || n == 1 || n > maxGroup {
			return fmt.Errorf("--group-members must be 2 to %d (0: no group)", maxGroup)
		}
		if n > 0 {
			groups = append(groups, n)
		}
	}
	cfg.Groups = groups
	if cfg.Server != "" {
		if _, err := client.ParseServers(cfg.Server); err != nil {
			return fmt.Errorf("--server: %w", err)
		}
	}
	for _, pid := range cfg.PIDs {
		if pid <= 0 {
			return fmt.Errorf("--pid %d: want process ids", pid)
		}
	}
	switch {
	case cfg.Server == "":
		return errors.New("--server (or QCHAT_SERVER) is required")
	case cfg.Clients < 0 || cfg.Pairs < 0 || cfg.Messages < 0 || cfg.Relogin < 0:
		return errors.New("--clients, --pairs, --messages and --relogin must not be negative")
	case cfg.Relogin > cfg.Clients:
		return errors.New("--relogin must not be more than --clients (it logs idle clients in again)")
	case cfg.Pairs == 0 && cfg.Clients == 0 && len(cfg.Groups) == 0:
		return errors.New("nothing to do: give --pairs, --clients or --group-members")
	case len(cfg.Groups) > 0 && cfg.GroupSenders < 1:
		return errors.New("--group-senders must be at least 1")
	case len(cfg.Groups) > 0 && cfg.GroupSenders > slices.Min(cfg.Groups):
		return errors.New("--group-senders must not be more than --group-members")
	case len(cfg.Groups) > 0 && cfg.GroupMsgs < 1:
		return errors.New("--group-messages must be at least 1")
	case cfg.GroupWindow < 0:
		return errors.New("--group-window must not be negative")
	case cfg.Size < 1 || cfg.Size > 4096:
		return errors.New("--size must be 1 to 4096 bytes (the server's text limit)")
	case cfg.Window < 1:
		return errors.New("--window must be at least 1")
	case cfg.Rate < 0:
		return errors.New("--rate must not be negative")
	case len(cfg.Prefix) > 20:
		return errors.New("--prefix must be at most 20 characters")
	}
	if cfg.Pairs > 0 && cfg.Messages < cfg.Pairs {
		cfg.Messages = cfg.Pairs
	}
	cfg.GroupMsgs = max(cfg.GroupMsgs, cfg.GroupSenders)
	if cfg.GroupWindow == 0 {
		cfg.GroupWindow = cfg.Window
	}
	cfg.Connect = max(cfg.Connect, 1)
	return nil
}

func runToken() string {
	const abc = "abcdefghijklmnopqrstuvwxyz"
	var b [6]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = abc[int(b[i])%len(abc)]
	}
	return string(b[:])
}

// do runs the phases: idle connections (and the server's memory for
// them), then the traffic of the pairs, then each group's fan-out, with
// the idle ones still there.
func (b *bench) do(ctx context.Context) (*result, error) {
	cfg := b.cfg
	res := &result{cfg: cfg, nodes: b.servers, spread: b.spreadText()}
	var idle []*conn
	defer func() {
		b.stopping.Store(true)
		for _, c := range idle {
			c.close()
		}
	}()
	if cfg.Clients > 0 {
		var err error
		idle, err = b.holdIdle(ctx, res)
		if err != nil {
			return nil, err
		}
		if cfg.Relogin > 0 {
			if err := b.relogin(ctx, res, idle); err != nil {
				return res, err
			}
		}
	}
	if cfg.Pairs > 0 {
		if err := b.doPairs(ctx, res); err != nil {
			if res.lat == nil {
				return nil, err
			}
			return res, err
		}
	}
	for _, n := range cfg.Groups {
		if err := b.doGroup(ctx, res, n); err != nil {
			return res, err
		}
	}
	return res, nil
}

// doPairs logs in the pairs and runs their traffic.
func (b *bench) doPairs(ctx context.Context, res *result) error {
	cfg := b.cfg
	fmt.Fprintf(b.stderr, "logging in %d pairs\n", cfg.Pairs)
	nicks := make([]string, 2*cfg.Pairs)
	for i := range cfg.Pairs {
		nicks[2*i] = fmt.Sprintf("%s-s%d", cfg.Prefix, i)
		nicks[2*i+1] = fmt.Sprintf("%s-r%d", cfg.Prefix, i)
	}
	conns, err := b.connectAll(ctx, nicks, b.pairNode, 64<<10, nil)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	if err != nil {
		return err
	}
	pairs := make([]*pair, cfg.Pairs)
	for i := range pairs {
		n := cfg.Messages / cfg.Pairs
		if i < cfg.Messages%cfg.Pairs {
			n++
		}
		pairs[i] = newPair(b, conns[2*i], conns[2*i+1], n, cfg.Rate/float64(cfg.Pairs))
	}
	fmt.Fprintf(b.stderr, "sending %d messages\n", cfg.Messages)
	end := b.watch(ctx, false)
	start := b.runPairs(ctx, pairs)
	res.pairCost = end()
	b.stopping.Store(true)
	for _, c := range conns {
		c.close()
	}
	b.readers.Wait()
	res.addPairs(pairs, start)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stopped before the end: %w", err)
	}
	for _, p := range pairs {
		if e := p.lastErr.Load(); e != nil {
			return errors.New(*e)
		}
	}
	return nil
}

// holdIdle logs in cfg.Clients idle connections, each with a goroutine
// that answers PING and acknowledges anything sent to it, and measures the
// server's RSS before and after.
func (b *bench) holdIdle(ctx context.Context, res *result) ([]*conn, error) {
	cfg := b.cfg
	if len(cfg.PIDs) > 0 {
		rss, err := readRSSAll(cfg.PIDs)
		if err != nil {
			return nil, err
		}
		res.rssBefore = rss
	}
	fmt.Fprintf(b.stderr, "logging in %d idle clients\n", cfg.Clients)
	nicks := make([]string, cfg.Clients)
	for i := range nicks {
		nicks[i] = fmt.Sprintf("%s-i%d", cfg.Prefix, i)
	}
	t := time.Now()
	// Each idle client reads from the moment it is logged in, as a real
	// one does: in LAN mode every later login is announced to it, and a
	// client that did not read would make the server queue that storm.
	conns, err := b.connectAll(ctx, nicks, b.roundNode, 512, func(_ int, c *conn) { go b.idleLoop(c, &res.idleEvents) })
	res.loginTime = time.Since(t)
	if err != nil {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
		return nil, err
	}
	res.idle = len(conns)
	if len(cfg.PIDs) > 0 {
		// Idle means the announcements of the logins have all arrived.
		b.settleEvents(ctx, &res.idleEvents)
		rss, err := b.settleRSS(ctx, cfg.PIDs)
		if err != nil {
			return conns, err
		}
		res.rssAfter = rss
	}
	if cfg.Hold > 0 {
		fmt.Fprintf(b.stderr, "holding %d idle clients for %s\n", len(conns), cfg.Hold)
		var cpu0 time.Duration
		if len(cfg.PIDs) > 0 {
			if p, err := readProcs(cfg.PIDs); err == nil {
				cpu0 = p.cpu
			}
		}
		t := time.Now()
		sleepCtx(ctx, cfg.Hold)
		if len(cfg.PIDs) > 0 {
			res.heldFor = time.Since(t)
			if p, err := readProcs(cfg.PIDs); err == nil && cpu0 > 0 {
				res.cpuHeld = p.cpu - cpu0
			}
			res.rssHeld, _ = readRSSAll(cfg.PIDs)
		}
	}
	return conns, ctx.Err()
}

// relogin logs cfg.Relogin of the idle clients out and in again, with at
// most cfg.Connect in flight, each with the resumption token of its last
// login (or its password with ReloginPW), while all the others stay
// online: the logins of a server's restart, with a full house watching.
// It times them and takes the server's CPU over them.
func (b *bench) relogin(ctx context.Context, res *result, idle []*conn) error {
	cfg := b.cfg
	n := min(cfg.Relogin, len(idle))
	how := "resumption tokens"
	if cfg.ReloginPW {
		how = "passwords"
	}
	fmt.Fprintf(b.stderr, "logging %d idle clients out and in again with %s\n", n, how)
	var cpu0 time.Duration
	if len(cfg.PIDs) > 0 {
		if p, err := readProcs(cfg.PIDs); err == nil {
			cpu0 = p.cpu
		}
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		fail     error
		noTokens atomic.Int64
	)
	t := time.Now()
	for range min(cfg.Connect, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				old := idle[i]
				token := old.token
				if token == "" {
					noTokens.Add(1)
				}
				if cfg.ReloginPW {
					token = ""
				}
				old.close()
				c, err := dialAs(ctx, old.addr, old.nick, b.pw, token, 512, 30*time.Second, b.keys)
				if err != nil {
					mu.Lock()
					fail = cmp.Or(fail, err)
					mu.Unlock()
					return
				}
				idle[i] = c
				go b.idleLoop(c, &res.idleEvents)
			}
		}()
	}
	wg.Wait()
	res.reloginTime = time.Since(t)
	res.relogins = n
	res.reloginHow = how
	if k := noTokens.Load(); k > 0 && !cfg.ReloginPW {
		res.reloginHow = fmt.Sprintf("passwords (the server gave %d of them no token)", k)
	}
	if len(cfg.PIDs) > 0 {
		if p, err := readProcs(cfg.PIDs); err == nil && cpu0 > 0 {
			res.reloginCPU = p.cpu - cpu0
		}
	}
	if fail == nil {
		fail = ctx.Err()
	}
	return fail
}

// idleLoop reads an idle connection until it closes: PING is answered,
// a message acknowledged, everything else (presence) counted and dropped.
func (b *bench) idleLoop(c *conn, events *atomic.Int64) {
	for {
		l, err := c.readLine()
		if err != nil {
			return
		}
		events.Add(1)
		if ev, ok := parseMsg(l); ok {
			c.ack(ev.id)
		} else if len(l) > 5 && string(l[:5]) == "PING " {
			c.pong(l)
		}
	}
}

// connectAll logs in every nick, the i-th on the node node(i), with at most
// cfg.Connect logins in flight, calling started (when not nil) with each
// connection and its index in nicks once it is logged in.
// On error the slice holds the connections made so far (others nil).
func (b *bench) connectAll(ctx context.Context, nicks []string, node func(i int) int, bufSize int, started func(int, *conn)) ([]*conn, error) {
	conns := make([]*conn, len(nicks))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next atomic.Int64
		done atomic.Int64
		mu   sync.Mutex
		fail error
		wg   sync.WaitGroup
	)
	progress := len(nicks) >= 1000
	for range min(b.cfg.Connect, len(nicks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(nicks) || ctx.Err() != nil {
					return
				}
				c, err := dial(ctx, b.servers[node(i)], nicks[i], b.pw, bufSize, 30*time.Second, b.keys)
				if err != nil {
					if errors.Is(err, errLogin) {
						err = fmt.Errorf("%w (an account of an earlier run with another password? try another --prefix)", err)
					}
					mu.Lock()
					if fail == nil {
						fail = err
					}
					mu.Unlock()
					cancel()
					return
				}
				conns[i] = c
				if started != nil {
					started(i, c)
				}
				if d := done.Add(1); progress && d%1000 == 0 {
					fmt.Fprintf(b.stderr, "  %d/%d logged in\n", d, len(nicks))
				}
			}
		}()
	}
	wg.Wait()
	if fail == nil && ctx.Err() != nil {
		fail = ctx.Err()
	}
	return conns, fail
}
