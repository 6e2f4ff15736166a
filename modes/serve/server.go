package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"qchat/modes/serve/cluster"
	"qchat/modes/serve/dedupe"
	"qchat/modes/serve/discovery"
	"qchat/modes/serve/resume"
	"qchat/modes/serve/store"
)

// Config is everything `qchat serve` can be told.
type Config struct {
	Listen       string        // host:port; port 0 picks a free one
	Data         string        // data folder (SQLite database, lock, TLS key, client-id journal)
	Store        string        // "" or "sqlite": SQLite in Data; a postgres://... URL: PostgreSQL
	Cluster      string        // nats://...: a node of a cluster on the PostgreSQL Store (clustered.go); "": alone
	Node         string        // this node's name in the cluster
	NodeTimeout  time.Duration // a node silent this long is taken for dead
	NodeAddr     string        // where the other nodes reach this one's client port (relays); "": from Listen
	AddrFile     string        // where to write the real address once listening
	Name         string        // server name in the greeting
	HashCost     int           // bcrypt cost for new passwords
	ResumeTTL    time.Duration // how long a resumption token lasts; 0 gives none (tokens.go)
	Sync         string        // SQLite synchronous level: full or normal (PostgreSQL: the database's own)
	LoginTimeout time.Duration // from connect to logged in
	PingInterval time.Duration // idle time before the server sends PING
	PingTimeout  time.Duration // time to answer a PING
	WriteTimeout time.Duration // one write to a client; past it the client is a slow consumer
	MaxOutbound  int           // bytes queued for one client; past it the client is a slow consumer
	MaxQueue     int           // messages waiting for one recipient
	AckGrace     time.Duration // how long an online recipient may take to ACK before the message is stored
	Presence     string        // who hears a user's presence: "lan" (everyone) or "friends"
	NudgeEvery   time.Duration // at most one nudge per sender and recipient in this time
	ReceiptEvery time.Duration // at most one receipt per conversation and kind in this time, the latest winning
	OfferTimeout time.Duration // an unanswered CHAT or FILE offer is refused after this
	HistoryDays  int           // keep every conversation this many days for HISTORY (archive.go); 0: none
	Relay        bool          // relay direct links whose peers cannot reach each other
	RelayIdle    time.Duration // a relayed link with no bytes for this long is closed
	Limits       Limits        // abuse limits and fairness shares (abuse.go)
	TLS          string        // TLS policy: TLSRequired, TLSOptional or TLSOff (tls.go)
	TLSCert      string        // a certificate (PEM, chain) to present instead of the server's own
	TLSKey       string        // its private key
	Log          *slog.Logger
	// RTT is a client connection's round trip, for starting both sides
	// of a direct link at once; nil: as the kernel measured it.
	RTT func(net.Conn) time.Duration

	// DiscoveryPort is the UDP port LAN discovery is answered on
	// (PROTOCOL.md section 10); 0: not answered (serve --no-discovery).
	DiscoveryPort int

	// OfflineQuota turns offline files on (serve --offline-files): the
	// bytes each user may leave on the server for users who are not there;
	// 0: off. OfflineMaxAge is how long a file waits before it is deleted
	// and its sender told.
	OfflineQuota  int64
	OfflineMaxAge time.Duration
	OfflineRate   int64                          // bytes per second the server sends of each offline file (0: no limit)
	offlineNow    func() time.Time               // tests: the offline files' clock
	offlineFree   func(dir string) (int64, bool) // tests: the disk's free space

	wrapListener func(net.Listener) net.Listener // tests: hands the server connections of their own
	parkAfter    time.Duration                   // a session silent this long parks (park.go); tests shorten it
}

