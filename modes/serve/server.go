package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config is everything `qchat serve` can be told.
type Config struct {
	Listen       string        // host:port; port 0 picks a free one
	Data         string        // data folder (database, lock)
	AddrFile     string        // where to write the real address once listening
	Name         string        // server name in the greeting
	HashCost     int           // bcrypt cost for new passwords
	Sync         string        // SQLite synchronous level: full or normal
	LoginTimeout time.Duration // from connect to logged in
	PingInterval time.Duration // idle time before the server sends PING
	PingTimeout  time.Duration // time to answer a PING
	WriteTimeout time.Duration // one write to a client; past it the client is a slow consumer
	MaxOutbound  int           // bytes queued for one client; past it the client is a slow consumer
	MaxQueue     int           // messages waiting for one recipient
	AckGrace     time.Duration // how long an online recipient may take to ACK before the message is stored
	Presence     string        // who hears a user's presence: "lan" (everyone) or "friends"
	NudgeEvery   time.Duration // at most one nudge per sender and recipient in this time
	OfferTimeout time.Duration // an unanswered CHAT or FILE offer is refused after this
	Relay        bool          // relay direct links whose peers cannot reach each other
	RelayIdle    time.Duration // a relayed link with no bytes for this long is closed
	Log          *slog.Logger
}

// Defaults returns a Config with every limit at its default.
func Defaults() Config {
	host, _ := os.Hostname()
	return Config{
		Listen: ":4000", Data: "qchat-data", Name: host, HashCost: 10, Sync: "full",
		LoginTimeout: 30 * time.Second, PingInterval: 30 * time.Second, PingTimeout: 30 * time.Second,
		WriteTimeout: 10 * time.Second, MaxOutbound: 1 << 20, MaxQueue: 10000, AckGrace: 20 * time.Millisecond,
		Presence: "lan", NudgeEvery: 10 * time.Second,
		OfferTimeout: 2 * time.Minute, Relay: true, RelayIdle: time.Minute,
	}
}

// Server is a running qchat server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	store  *Store
	dir    *directory
	hub    *hub
	po     *postOffice
	soc    *social
	nudge  *nudgeLimiter
	offers *offers
	relays *relays
	clock  atomic.Int64 // coarse now (unix ns), kept by the sweeper

	mu       sync.Mutex
	sessions map[*session]struct{}
	nextID   uint64
	wg       sync.WaitGroup
	unlock   func()
}

// Run serves until ctx is cancelled, then closes every session with a
// reason, saves what is only in memory and returns nil.
func Run(ctx context.Context, cfg Config) error {
	srv, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	srv.Shutdown()
	return nil
}

// Start opens the data folder, listens and starts serving in the background.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
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
	st, err := OpenStore(cfg.Data, cfg.Sync)
	if err != nil {
		return nil, err
	}
	st.Log = cfg.Log
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
	window := 1024
	po, err := newPostOffice(ctx, st, ids, cfg.Log, cfg.AckGrace, cfg.MaxQueue, window, cfg.MaxOutbound/2)
	if err != nil {
		return nil, fmt.Errorf("load inbox: %w", err)
	}
	// Never SO_REUSEPORT here: a second server must fail, not share the port.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		po.close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	if cfg.AddrFile != "" {
		if err := writeFileAtomic(cfg.AddrFile, ln.Addr().String()+"\n"); err != nil {
			ln.Close()
			po.close()
			return nil, fmt.Errorf("address file: %w", err)
		}
	}
	srv := &Server{cfg: cfg, log: cfg.Log, ln: ln, store: st, dir: dir, hub: newHub(), po: po,
		soc: soc, nudge: newNudgeLimiter(cfg.NudgeEvery), offers: newOffers(), relays: newRelays(),
		sessions: make(map[*session]struct{})}
	srv.clock.Store(time.Now().UnixNano())
	srv.unlock = unlock
	ok = true
	srv.log.Info("listening", "addr", ln.Addr().String(), "data", cfg.Data, "accounts", dir.count())
	srv.wg.Add(2)
	go srv.acceptLoop()
	go srv.sweep()
	return srv, nil
}

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
		srv.mu.Lock()
		if srv.sessions == nil { // shutting down
			srv.mu.Unlock()
			conn.Close()
			continue
		}
		srv.nextID++
		s := newSession(srv, conn, srv.nextID)
		srv.sessions[s] = struct{}{}
		srv.wg.Add(1)
		srv.mu.Unlock()
		go func() {
			defer srv.wg.Done()
			s.run()
		}()
	}
}

func (srv *Server) forget(s *session) {
	srv.mu.Lock()
	delete(srv.sessions, s)
	srv.mu.Unlock()
}

// now is the server's coarse clock, good to a sweep tick.
func (srv *Server) now() int64 { return srv.clock.Load() }

// sweep keeps the clock, enforces the login deadline and keepalive, and
// returns memory to the system after a burst (memory.go).
func (srv *Server) sweep() {
	defer srv.wg.Done()
	tick := min(srv.cfg.PingInterval, srv.cfg.PingTimeout, srv.cfg.LoginTimeout, srv.cfg.OfferTimeout) / 4
	tick = min(max(tick, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var ping []byte
	mem := newMemoryReturner()
	for range t.C {
		now := time.Now()
		srv.clock.Store(now.UnixNano())
		if mem.check(now) {
			srv.log.Debug("returned free memory to the system after a burst")
		}
		srv.offers.expire(now, srv.cfg.OfferTimeout)
		srv.mu.Lock()
		if srv.sessions == nil {
			srv.mu.Unlock()
			return
		}
		for s := range srv.sessions {
			if s.closed.Load() {
				continue
			}
			if s.loggedIn() == 0 && now.Sub(s.start) > srv.cfg.LoginTimeout {
				s.close(reasonLoginTimeout, "not logged in within "+srv.cfg.LoginTimeout.String())
				continue
			}
			if at := s.pingAt.Load(); at != 0 {
				if now.UnixNano()-at > int64(srv.cfg.PingTimeout) {
					s.close(reasonPingTimeout, "no answer to PING within "+srv.cfg.PingTimeout.String())
				}
			} else if now.UnixNano()-s.lastRead.Load() > int64(srv.cfg.PingInterval) {
				s.pingAt.Store(now.UnixNano())
				ping = append(ping[:0], "PING "...)
				ping = strconv.AppendInt(ping, now.Unix(), 10)
				ping = append(ping, '\n')
				s.send(ping)
			}
		}
		srv.mu.Unlock()
	}
}

// Shutdown stops accepting, closes every session with reason "shutdown",
// saves what is only in memory and closes the store.
func (srv *Server) Shutdown() {
	srv.ln.Close()
	srv.mu.Lock()
	open := srv.sessions
	srv.sessions = nil
	srv.mu.Unlock()
	for s := range open {
		s.close(reasonShutdown, "server shutting down")
	}
	srv.wg.Wait()
	srv.relays.closeAll()
	srv.po.close()
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
