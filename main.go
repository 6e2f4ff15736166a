// Command qchat is QQ for the terminal: one binary that is the server
// (serve), the interactive client (chat), the unattended receiver of shell
// scripts (recv) and a load tool (bench). This file parses flags and hands
// over to the mode; everything else lives in modes/.
package main

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
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

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

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	mode, rest := args[0], args[1:]
	switch mode {
	case "serve":
		return runServe(rest, stderr)
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

func runServe(args []string, stderr io.Writer) int {
	cfg := serve.Defaults()
	fs := pflag.NewFlagSet("qchat serve", pflag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to listen on (port 0 picks a free port)")
	fs.StringVar(&cfg.Data, "data", cfg.Data, "data folder: database and lock")
	fs.StringVar(&cfg.AddrFile, "addr-file", "", "write the real listening address to this file once ready")
	fs.StringVar(&cfg.Name, "name", cfg.Name, "server name shown in the greeting and used by clients to file history")
	fs.IntVar(&cfg.HashCost, "hash-cost", cfg.HashCost, "bcrypt cost of new password hashes (4-31)")
	fs.StringVar(&cfg.Sync, "sync", cfg.Sync, "database durability: full (survives power loss) or normal (survives a killed process)")
	fs.DurationVar(&cfg.LoginTimeout, "login-timeout", cfg.LoginTimeout, "time from connect to login")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", cfg.PingInterval, "idle time before the server sends PING")
	fs.DurationVar(&cfg.PingTimeout, "ping-timeout", cfg.PingTimeout, "time a client has to answer PING")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", cfg.WriteTimeout, "time one write to a client may take before it is dropped as a slow consumer")
	maxOut := sizeFlag(fs, "max-outbound", int64(cfg.MaxOutbound), "bytes queued for one client before it is dropped as a slow consumer")
	fs.IntVar(&cfg.MaxQueue, "max-queue", cfg.MaxQueue, "messages waiting for one recipient before senders get 'queue full'")
	fs.DurationVar(&cfg.AckGrace, "ack-grace", cfg.AckGrace, "time an online recipient has to acknowledge before a message is written to disk")
	fs.StringVar(&cfg.Presence, "presence", cfg.Presence, "who hears a user come and go: lan (everyone) or friends")
	fs.DurationVar(&cfg.NudgeEvery, "nudge-interval", cfg.NudgeEvery, "at most one nudge per sender and recipient in this time")
	fs.DurationVar(&cfg.OfferTimeout, "offer-timeout", cfg.OfferTimeout, "a direct chat or file offer not answered in this time is refused")
	noRelay := fs.Bool("no-relay", false, "never relay direct links (peers that cannot reach each other then fail)")
	fs.DurationVar(&cfg.RelayIdle, "relay-idle", cfg.RelayIdle, "a relayed link with no bytes moving for this long is closed")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "qchat serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg.MaxOutbound = int(*maxOut)
	cfg.Relay = !*noRelay
	if cfg.HashCost < 4 || cfg.HashCost > 31 {
		fmt.Fprintln(stderr, "qchat serve: --hash-cost must be 4 to 31")
		return exitUsage
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "qchat serve:", err)
		return exitUsage
	}
	cfg.Log = log
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
	json, noHistory            bool
	timeout                    time.Duration

	// direct links and files
	peerListen, peerAddr    string
	dir                     string
	overwrite, relay        bool
	connectTimeout, idleOut time.Duration
}

func (c *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.server, "server", os.Getenv("QCHAT_SERVER"), "server address HOST:PORT (default $QCHAT_SERVER)")
	fs.StringVarP(&c.user, "user", "u", "", "log in as this id (or nickname); the password comes from $QCHAT_PASSWORD, --password-file or a prompt")
	fs.StringVar(&c.passwordFile, "password-file", "", "read the password from the first line of this file")
	fs.BoolVar(&c.json, "json", false, "print one JSON object per line, each with a \"type\"")
	fs.BoolVar(&c.noHistory, "no-history", false, "keep no local history files")
	fs.StringVar(&c.peerListen, "peer-listen", ":0", "address of the peer listener for direct links (all interfaces, any port by default)")
	fs.StringVar(&c.peerAddr, "peer-addr-file", "", "write the peer listener's address to this file once listening (for scripts)")
	fs.BoolVar(&c.overwrite, "overwrite", false, "replace existing files with received ones (default: save as \"name (1).ext\")")
	fs.BoolVar(&c.relay, "relay", false, "always send direct links through the server's relay")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 15*time.Second, "time to make a direct link (or have it relayed)")
	fs.DurationVar(&c.idleOut, "idle-timeout", 30*time.Second, "a link with no bytes moving for this long has stalled")
}