// Defaults returns a Config with every limit at its default.
func Defaults() Config {
	host, _ := os.Hostname()
	node := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, host)
	if len(node) > 64 {
		node = node[:64]
	}
	return Config{Node: node, NodeTimeout: cluster.DefaultTimeout,
		Listen: ":4000", Data: "qchat-data", Name: host, HashCost: 10, ResumeTTL: 7 * 24 * time.Hour, Sync: "full",
		LoginTimeout: 30 * time.Second, PingInterval: time.Minute, PingTimeout: 30 * time.Second,
		WriteTimeout: 10 * time.Second, MaxOutbound: 1 << 20, MaxQueue: 10000, AckGrace: 20 * time.Millisecond,
		Presence: "lan", NudgeEvery: 10 * time.Second, ReceiptEvery: time.Second,
		OfferTimeout: 2 * time.Minute, Relay: true, RelayIdle: time.Minute,
		Limits: DefaultLimits(), TLS: TLSRequired, parkAfter: time.Second, OfflineMaxAge: 7 * 24 * time.Hour,
	}
}

// Server is a running qchat server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	store  store.Store
	dir    *directory
	hub    *hub
	po     *postOffice
	soc    *social
	nudge  *nudgeLimiter
	marks  *marks // receipts on their way to senders (receipts.go)
	offers *offers
	relays *relays
	lim    *serverLimits
	pres   *presenceFanout // coalesced presence events (announce.go)
	tokens *resume.Keys    // resumption tokens (tokens.go); nil with --resume-ttl 0
	clock  atomic.Int64    // coarse now (unix ns), kept by the sweeper

	parker  *parker // parks idle sessions (park.go); nil: they keep their goroutines
	wheel   *wheel  // every session's next check (wheel.go)
	tick    time.Duration
	keys    *keyring    // nil with --tls=off (tls.go)
	tlsConf *tls.Config // nil with --tls=off
	fp      atomic.Pointer[string]
	disco   *discovery.Responder // nil without discovery (discover.go)
	off     *offlineSide         // nil without offline files (offline_files.go)
	cl      *cluster.Cluster     // nil unless a node of a cluster (clustered.go)
	reload  reloader             // social reloads asked by other nodes (clustered.go)
	lastIDs lastIDs              // the last ids of senders on other nodes (clustered.go)

	pwMu sync.Mutex // orders changes of password hashes (PASSWD, rehash.go): no I/O but the store's write

	mu       sync.Mutex
	sessions map[*session]struct{}
	nextID   uint64
	wg       sync.WaitGroup
	unlock   func()
}

// Run serves until ctx is cancelled, then closes every session with a
// reason, saves what is only in memory and returns nil.
// SIGHUP reloads the TLS certificate.
func Run(ctx context.Context, cfg Config) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	srv, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	srv.serveReloads(ctx, hup)
	srv.Shutdown()
	return nil
}

