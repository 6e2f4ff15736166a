// Package cli is qchat's command line: the flags of every mode, parsed
// GNU style (spf13/pflag), and the hand-over to the mode. main.go only
// calls Run; the end-to-end stories (testscripts) call it too, so that their
// test binary is the qchat they run. It knows flags and exit statuses, and
// nothing of what a mode does.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"qchat/modes/bench"
	"qchat/modes/chat"
	"qchat/modes/client"
	"qchat/modes/recv"
	"qchat/modes/serve"
	"qchat/modes/serve/limits"
	"qchat/protocol"
)

// Exit statuses shared by every mode.
const (
	exitOK      = 0
	exitFailed  = 1 // a command or the mode failed
	exitUsage   = 2 // bad flags or arguments
	exitTimeout = 3 // recv: the timeout passed before --count was reached
)

const usage = `qchat — QQ for the terminal

usage:
  qchat serve [flags]   run the server on this host
  qchat chat  [flags]   chat at a terminal, or run piped slash commands
  qchat recv  [flags]   receive messages unattended (for scripts)
  qchat bench [flags]   load a server and print throughput and latency
  qchat version

Run "qchat MODE --help" for a mode's flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Run is qchat: args without the program name; it returns the exit status.
// main calls it, and the end-to-end stories run it as qchat in their test
// binary (testscripts).
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	mode, rest := args[0], args[1:]
	switch mode {
	case "serve":
		return runServe(rest, stdout, stderr)
	case "chat":
		return runChat(rest, stdin, stdout, stderr)
	case "recv":
		return runRecv(rest, stdout, stderr)
	case "bench":
		return runBench(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "qchat", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "qchat: unknown mode %q\n\n%s", mode, usage)
		return exitUsage
	}
}

// parse parses a mode's flags; done means the caller should return code.
func parse(fs *pflag.FlagSet, args []string, stderr io.Writer) (code int, done bool) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK, true
		}
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", fs.Name(), err, fs.Name())
		return exitUsage, true
	}
	return 0, false
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func runServe(args []string, stdout, stderr io.Writer) int {
	cfg := serve.Defaults()
	fs := pflag.NewFlagSet("qchat serve", pflag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to listen on (port 0 picks a free port)")
	fs.StringVar(&cfg.Data, "data", cfg.Data, "data folder: the SQLite database, the lock, the server's TLS key and the client-id journal")
	fs.StringVar(&cfg.Store, "store", os.Getenv("QCHAT_STORE"), "where accounts, groups and waiting messages are kept: sqlite (qchat.db in --data) or postgres://USER@HOST:PORT/DB (default $QCHAT_STORE, else sqlite)")
	fs.StringVar(&cfg.Cluster, "cluster", os.Getenv("QCHAT_CLUSTER"), "join the other nodes on the same PostgreSQL --store through NATS at this URL (nats://HOST:4222; default $QCHAT_CLUSTER): presence, takeovers and waiting messages cross between nodes")
	fs.StringVar(&cfg.Node, "node", cfg.Node, "this node's name in the cluster (1-64 of A-Z a-z 0-9 _ -; unique per deployment)")
	fs.StringVar(&cfg.NodeAddr, "node-addr", "", "HOST:PORT where the other nodes reach this node's --listen port, to relay direct links between users on different nodes (default: the listening address, or the host name and port when listening on all addresses)")
	fs.DurationVar(&cfg.NodeTimeout, "node-timeout", cfg.NodeTimeout, "a node silent this long is taken for dead by the others: its users go offline and may log in elsewhere")
	fs.StringVar(&cfg.AddrFile, "addr-file", "", "write the real listening address to this file once ready")
	fs.StringVar(&cfg.Name, "name", cfg.Name, "server name shown in the greeting and used by clients to file history")
	fs.IntVar(&cfg.HashCost, "hash-cost", cfg.HashCost, "bcrypt cost of new password hashes (4-31)")
	fs.DurationVar(&cfg.ResumeTTL, "resume-ttl", cfg.ResumeTTL, "how long a resumption token lasts (a reconnecting client presents it instead of its password: one HMAC, not bcrypt); 0 gives none")
	fs.StringVar(&cfg.Sync, "sync", cfg.Sync, "SQLite durability: full (survives power loss) or normal (survives a killed process)")
	fs.DurationVar(&cfg.LoginTimeout, "login-timeout", cfg.LoginTimeout, "time from connect to login")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", cfg.PingInterval, "idle time before the server sends PING")
	fs.DurationVar(&cfg.PingTimeout, "ping-timeout", cfg.PingTimeout, "time a client has to answer PING")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", cfg.WriteTimeout, "time one write to a client may take before it is dropped as a slow consumer")
	maxOut := sizeFlag(fs, "max-outbound", int64(cfg.MaxOutbound), "bytes queued for one client before it is dropped as a slow consumer")
	fs.IntVar(&cfg.MaxQueue, "max-queue", cfg.MaxQueue, "messages waiting for one recipient before senders get 'queue full'")
	fs.DurationVar(&cfg.AckGrace, "ack-grace", cfg.AckGrace, "least time an online recipient has to acknowledge before a message is written to disk (a slower one gets its measured time, at most 500ms)")
	fs.StringVar(&cfg.Presence, "presence", cfg.Presence, "who hears a user come and go: lan (everyone) or friends")
	fs.DurationVar(&cfg.NudgeEvery, "nudge-interval", cfg.NudgeEvery, "at most one nudge per sender and recipient in this time")
	fs.DurationVar(&cfg.ReceiptEvery, "receipt-interval", cfg.ReceiptEvery, "at most one receipt (shown, read) per conversation in this time: the ones between are merged into one, the latest")
	fs.IntVar(&cfg.HistoryDays, "history-days", cfg.HistoryDays, "keep every conversation (private and group) this many days, for HISTORY: a user's other devices, or a new one, fetch it (0: none kept, the default)")
	fs.DurationVar(&cfg.OfferTimeout, "offer-timeout", cfg.OfferTimeout, "a direct chat or file offer not answered in this time is refused")
	noRelay := fs.Bool("no-relay", false, "never relay direct links (peers that cannot reach each other then fail)")
	fs.DurationVar(&cfg.RelayIdle, "relay-idle", cfg.RelayIdle, "a relayed link with no bytes moving for this long is closed")
	offlineQuota := sizeFlag(fs, "offline-files", 0, "keep files for users who are offline (or do not answer), up to this many bytes per sender, e.g. 1GiB, under --data/offline (0: off, the default)")
	fs.DurationVar(&cfg.OfflineMaxAge, "offline-files-age", cfg.OfflineMaxAge, "an offline file not taken in this time is deleted and its sender told")
	offlineRate := sizeFlag(fs, "offline-files-rate", 0, "send each offline file to its recipient at most this many bytes per second, e.g. 10MiB (0: no limit)")
	fs.StringVar(&cfg.TLS, "tls", cfg.TLS, "STARTTLS policy: required (passwords in clear only from loopback), optional, or off")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "present this certificate (PEM, with its chain) instead of the server's own self-signed one; reloaded on SIGHUP")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	noDiscovery, discoveryPort := discoveryFlags(fs, "do not answer LAN discovery: clients must be given the address")
	fingerprint := fs.Bool("fingerprint", false, "print the fingerprint of the server's key (making the key if there is none) and exit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	exempt := limitFlags(fs, &cfg.Limits)
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "qchat serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if cfg.Store != "" && cfg.Store != "sqlite" {
		if !serve.IsPostgresURL(cfg.Store) {
			fmt.Fprintf(stderr, "qchat serve: --store %q: want sqlite or a postgres:// URL\n", cfg.Store)
			return exitUsage
		}
		if fs.Changed("sync") {
			fmt.Fprintln(stderr, "qchat serve: --sync is SQLite's; PostgreSQL's durability is its own synchronous_commit")
			return exitUsage
		}
	}
	if cfg.Cluster != "" {
		if !serve.IsPostgresURL(cfg.Store) {
			fmt.Fprintln(stderr, "qchat serve: --cluster needs --store postgres://...: the nodes share one database")
			return exitUsage
		}
		if !serve.ValidNode(cfg.Node) {
			fmt.Fprintf(stderr, "qchat serve: --node %q: want 1 to 64 of A-Z a-z 0-9 _ -\n", cfg.Node)
			return exitUsage
		}
		if cfg.NodeTimeout < 100*time.Millisecond {
			fmt.Fprintln(stderr, "qchat serve: --node-timeout must be at least 100ms")
			return exitUsage
		}
		if *offlineQuota > 0 {
			fmt.Fprintln(stderr, "qchat serve: --offline-files and --cluster do not go together yet: a node keeps offline files in its own data folder, where a recipient who logs in on another node could not take them")
			return exitUsage
		}
	}
	ex, err := limits.ParseExempt(*exempt)
	if err != nil {
		fmt.Fprintln(stderr, "qchat serve: --limits-exempt:", err)
		return exitUsage
	}
	cfg.Limits.Exempt = ex
	if !*noDiscovery {
		cfg.DiscoveryPort = *discoveryPort
	}
	cfg.MaxOutbound = int(*maxOut)
	cfg.Relay = !*noRelay
	if cfg.HashCost < 4 || cfg.HashCost > 31 {
		fmt.Fprintln(stderr, "qchat serve: --hash-cost must be 4 to 31")
		return exitUsage
	}
	if cfg.HistoryDays < 0 {
		fmt.Fprintln(stderr, "qchat serve: --history-days must not be negative")
		return exitUsage
	}
	cfg.OfflineQuota, cfg.OfflineRate = *offlineQuota, *offlineRate
	if cfg.OfflineMaxAge <= 0 {
		fmt.Fprintln(stderr, "qchat serve: --offline-files-age must be above 0")
		return exitUsage
	}
	if cfg.ResumeTTL < 0 {
		fmt.Fprintln(stderr, "qchat serve: --resume-ttl must not be negative")
		return exitUsage
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "qchat serve:", err)
		return exitUsage
	}
	cfg.Log = log
	if *fingerprint {
		fp, err := serve.Fingerprint(cfg)
		if err != nil {
			fmt.Fprintln(stderr, "qchat serve:", err)
			return exitFailed
		}
		fmt.Fprintln(stdout, fp)
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve.Run(ctx, cfg); err != nil {
		log.Error("qchat serve: " + err.Error())
		return exitFailed
	}
	return exitOK
}

// clientFlags are the flags chat and recv share.
type clientFlags struct {
	server, user, passwordFile string
	serverOrder                string
	json, noHistory            bool
	timeout                    time.Duration
	keepalive                  time.Duration

	// direct links and files
	peerListen, peerAddr    string
	dir                     string
	overwrite, relay        bool
	connectTimeout, idleOut time.Duration

	// the server connection's security
	noTLS, strictServer bool
	serverFingerprint   string

	noDiscovery   *bool // without --server: do not search the LAN
	discoveryPort *int
}

func (c *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.server, "server", os.Getenv("QCHAT_SERVER"), "server address HOST:PORT, or the nodes of one service HOST:PORT,HOST:PORT,... (default $QCHAT_SERVER)")
	fs.StringVar(&c.serverOrder, "server-order", client.OrderRandom, "with several servers, where to start: random (spreads the clients over the nodes) or listed (the first, then the next: a primary and its backups)")
	fs.StringVarP(&c.user, "user", "u", "", "log in as this id (or nickname); the password comes from $QCHAT_PASSWORD, --password-file or a prompt")
	fs.StringVar(&c.passwordFile, "password-file", "", "read the password from the first line of this file")
	fs.BoolVar(&c.json, "json", false, "print one JSON object per line, each with a \"type\"")
	fs.BoolVar(&c.noHistory, "no-history", false, "keep no local history files")
	fs.DurationVar(&c.keepalive, "keepalive", time.Minute, "ping a silent server after this long; one that does not answer within half of it is taken for lost")
	fs.StringVar(&c.peerListen, "peer-listen", ":0", "address of the peer listener for direct links (all interfaces, any port by default)")
	fs.StringVar(&c.peerAddr, "peer-addr-file", "", "write the peer listener's address to this file once listening (for scripts)")
	fs.BoolVar(&c.overwrite, "overwrite", false, "replace existing files with received ones (default: save as \"name (1).ext\")")
	fs.BoolVar(&c.relay, "relay", false, "always send direct links through the server's relay")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 15*time.Second, "time to make a link, direct or relayed (a relayed link goes on trying direct paths as long)")
	fs.DurationVar(&c.idleOut, "idle-timeout", 30*time.Second, "a link with no bytes moving for this long has stalled")
	registerTLSFlags(fs, &c.noTLS, "speak clear text to the server (no STARTTLS); only for a server that cannot do TLS")
	fs.StringVar(&c.serverFingerprint, "server-fingerprint", "", "accept only the server key with this fingerprint (SHA256:..., from 'qchat serve --fingerprint'); several servers: a comma-separated list, each server's key one of them")
	fs.BoolVar(&c.strictServer, "strict-server", false, "refuse a server key that known_servers does not hold (and no CA vouches for)")
	c.noDiscovery, c.discoveryPort = discoveryFlags(fs, "without --server, do not search the LAN for a server")
}

// discoveryFlags adds --no-discovery and --discovery-port (PROTOCOL.md
// section 10): serve answers, chat and recv search when no server is
// given. QCHAT_NO_DISCOVERY=1 turns it off by default.
func discoveryFlags(fs *pflag.FlagSet, offHelp string) (off *bool, port *int) {
	off = fs.Bool("no-discovery", os.Getenv("QCHAT_NO_DISCOVERY") != "", offHelp+" (default: $QCHAT_NO_DISCOVERY set)")
	p := portValue(protocol.DiscoveryPort)
	fs.Var(&p, "discovery-port", "UDP port of LAN discovery, the same on servers and clients")
	return off, (*int)(&p)
}

// portValue is a flag that takes a port, 1 to 65535.
type portValue int

func (v *portValue) String() string { return strconv.Itoa(int(*v)) }
func (v *portValue) Type() string   { return "port" }
func (v *portValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("bad port %q: want 1 to 65535", s)
	}
	*v = portValue(n)
	return nil
}

// registerTLSFlags adds --no-tls, which every client mode has.
func registerTLSFlags(fs *pflag.FlagSet, noTLS *bool, help string) {
	fs.BoolVar(noTLS, "no-tls", false, help)
}

// check checks the server flags: the list (when given) and its order.
func (c *clientFlags) check() error {
	if c.server != "" {
		if _, err := client.ParseServers(c.server); err != nil {
			return fmt.Errorf("--server: %w", err)
		}
	}
	if c.serverOrder != client.OrderRandom && c.serverOrder != client.OrderListed {
		return fmt.Errorf("--server-order %q: want random or listed", c.serverOrder)
	}
	return nil
}

// serverKeys checks the security flags and returns how to check the
// server's key (nil with --no-tls).
func (c *clientFlags) serverKeys() (*client.ServerKeys, error) {
	if c.noTLS {
		if c.serverFingerprint != "" || c.strictServer {
			return nil, errors.New("--no-tls checks no key: it does not go with --server-fingerprint or --strict-server")
		}
		if c.server == "" {
			// Discovery's answer is a hint anyone can forge; only the key
			// check makes it safe to log in to what answered.
			return nil, errors.New("--no-tls needs --server: with no key to check, a server found on the LAN could be anyone")
		}
		return nil, nil
	}
	var pins []string
	if c.serverFingerprint != "" {
		for _, fp := range strings.Split(c.serverFingerprint, ",") {
			fp = strings.TrimSpace(fp)
			if !protocol.ValidFingerprint(fp) {
				return nil, fmt.Errorf("--server-fingerprint %q: want SHA256: and 43 characters of base64, as 'qchat serve --fingerprint' prints it (several: comma-separated)", fp)
			}
			pins = append(pins, fp)
		}
	}
	return &client.ServerKeys{Fingerprints: pins, Strict: c.strictServer}, nil
}

func runChat(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cf clientFlags
	fs := pflag.NewFlagSet("qchat chat", pflag.ContinueOnError)
	cf.register(fs)
	linger := fs.Duration("linger", 0, "piped: keep receiving this long after the input ends")
	ready := fs.String("ready-file", "", "write the logged-in id to this file once ready (for scripts)")
	timeout := fs.Duration("timeout", 30*time.Second, "time to connect and to wait for each reply; piped, also how long a lost server is waited for before giving up")
	fs.StringVar(&cf.dir, "dir", ".", "folder for the files you accept")
	maxChats := fs.Int("max-chats", 8, "direct chats open at once; more requests are refused (0: refuse every one)")
	rate := sizeFlag(fs, "limit-rate", 0, "bytes per second of files sent, e.g. 10MiB (0: no limit)")
	sync := fs.Bool("sync", false, "log in (--user), fill the local history files from the server's archive (a server started with --history-days) since the last sync, and leave")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "qchat chat: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *sync && (cf.user == "" || cf.noHistory) {
		fmt.Fprintln(stderr, "qchat chat: --sync needs --user, and history files (not --no-history)")
		return exitUsage
	}
	keys, err := cf.serverKeys()
	if err == nil {
		err = cf.check()
	}
	if err != nil {
		fmt.Fprintln(stderr, "qchat chat:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	return chat.Run(ctx, chat.Config{
		Server: cf.server, ServerOrder: cf.serverOrder, User: cf.user, Password: os.Getenv("QCHAT_PASSWORD"), PasswordFile: cf.passwordFile,
		JSON: cf.json, NoHistory: cf.noHistory, Linger: *linger, Timeout: *timeout, ReadyFile: *ready, Keepalive: cf.keepalive,
		PeerListen: cf.peerListen, PeerAddrFile: cf.peerAddr, Dir: cf.dir, Overwrite: cf.overwrite, ConnectTimeout: cf.connectTimeout,
		IdleTimeout: cf.idleOut, ForceRelay: cf.relay, MaxChats: *maxChats, Rate: *rate, Sync: *sync,
		NoTLS: cf.noTLS, Keys: keys, NoDiscovery: *cf.noDiscovery, DiscoveryPort: *cf.discoveryPort,
	}, stdin, stdout, stderr)
}

func runRecv(args []string, stdout, stderr io.Writer) int {
	var cf clientFlags
	fs := pflag.NewFlagSet("qchat recv", pflag.ContinueOnError)
	cf.register(fs)
	count := fs.IntP("count", "n", 0, "exit 0 after this many messages (0: no limit)")
	timeout := fs.Duration("timeout", 0, "exit 3 if --count is not reached by then (0: wait forever); without --count, exit 0 then")
	ready := fs.String("ready-file", "", "write the logged-in id to this file once receiving (for scripts)")
	fs.StringVar(&cf.dir, "dir", "", "take file offers into this folder (without it, offers are refused)")
	from := fs.StringSlice("from", nil, "take offers only from these ids or nicknames (comma-separated)")
	maxSize := sizeFlag(fs, "max-size", 0, "refuse offers of more bytes in all, e.g. 100MiB (0: no cap)")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "qchat recv: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	keys, err := cf.serverKeys()
	if err == nil {
		err = cf.check()
	}
	if err != nil {
		fmt.Fprintln(stderr, "qchat recv:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return recv.Run(ctx, recv.Config{
		Server: cf.server, ServerOrder: cf.serverOrder, User: cf.user, Password: os.Getenv("QCHAT_PASSWORD"), PasswordFile: cf.passwordFile,
		JSON: cf.json, NoHistory: cf.noHistory, Count: *count, Timeout: *timeout, ReadyFile: *ready, Keepalive: cf.keepalive,
		Dir: cf.dir, From: *from, MaxSize: *maxSize, Overwrite: cf.overwrite, PeerListen: cf.peerListen, PeerAddrFile: cf.peerAddr,
		ConnectTimeout: cf.connectTimeout, IdleTimeout: cf.idleOut, ForceRelay: cf.relay,
		NoTLS: cf.noTLS, Keys: keys, NoDiscovery: *cf.noDiscovery, DiscoveryPort: *cf.discoveryPort,
	}, stdout, stderr)
}

func runBench(args []string, stdout, stderr io.Writer) int {
	cfg := bench.Defaults()
	fs := pflag.NewFlagSet("qchat bench", pflag.ContinueOnError)
	fs.StringVar(&cfg.Server, "server", os.Getenv("QCHAT_SERVER"), "server address HOST:PORT, or the nodes of one service HOST:PORT,HOST:PORT,...: the clients spread over them, each pair's sender and recipient on different nodes (default $QCHAT_SERVER)")
	fs.StringVar(&cfg.PasswordFile, "password-file", "", "password of the bench accounts, first line of this file (default $QCHAT_PASSWORD, else "+bench.DefaultPassword+")")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "nicknames of the bench accounts: PREFIX-s0, PREFIX-r0, PREFIX-i0, PREFIX-g0...; missing ones are registered")
	fs.IntVarP(&cfg.Clients, "clients", "c", 0, "idle logged-in connections to hold (the server's memory per connection needs --pid)")
	fs.IntVarP(&cfg.Pairs, "pairs", "p", cfg.Pairs, "sender/receiver pairs, each two connections (0: idle connections only)")
	fs.IntVarP(&cfg.Messages, "messages", "n", cfg.Messages, "messages in all, split evenly among the pairs")
	fs.IntVarP(&cfg.Size, "size", "s", cfg.Size, "bytes of message text")
	fs.Float64VarP(&cfg.Rate, "rate", "r", 0, "messages per second in all (0: as fast as possible)")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "MSGs a sender may have waiting for their reply")
	fs.IntSliceVar(&cfg.Groups, "group-members", nil, "group fan-out after the pairs: online members of group #PREFIX-fanN (PREFIX-g0...); a list (100,1000) runs one group after another (0: none)")
	fs.IntVar(&cfg.GroupMsgs, "group-messages", cfg.GroupMsgs, "messages posted to each group in all, split evenly among the group's senders")
	fs.IntVar(&cfg.GroupSenders, "group-senders", cfg.GroupSenders, "members of each group that post to it")
	fs.IntVar(&cfg.GroupWindow, "group-window", 0, "MSGs a group sender may have waiting for their reply, each a copy per member (0: --window)")
	fs.IntSliceVar(&cfg.PIDs, "pid", nil, "the server's process id on this host: its RSS per idle connection, its CPU per message, bytes it wrote to disk, its peak RSS in a fan-out (from /proc); several (comma-separated: the nodes of a cluster, its NATS, ...) are summed")
	fs.DurationVar(&cfg.Hold, "hold", 0, "keep the idle connections this long before the traffic (and read the RSS again, and the server's CPU over the hold)")
	fs.IntVar(&cfg.Relogin, "relogin", 0, "after the hold, log this many idle clients out and in again (--connect at once) while the others stay online, with the resumption token of their first login: logins/s and the server's CPU per login")
	fs.BoolVar(&cfg.ReloginPW, "relogin-password", false, "--relogin with the password instead of the token (to compare)")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "longest wait for the server's RSS to hold still after the logins")
	fs.IntVar(&cfg.Connect, "connect", cfg.Connect, "logins in flight at once")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "give up after this long (0: never)")
	fs.BoolVar(&cfg.JSON, "json", false, "print the result as one JSON object")
	fs.BoolVar(&cfg.Unbatched, "unbatched", false, "write every MSG on its own with a client id (id=), as a person's qchat client does (default: pipelined MSGs share writes, no client ids)")
	fs.BoolVar(&cfg.AckEach, "ack-each", false, "acknowledge every message with an ACK of its own in a write of its own (default: one ACK per read, cumulative when the server takes it)")
	files := sizeFlag(fs, "files", 0, "file transfer instead of messages: send one file of this size (e.g. 1GiB), against a plain TCP copy")
	small := fs.Int("small", 0, "file transfer: also send a folder of this many small files")
	smallSize := sizeFlag(fs, "small-size", 16<<10, "bytes of each small file")
	filesDir := fs.String("files-dir", "", "folder for the file transfer's files (default: the system's temp folder)")
	filesRelay := fs.Bool("files-relay", false, "file transfer: measure the relay path too")
	filesOffline := fs.Bool("files-offline", false, "file transfer: measure an offline file too, left on the server and taken from it (a server with --offline-files)")
	filesRuns := fs.Int("files-runs", 3, "file transfer: runs of each measurement (the median is reported)")
	registerTLSFlags(fs, &cfg.NoTLS, "speak clear text to the server (no STARTTLS), to measure it without TLS (default: STARTTLS, the server's key checked as chat does)")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "qchat bench: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg.Password = os.Getenv("QCHAT_PASSWORD")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *files > 0 || *small > 0 {
		if strings.Contains(cfg.Server, ",") {
			fmt.Fprintln(stderr, "qchat bench: --files takes one server (a node), not a list")
			return exitUsage
		}
		if cfg.PasswordFile != "" {
			pw, err := client.ReadPasswordFile(cfg.PasswordFile)
			if err != nil {
				fmt.Fprintln(stderr, "qchat bench:", err)
				return exitUsage
			}
			cfg.Password = pw
		}
		return bench.RunFiles(ctx, bench.FilesConfig{Server: cfg.Server, Password: cfg.Password, Prefix: cfg.Prefix,
			Size: *files, Small: *small, SmallSize: *smallSize, Dir: *filesDir, Relay: *filesRelay, Offline: *filesOffline, Runs: *filesRuns,
			Timeout: cfg.Timeout, JSON: cfg.JSON, NoTLS: cfg.NoTLS}, stdout, stderr)
	}
	return bench.Run(ctx, cfg, stdout, stderr)
}

// sizeValue is a byte count flag that takes 512, 64KiB, 1MiB, 2GiB, 1.5M.
type sizeValue int64

func sizeFlag(fs *pflag.FlagSet, name string, def int64, help string) *int64 {
	v := sizeValue(def)
	fs.Var(&v, name, help)
	return (*int64)(&v)
}

func (v *sizeValue) String() string { return formatSize(int64(*v)) }
func (v *sizeValue) Type() string   { return "size" }
func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v = sizeValue(n)
	return nil
}

func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1000}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suffix)) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("bad size %q (examples: 512, 64KiB, 1.5MiB, 2G)", s)
	}
	return int64(f * float64(mult)), nil
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}

// limitFlags registers the flags of serve's abuse limits and fairness
// shares in l; it returns the --limits-exempt list, to be parsed.
func limitFlags(fs *pflag.FlagSet, l *serve.Limits) *[]string {
	exempt := fs.StringSlice("limits-exempt", nil, "addresses or CIDRs no limit applies to, comma-separated (none by default, not even loopback)")
	fs.Float64Var(&l.MsgRate, "msg-rate", l.MsgRate, "commands that reach others (a group post: one per copy) a session may send per second after its burst; 0: no limit")
	fs.IntVar(&l.MsgBurst, "msg-burst", l.MsgBurst, "such commands a session may send at once before it is slowed down")
	fs.DurationVar(&l.FloodAfter, "flood-after", l.FloodAfter, "a session slowed down this long without a pause is disconnected (BYE flood)")
	fs.IntVar(&l.LoginFree, "login-free", l.LoginFree, "failed logins of an address on one account before each further attempt waits (1s, doubling, at most 8s)")
	fs.IntVar(&l.LoginLockout, "login-lockout", l.LoginLockout, "failed logins of an address on one account within --login-window that lock the address out of it")
	fs.IntVar(&l.LoginAddrLockout, "login-addr-lockout", l.LoginAddrLockout, "failed logins of an address on all accounts within --login-window that lock it out of every account")
	fs.DurationVar(&l.LoginWindow, "login-window", l.LoginWindow, "how long a failed login counts")
	fs.IntVar(&l.LoginAccountFree, "login-account-free", l.LoginAccountFree, "failed logins on one account, from any address, within --login-window before its password logins take turns (1s apart, doubling; 0: no turns)")
	fs.DurationVar(&l.LoginAccountMax, "login-account-max-delay", l.LoginAccountMax, "the longest gap between two password logins on one account under --login-account-free, and the longest wait for a turn (further: 452, try later)")
	fs.IntVar(&l.RegPerAddr, "reg-per-addr", l.RegPerAddr, "accounts one address may register per 10 minutes")
	fs.IntVar(&l.RegPerMinute, "reg-per-minute", l.RegPerMinute, "accounts the server registers per minute in all")
	fs.IntVar(&l.MaxUnauthPerAddr, "max-unauth-per-addr", l.MaxUnauthPerAddr, "connections not logged in from one address; more are refused")
	fs.IntVar(&l.MaxUnauth, "max-unauth", l.MaxUnauth, "connections not logged in, in all; past it the oldest is closed")
	fs.IntVar(&l.RelayPerUser, "relay-per-user", l.RelayPerUser, "relayed links one user may have at once (452 past it); 0: no cap")
	fs.IntVar(&l.RelayPerAddr, "relay-per-addr", l.RelayPerAddr, "relayed links one address (an IPv6 /64) may have at once (452 past it); 0: no cap")
	fs.IntVar(&l.QueueShare, "queue-share", l.QueueShare, "messages one sender may have waiting for one recipient (its share of --max-queue)")
	fs.DurationVar(&l.PresenceInterval, "presence-interval", l.PresenceInterval, "presence changes go out in one batch per interval (the latest state of each user); a change after a quiet interval at once")
	return exempt
}
