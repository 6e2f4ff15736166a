package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zeebo/blake3"

	"qchat/modes/client"
	"qchat/protocol"
)

// FilesConfig is the file-transfer scenario of `qchat bench --files`.
type FilesConfig struct {
	Server    string
	Password  string
	Prefix    string
	Size      int64  // bytes of the big file (0: none)
	Small     int    // files in the folder of small files (0: none)
	SmallSize int64  // bytes of each small file
	Dir       string // where the bench's files go ("" for the system's temp folder)
	Relay     bool   // also measure the relay path
	Offline   bool   // also measure an offline file: left on the server, then taken (serve --offline-files)
	Runs      int    // runs of each measurement; the median is reported
	Timeout   time.Duration
	JSON      bool
	NoTLS     bool // --no-tls: clear text to the server, for the bench and its children
}

// A files run measures, on loopback and in the same run:
//
//   - plain: a plain Go TCP copy of the same bytes into files (sendfile
//     and splice, no hashing): the reference;
//   - plain+blake3: the same with the file hash qchat uses (BLAKE3) on
//     the receiving side;
//   - direct, relay: `qchat chat` sending with /send to `qchat recv
//     --dir`, two processes of this binary, through the server, with
//     everything qchat does (offer, accept, ticket, link encrypted with
//     TLS 1.3 and both link keys pinned, the BLAKE3 hash on both
//     sides, .part and rename);
//   - offline (--files-offline): /send to the receiver while it is
//     offline, which leaves the files on the server (its upload: the
//     sender's time), then `qchat recv --dir` taking them from the server
//     (its download: from the start of recv, login included).
//
// For qchat it reports the time from the /send line to the end of the
// sender (offer and link setup included), the rate, its ratio to plain,
// and the CPU seconds and peak RSS of each side, from the kernel's
// accounting of the child processes. Each measurement is the median of
// --files-runs runs, each started after a sync and cleaned up after, so
// that no run pays for the writeback of another's bytes.

type fileRun struct {
	name          string
	bytes         int64
	files         int
	wall          time.Duration
	cpuSend       time.Duration
	cpuRecv       time.Duration
	rssSend       int64 // peak, bytes
	rssRecv       int64
	ratio         float64 // plain's wall / this wall (1 for plain)
	inProcess     bool    // plain runs: both sides in the bench, CPU is the whole process
	cpuInProcBoth time.Duration
}