// Start opens the data folder, listens and starts serving in the background.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.parkAfter <= 0 {
		cfg.parkAfter = time.Second
	}
	if cfg.RTT == nil {
		cfg.RTT = connRTT
	}
	if cfg.Presence != "lan" && cfg.Presence != "friends" {
		return nil, fmt.Errorf("presence %q: want lan or friends", cfg.Presence)
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	unlock, err := lockData(cfg.Data)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()
	st, storeName, err := openStore(ctx, cfg, cfg.Log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			st.Close()
		}
	}()
	dir, err := loadDirectory(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("load accounts: %w", err)
	}
	soc, err := loadSocial(ctx, st, dir)
	if err != nil {
		return nil, fmt.Errorf("load friends and groups: %w", err)
	}
	ids, err := newIDAlloc(ctx, st, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("reserve message ids: %w", err)
	}
	soc.lastID = ids.Last
	lim, err := newServerLimits(cfg)
	if err != nil {
		return nil, err
	}
	var tokens *resume.Keys
	if cfg.ResumeTTL > 0 {
		if tokens, err = resume.Open(cfg.Data, cfg.ResumeTTL); err != nil {
			return nil, err
		}
	}
	window := 1024
	po, err := newPostOffice(ctx, st, ids, cfg.Log, cfg.AckGrace, cfg.MaxQueue, window, cfg.MaxOutbound/2)
	if err != nil {
		return nil, fmt.Errorf("load inbox: %w", err)
	}
	journal, sentIDs, err := dedupe.OpenJournal(cfg.Data, store.SentIDsKept, time.Now())
	if err != nil {
		po.close()
		return nil, err
	}
	po.journal = journal
	if cfg.HistoryDays > 0 {
		po.arch = newArchiver(po, time.Duration(cfg.HistoryDays)*24*time.Hour)
	}
	po.loadJournal(sentIDs)
	po.share = cfg.Limits.QueueShare
	keys, err := loadTLS(cfg)
	if err != nil {
		po.close()
		return nil, err
	}
	off, err := openOffline(ctx, cfg, st)
	if err != nil {
		po.close()
		journal.Close()
		return nil, err
	}
	// Never SO_REUSEPORT here: a second server must fail, not share the port.
	ln, err := listenConfig.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		po.close()
		journal.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	if cfg.wrapListener != nil {
		ln = cfg.wrapListener(ln)
	}
	if cfg.AddrFile != "" {
		if err := writeFileAtomic(cfg.AddrFile, ln.Addr().String()+"\n"); err != nil {
			ln.Close()
			po.close()
			journal.Close()
			return nil, fmt.Errorf("address file: %w", err)
		}
	}
	srv := &Server{cfg: cfg, log: cfg.Log, ln: ln, store: st, dir: dir, hub: newHub(), po: po,
		soc: soc, nudge: newNudgeLimiter(cfg.NudgeEvery), offers: newOffers(), relays: newRelays(),
		sessions: make(map[*session]struct{}), lim: lim, pres: newPresenceFanout(cfg.Limits.PresenceInterval, time.Now()),
		tokens: tokens, marks: newMarks(cfg.ReceiptEvery), off: off}
	po.onMarks = srv.noteMarks
	po.hidden = func(viewer, user int64) bool { return !srv.seesPresence(viewer, user) }
	if cfg.Cluster != "" {
		if err := srv.joinCluster(); err != nil {
			ln.Close()
			po.close()
			journal.Close()
			return nil, err
		}
		if tokens != nil {
			srv.shareTokens()
		}
	}
	srv.useTLS(keys)
	srv.parker = newParker(cfg.Log)
	srv.tick = min(cfg.PingInterval, cfg.PingTimeout, cfg.LoginTimeout, cfg.OfferTimeout) / 4
	srv.tick = min(max(srv.tick, 10*time.Millisecond), time.Second, max(cfg.parkAfter, 10*time.Millisecond))
	srv.wheel = newWheel(srv.tick, time.Now())
	srv.clock.Store(time.Now().UnixNano())
	srv.unlock = unlock
	ok = true
	srv.log.Info("listening", "addr", ln.Addr().String(), "data", cfg.Data, "store", storeName, "accounts", dir.count())
	srv.logLimits()
	srv.startDiscovery()
	srv.wg.Add(2)
	go srv.acceptLoop()
	go srv.sweep()
	return srv, nil
}

// listenConfig sets the kernel's TCP keepalive on every connection: a
// peer whose host died or whose network was cut is noticed within a
// minute (30 s of silence, then 3 probes 10 s apart) without waking the
// server (a parked session wakes for the socket's error). The PING of
// --ping-interval is for a peer whose process hangs on a live host.
var listenConfig = net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
	Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3,
}}

// Addr is the address the server listens on.
func (srv *Server) Addr() net.Addr { return srv.ln.Addr() }