func runChat(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cf clientFlags
	fs := pflag.NewFlagSet("qchat chat", pflag.ContinueOnError)
	cf.register(fs)
	linger := fs.Duration("linger", 0, "piped: keep receiving this long after the input ends")
	ready := fs.String("ready-file", "", "write the logged-in id to this file once ready (for scripts)")
	timeout := fs.Duration("timeout", 30*time.Second, "time to connect and to wait for each reply")
	fs.StringVar(&cf.dir, "dir", ".", "folder for the files you accept")
	maxChats := fs.Int("max-chats", 8, "direct chats open at once; more requests are refused (0: refuse every one)")
	rate := sizeFlag(fs, "limit-rate", 0, "bytes per second of files sent, e.g. 10MiB (0: no limit)")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "qchat chat: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	return chat.Run(ctx, chat.Config{
		Server: cf.server, User: cf.user, Password: os.Getenv("QCHAT_PASSWORD"), PasswordFile: cf.passwordFile,
		JSON: cf.json, NoHistory: cf.noHistory, Linger: *linger, Timeout: *timeout, ReadyFile: *ready,
		PeerListen: cf.peerListen, PeerAddrFile: cf.peerAddr, Dir: cf.dir, Overwrite: cf.overwrite, ConnectTimeout: cf.connectTimeout,
		IdleTimeout: cf.idleOut, ForceRelay: cf.relay, MaxChats: *maxChats, Rate: *rate,
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return recv.Run(ctx, recv.Config{
		Server: cf.server, User: cf.user, Password: os.Getenv("QCHAT_PASSWORD"), PasswordFile: cf.passwordFile,
		JSON: cf.json, NoHistory: cf.noHistory, Count: *count, Timeout: *timeout, ReadyFile: *ready,
		Dir: cf.dir, From: *from, MaxSize: *maxSize, Overwrite: cf.overwrite, PeerListen: cf.peerListen, PeerAddrFile: cf.peerAddr,
		ConnectTimeout: cf.connectTimeout, IdleTimeout: cf.idleOut, ForceRelay: cf.relay,
	}, stdout, stderr)
}

func runBench(args []string, stdout, stderr io.Writer) int {
	cfg := bench.Defaults()
	fs := pflag.NewFlagSet("qchat bench", pflag.ContinueOnError)
	fs.StringVar(&cfg.Server, "server", os.Getenv("QCHAT_SERVER"), "server address HOST:PORT (default $QCHAT_SERVER)")
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
	fs.IntVar(&cfg.PID, "pid", 0, "the server's process id on this host, to report its RSS per idle connection")
	fs.DurationVar(&cfg.Hold, "hold", 0, "keep the idle connections this long before the traffic (and read the RSS again)")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "longest wait for the server's RSS to hold still after the logins")
	fs.IntVar(&cfg.Connect, "connect", cfg.Connect, "logins in flight at once")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "give up after this long (0: never)")
	fs.BoolVar(&cfg.JSON, "json", false, "print the result as one JSON object")
	files := sizeFlag(fs, "files", 0, "file transfer instead of messages: send one file of this size (e.g. 1GiB), against a plain TCP copy")
	small := fs.Int("small", 0, "file transfer: also send a folder of this many small files")
	smallSize := sizeFlag(fs, "small-size", 16<<10, "bytes of each small file")
	filesDir := fs.String("files-dir", "", "folder for the file transfer's files (default: the system's temp folder)")
	filesRelay := fs.Bool("files-relay", false, "file transfer: measure the relay path too")
	filesRuns := fs.Int("files-runs", 3, "file transfer: runs of each measurement (the median is reported)")
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
		if cfg.PasswordFile != "" {
			pw, err := client.ReadPasswordFile(cfg.PasswordFile)
			if err != nil {
				fmt.Fprintln(stderr, "qchat bench:", err)
				return exitUsage
			}
			cfg.Password = pw
		}
		return bench.RunFiles(ctx, bench.FilesConfig{Server: cfg.Server, Password: cfg.Password, Prefix: cfg.Prefix,
			Size: *files, Small: *small, SmallSize: *smallSize, Dir: *filesDir, Relay: *filesRelay, Runs: *filesRuns,
			Timeout: cfg.Timeout, JSON: cfg.JSON}, stdout, stderr)
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