// RunFiles runs the file scenario and prints its report.
func RunFiles(ctx context.Context, cfg FilesConfig, stdout, stderr io.Writer) int {
	if cfg.Server == "" {
		fmt.Fprintln(stderr, "qchat bench: --server (or QCHAT_SERVER) is required")
		return exitUsage
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	runs, err := runFiles(ctx, cfg, stderr)
	for _, r := range runs {
		printFileRun(stdout, r, cfg.JSON)
	}
	if err != nil {
		fmt.Fprintln(stderr, "qchat bench:", err)
		return exitFailed
	}
	return exitOK
}

func runFiles(ctx context.Context, cfg FilesConfig, stderr io.Writer) ([]fileRun, error) {
	work, err := os.MkdirTemp(cfg.Dir, "qchat-bench-files-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	pw := cfg.Password
	if pw == "" {
		pw = DefaultPassword
	}
	sender, receiver := cfg.Prefix+"-xs", cfg.Prefix+"-xr"
	// The children speak to the server as the bench does: in clear, or
	// pinned to the key the bench checked.
	security := []string{"--no-tls"}
	for _, nick := range []string{sender, receiver} {
		fp, err := ensureAccount(ctx, cfg, nick, pw, stderr)
		if err != nil {
			return nil, err
		}
		if fp != "" {
			security = []string{"--server-fingerprint", fp}
		}
	}

	type scenario struct {
		name  string
		src   string
		bytes int64
		files int
	}
	var scenarios []scenario
	if cfg.Size > 0 {
		fmt.Fprintf(stderr, "writing a file of %s\n", client.FormatBytes(cfg.Size))
		p := filepath.Join(work, "big.bin")
		if err := writeRandom(p, cfg.Size, 1); err != nil {
			return nil, err
		}
		scenarios = append(scenarios, scenario{"1 file of " + client.FormatBytes(cfg.Size), p, cfg.Size, 1})
	}
	if cfg.Small > 0 {
		fmt.Fprintf(stderr, "writing %d files of %s\n", cfg.Small, client.FormatBytes(cfg.SmallSize))
		d := filepath.Join(work, "small")
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		for i := range cfg.Small {
			if err := writeRandom(filepath.Join(d, fmt.Sprintf("f%05d.bin", i)), cfg.SmallSize, uint64(i)+2); err != nil {
				return nil, err
			}
		}
		scenarios = append(scenarios, scenario{fmt.Sprintf("%d files of %s", cfg.Small, client.FormatBytes(cfg.SmallSize)), d, int64(cfg.Small) * cfg.SmallSize, cfg.Small})
	}

	var out []fileRun
	for i, sc := range scenarios {
		dst := filepath.Join(work, fmt.Sprintf("out%d", i))
		measure := func(what string, run func(dst string) (fileRun, error)) (fileRun, error) {
			var runs []fileRun
			for k := range max(cfg.Runs, 1) {
				fmt.Fprintf(stderr, "%s: %s (%d of %d)\n", sc.name, what, k+1, max(cfg.Runs, 1))
				// Each run starts with nothing dirty in the page cache and
				// leaves nothing behind, so that no run pays for another's
				// writeback.
				syscall.Sync()
				d := fmt.Sprintf("%s-%d", dst, k)
				r, err := run(d)
				os.RemoveAll(d)
				if err != nil {
					return fileRun{}, err
				}
				runs = append(runs, r)
			}
			r := median(runs)
			r.name, r.bytes, r.files = sc.name+": "+what, sc.bytes, sc.files
			return r, nil
		}
		plain, err := measure("plain TCP copy", func(d string) (fileRun, error) { return plainCopy(ctx, sc.src, d, false) })
		if err != nil {
			return out, err
		}
		plain.ratio = 1
		out = append(out, plain)
		hashed, err := measure("plain TCP copy + BLAKE3", func(d string) (fileRun, error) { return plainCopy(ctx, sc.src, d, true) })
		if err != nil {
			return out, err
		}
		hashed.ratio = plain.wall.Seconds() / hashed.wall.Seconds()
		out = append(out, hashed)
		paths := []bool{false}
		if cfg.Relay {
			paths = append(paths, true)
		}
		for _, relay := range paths {
			path := "direct"
			if relay {
				path = "relay"
			}
			r, err := measure("qchat "+path, func(d string) (fileRun, error) {
				return qchatSend(ctx, cfg.Server, pw, sender, receiver, sc.src, d, sc.files, relay, security)
			})
			if err != nil {
				return out, fmt.Errorf("%s, %s: %w", sc.name, path, err)
			}
			r.ratio = plain.wall.Seconds() / r.wall.Seconds()
			out = append(out, r)
		}
		if cfg.Offline {
			var down fileRun
			up, err := measure("qchat offline: upload", func(d string) (fileRun, error) {
				up, dn, err := qchatOffline(ctx, cfg.Server, pw, sender, receiver, sc.src, d, sc.files, security)
				down = dn // of the same run; reported beside the median upload
				return up, err
			})
			if err != nil {
				return out, fmt.Errorf("%s, offline: %w", sc.name, err)
			}
			up.ratio = plain.wall.Seconds() / up.wall.Seconds()
			down.name, down.bytes, down.files = sc.name+": qchat offline: download", sc.bytes, sc.files
			down.ratio = plain.wall.Seconds() / down.wall.Seconds()
			out = append(out, up, down)
		}
	}
	return out, nil
}

// qchatOffline leaves src on the server for the receiver, who is offline
// (`qchat chat`, /send), then takes it (`qchat recv --dir`), and measures
// each step.
func qchatOffline(ctx context.Context, server, pw, sender, receiver, src, dst string, files int, security []string) (up, down fileRun, err error) {
	self, err := os.Executable()
	if err != nil {
		return up, down, err
	}
	tmp, err := os.MkdirTemp("", "qchat-bench-")
	if err != nil {
		return up, down, err
	}
	defer os.RemoveAll(tmp)
	env := append(os.Environ(), "QCHAT_SERVER="+server, "QCHAT_PASSWORD="+pw, "XDG_DATA_HOME="+filepath.Join(tmp, "data"))
	snd := exec.CommandContext(ctx, self, append([]string{"chat", "--user", sender, "--no-history"}, security...)...)
	snd.Env = env
	snd.Stdin = strings.NewReader(fmt.Sprintf("/send %s %s\n", receiver, quotePath(src)))
	var out strings.Builder
	snd.Stdout, snd.Stderr = &out, &out
	start := time.Now()
	if err := snd.Run(); err != nil {
		return up, down, fmt.Errorf("sender: %v: %s", err, protocol.Clip(out.String(), 400))
	}
	if !strings.Contains(out.String(), "on the server for") {
		return up, down, fmt.Errorf("sender did not leave the files on the server (is the receiver offline, the server started with --offline-files?): %s", protocol.Clip(out.String(), 400))
	}
	up = fileRun{wall: time.Since(start)}
	up.cpuSend, up.rssSend = usage(snd.ProcessState)
	rcv := exec.CommandContext(ctx, self, append([]string{"recv", "--user", receiver, "--dir", dst, "--count", strconv.Itoa(files),
		"--no-history", "--timeout", "10m"}, security...)...)
	rcv.Env = env
	rcv.Stdout, rcv.Stderr = io.Discard, io.Discard
	start = time.Now()
	if err := rcv.Run(); err != nil {
		return up, down, fmt.Errorf("receiver: %v", err)
	}
	down = fileRun{wall: time.Since(start)}
	down.cpuRecv, down.rssRecv = usage(rcv.ProcessState)
	return up, down, nil
}

// median returns the run of median wall time.
func median(runs []fileRun) fileRun {
	sort.Slice(runs, func(i, j int) bool { return runs[i].wall < runs[j].wall })
	return runs[len(runs)/2]
}

// ensureAccount registers nick unless it exists, and returns the
// fingerprint of the server's key ("" with --no-tls).
func ensureAccount(ctx context.Context, cfg FilesConfig, nick, pw string, stderr io.Writer) (string, error) {
	cl, err := client.Dial(ctx, cfg.Server, client.Options{NoTLS: cfg.NoTLS, Keys: &client.ServerKeys{Notify: stderr}})
	if err != nil {
		return "", err
	}
	defer cl.Close()
	_, err = cl.Register(ctx, nick, pw)
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeNameTaken {
		err = nil
	}
	return cl.ServerKey(), err
}

// writeRandom writes size pseudo-random bytes (incompressible enough for
// loopback, cheap to make) to path.
func writeRandom(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(seed, 7))
	buf := make([]byte, 1<<20)
	w := bufio.NewWriterSize(f, 1<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		for i := 0; i+8 <= int(n); i += 8 {
			v := r.Uint64()
			buf[i], buf[i+1], buf[i+2], buf[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
			buf[i+4], buf[i+5], buf[i+6], buf[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
		}
		if _, err := w.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// plainCopy copies src (a file, or a folder of files) over one TCP
// connection on loopback into dst, the receiver in a goroutine of this
// process: for each file a header line "<name> <size>", then its bytes,
// written to a new file (io.Copy: sendfile and splice), with BLAKE3 (the file
// hash qchat uses) on the receiving side when hash is set.
func plainCopy(ctx context.Context, src, dst string, hash bool) (fileRun, error) {
	var files []string
	if fi, err := os.Stat(src); err != nil {
		return fileRun{}, err
	} else if fi.IsDir() {
		ents, err := os.ReadDir(src)
		if err != nil {
			return fileRun{}, err
		}
		for _, e := range ents {
			files = append(files, filepath.Join(src, e.Name()))
		}
	} else {
		files = []string{src}
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fileRun{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fileRun{}, err
	}
	defer ln.Close()
	done := make(chan error, 1)
	cpu0 := selfCPU()
	start := time.Now()
	go func() { done <- plainReceive(ln, dst, len(files), hash) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return fileRun{}, err
	}
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			conn.Close()
			return fileRun{}, err
		}
		fi, _ := f.Stat()
		fmt.Fprintf(conn, "%s %d\n", filepath.Base(p), fi.Size())
		_, err = io.Copy(conn, f) // sendfile
		f.Close()
		if err != nil {
			conn.Close()
			return fileRun{}, err
		}
	}
	conn.Close()
	if err := <-done; err != nil {
		return fileRun{}, err
	}
	return fileRun{wall: time.Since(start), inProcess: true, cpuInProcBoth: selfCPU() - cpu0}, ctx.Err()
}

func plainReceive(ln net.Listener, dst string, count int, hash bool) error {
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 64<<10)
	for range count {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		name, sizeText, _ := strings.Cut(strings.TrimSpace(line), " ")
		size, err := strconv.ParseInt(sizeText, 10, 64)
		if err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dst, filepath.Base(name)))
		if err != nil {
			return err
		}
		var w io.Writer = f
		h := blake3.New()
		if hash {
			w = io.MultiWriter(f, h)
		}
		var from io.Reader = r
		if r.Buffered() == 0 && !hash {
			from = conn // nothing buffered: let the copy splice
		}
		if _, err := io.CopyN(w, from, size); err != nil {
			f.Close()
			return err
		}
		if hash {
			h.Sum(nil)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// qchatSend runs `qchat recv --dir` and `qchat chat` (/send) as child
// processes and measures them.
func qchatSend(ctx context.Context, server, pw, sender, receiver, src, dst string, files int, relay bool, security []string) (fileRun, error) {
	self, err := os.Executable()
	if err != nil {
		return fileRun{}, err
	}
	tmp, err := os.MkdirTemp("", "qchat-bench-")
	if err != nil {
		return fileRun{}, err
	}
	defer os.RemoveAll(tmp)
	env := append(os.Environ(), "QCHAT_SERVER="+server, "QCHAT_PASSWORD="+pw, "XDG_DATA_HOME="+filepath.Join(tmp, "data"))
	extra := append([]string{}, security...)
	if relay {
		extra = append(extra, "--relay")
	}
	ready := filepath.Join(tmp, "ready")
	rcv := exec.CommandContext(ctx, self, append([]string{"recv", "--user", receiver, "--dir", dst, "--count", strconv.Itoa(files),
		"--no-history", "--ready-file", ready, "--timeout", "10m"}, extra...)...)
	rcv.Env = env
	rcv.Stdout, rcv.Stderr = io.Discard, io.Discard
	if err := rcv.Start(); err != nil {
		return fileRun{}, err
	}
	defer rcv.Process.Kill()
	sndReady := filepath.Join(tmp, "sready")
	snd := exec.CommandContext(ctx, self, append([]string{"chat", "--user", sender, "--no-history", "--ready-file", sndReady}, extra...)...)
	snd.Env = env
	in, err := snd.StdinPipe()
	if err != nil {
		return fileRun{}, err
	}
	var out strings.Builder
	snd.Stdout, snd.Stderr = &out, &out
	if err := snd.Start(); err != nil {
		return fileRun{}, err
	}
	defer snd.Process.Kill()
	for _, f := range []string{ready, sndReady} {
		if err := waitFile(ctx, f); err != nil {
			return fileRun{}, err
		}
	}
	start := time.Now()
	fmt.Fprintf(in, "/send %s %s\n", receiver, quotePath(src))
	in.Close()
	sErr := snd.Wait()
	wall := time.Since(start)
	rErr := rcv.Wait()
	if sErr != nil {
		return fileRun{}, fmt.Errorf("sender: %v: %s", sErr, protocol.Clip(out.String(), 400))
	}
	if rErr != nil {
		return fileRun{}, fmt.Errorf("receiver: %v", rErr)
	}
	r := fileRun{wall: wall}
	r.cpuSend, r.rssSend = usage(snd.ProcessState)
	r.cpuRecv, r.rssRecv = usage(rcv.ProcessState)
	return r, nil
}

func quotePath(p string) string {
	if strings.ContainsAny(p, " '\"") {
		return "'" + p + "'"
	}
	return p
}

func waitFile(ctx context.Context, path string) error {
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			return nil
		}
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return fmt.Errorf("%s never appeared: %w", path, ctx.Err())
		}
	}
}

// usage returns a finished child's CPU time and peak RSS.
func usage(ps *os.ProcessState) (time.Duration, int64) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return ps.UserTime() + ps.SystemTime(), 0
	}
	return ps.UserTime() + ps.SystemTime(), ru.Maxrss * 1024
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func printFileRun(w io.Writer, r fileRun, asJSON bool) {
	mib := float64(r.bytes) / (1 << 20) / r.wall.Seconds()
	if asJSON {
		fmt.Fprintf(w, `{"type":"files","run":%q,"bytes":%d,"files":%d,"seconds":%.4f,"mib_per_s":%.1f,"ratio":%.3f,"cpu_send_s":%.3f,"cpu_recv_s":%.3f,"cpu_both_s":%.3f,"rss_send_kib":%d,"rss_recv_kib":%d}`+"\n",
			r.name, r.bytes, r.files, r.wall.Seconds(), mib, r.ratio, r.cpuSend.Seconds(), r.cpuRecv.Seconds(), r.cpuInProcBoth.Seconds(), r.rssSend/1024, r.rssRecv/1024)
		return
	}
	line := fmt.Sprintf("%-44s %8.3fs %8.1f MiB/s  %.2f × plain", r.name, r.wall.Seconds(), mib, r.ratio)
	if r.inProcess {
		line += fmt.Sprintf("  cpu %.2fs (both sides)", r.cpuInProcBoth.Seconds())
	} else {
		line += fmt.Sprintf("  cpu %.2fs send + %.2fs recv  peak RSS %.1f + %.1f MiB",
			r.cpuSend.Seconds(), r.cpuRecv.Seconds(), float64(r.rssSend)/(1<<20), float64(r.rssRecv)/(1<<20))
	}
	fmt.Fprintln(w, line)
}