func (srv *Server) acceptLoop() {
	defer srv.wg.Done()
	var delay time.Duration
	for {
		conn, err := srv.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			srv.log.Warn("accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		lim, ok := srv.admit(conn)
		if !ok {
			continue
		}
		srv.mu.Lock()
		if srv.sessions == nil { // shutting down
			srv.mu.Unlock()
			srv.lim.conns.Release(lim.slot)
			conn.Close()
			continue
		}
		srv.nextID++
		s := newSession(srv, conn, srv.nextID)
		s.lim = lim
		if lim.slot != nil {
			lim.slot.Owner = s // read by the accept loop only (admit), when it evicts the slot
		}
		srv.sessions[s] = struct{}{}
		srv.wg.Add(1) // Done when the session is cleaned up
		srv.mu.Unlock()
		srv.wheel.schedule(s, s.start.Add(min(srv.cfg.parkAfter, srv.cfg.LoginTimeout)).UnixNano())
		go s.run()
	}
}

func (srv *Server) forget(s *session) {
	srv.mu.Lock()
	delete(srv.sessions, s)
	srv.mu.Unlock()
}

// now is the server's coarse clock, good to a sweep tick.
func (srv *Server) now() int64 { return srv.clock.Load() }

// sweep keeps the clock, runs the sessions' checks that came due in the
// wheel (login deadline, keepalive, parking: wheel.go), and returns memory
// to the system after a burst (memory.go).
func (srv *Server) sweep() {
	defer srv.wg.Done()
	t := time.NewTicker(srv.tick)
	defer t.Stop()
	var ping []byte
	var due []wheelEntry
	mem := newMemoryReturner()
	lastForget := time.Now()
	for {
		// Shutdown closes lim.quit: it does not wait for the next tick
		// (up to a second, in every test and every stop).
		select {
		case <-t.C:
		case <-srv.lim.quit:
			return
		}
		now := time.Now()
		srv.clock.Store(now.UnixNano())
		if mem.check(now) {
			srv.log.Debug("returned free memory to the system after a burst")
		}
		if now.Sub(lastForget) > time.Minute {
			srv.po.sent.Sweep(now.Add(-sentForgetAfter))
			lastForget = now
		}
		srv.offers.expire(now, srv.cfg.OfferTimeout)
		srv.offlineSweep(now)
		if srv.cl != nil {
			srv.po.expireForwards(now.Add(-2 * srv.cfg.NodeTimeout)) // forward.go
		}
		srv.sweepLimits(now)
		srv.presenceSettled(now)
		srv.mu.Lock()
		stopping := srv.sessions == nil
		srv.mu.Unlock()
		if stopping {
			return
		}
		due = srv.wheel.due(due[:0], now.UnixNano())
		for _, e := range due {
			srv.checkSession(e.s, now, &ping)
		}
		clear(due)
	}
}

// Shutdown stops accepting, closes every session with reason "shutdown",
// saves what is only in memory and closes the store.
func (srv *Server) Shutdown() {
	srv.stopDiscovery()
	srv.stopMarks()
	srv.ln.Close()
	close(srv.lim.quit)
	srv.mu.Lock()
	open := srv.sessions
	srv.sessions = nil
	srv.mu.Unlock()
	for s := range open {
		s.close(reasonShutdown, "server shutting down")
	}
	srv.wg.Wait()
	srv.parker.stop()
	srv.relays.closeAll()
	srv.po.close()
	if srv.cl != nil {
		srv.po.fw.stop() // the answers of the last saves go out first
		srv.cl.Close()
	}
	srv.po.journal.Close()
	if srv.tokens != nil {
		srv.tokens.Close()
	}
	if err := srv.store.Close(); err != nil {
		srv.log.Error("close store", "err", err)
	}
	if srv.cfg.AddrFile != "" {
		os.Remove(srv.cfg.AddrFile)
	}
	srv.unlock()
	srv.log.Info("stopped")
}

// lockData takes an exclusive lock on the data folder, so that a second
// server on the same folder fails at once with a clear error.
func lockData(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		pid := strings.TrimSpace(string(b))
		if pid == "" {
			pid = "unknown"
		}
		return nil, fmt.Errorf("data folder %s is in use by another qchat serve (pid %s)", dir, pid)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}

// writeFileAtomic writes a file so that readers see all of it or nothing.
func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
