package netlab

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"qchat/modes/cli"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// qchatBin is the qchat the lab runs: this test binary itself (run with
// QCHAT_LAB_QCHAT=1 it is qchat), or, for a measurement (QCHAT_LAB_RUNS),
// one built without -race even when the tests run with it: then the lab
// measures timing (when SYNs leave, how long 20 MiB take), and the race
// detector's slowdown would measure itself.
var qchatBin string

// qchatEnv marks a run of qchatBin as qchat.
const qchatEnv = "QCHAT_LAB_QCHAT=1"

func TestMain(m *testing.M) {
	if os.Getenv("QCHAT_LAB_QCHAT") == "1" {
		os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(buildAndRun(m))
}

// labParallel is how many cases run at once unless -parallel says: a
// case spends most of its time in setting up namespaces and waiting for
// its processes, not on a CPU.
const labParallel = 6

func buildAndRun(m *testing.M) int {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", strconv.Itoa(labParallel))
	}
	if os.Getenv("QCHAT_LAB_RUNS") == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		qchatBin = exe
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "qchat-lab-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	qchatBin = filepath.Join(dir, "qchat")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", qchatBin, "qchat")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build qchat:", err)
		return 1
	}
	return m.Run()
}

// line is one line a process printed, with when the lab read it.
type line struct {
	at     time.Time
	stderr bool
	text   string
}

// proc is a qchat process running in a namespace. Its output is read as
// it comes, each line stamped with the lab's clock.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  []line
	wake chan struct{} // closed and replaced on every new line and at exit
	done chan struct{}
	err  error // once done
	wg   sync.WaitGroup
}

// start runs qchat args in namespace ns with env added to the
// environment; stdin feeds it (nil: nothing). The process is killed at
// the end of the test if still running.
func (l *lab) start(name, ns string, env []string, stdin string, args ...string) *proc {
	l.t.Helper()
	p := &proc{name: name, wake: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, qchatBin}, args...)...)
	p.cmd.Env = append(append(os.Environ(), qchatEnv), env...)
	p.cmd.Stdin = strings.NewReader(stdin)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", name, err)
	}
	p.wg.Add(2)
	go p.read(stdout, false)
	go p.read(stderr, true)
	go func() {
		p.wg.Wait()
		err := p.cmd.Wait()
		p.mu.Lock()
		p.err = err
		close(p.wake)
		p.mu.Unlock()
		close(p.done)
	}()
	l.t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if l.t.Failed() || os.Getenv("QCHAT_LAB_VERBOSE") != "" {
			l.t.Logf("output of %s:\n%s", p.name, p.text())
		}
	})
	return p
}

func (p *proc) read(r io.Reader, stderr bool) {
	defer p.wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.out = append(p.out, line{at: time.Now(), stderr: stderr, text: sc.Text()})
		close(p.wake)
		p.wake = make(chan struct{})
		p.mu.Unlock()
	}
}

// find returns the first line matching re (stdout and stderr), if any.
func (p *proc) find(re *regexp.Regexp) (line, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.out {
		if re.MatchString(l.text) {
			return l, true
		}
	}
	return line{}, false
}

// lines returns every line matching re.
func (p *proc) lines(re *regexp.Regexp) []line {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []line
	for _, l := range p.out {
		if re.MatchString(l.text) {
			out = append(out, l)
		}
	}
	return out
}

// waitLine waits until a line matches re, the process exits or the
// context ends.
func (p *proc) waitLine(ctx context.Context, re *regexp.Regexp) (line, bool) {
	for {
		p.mu.Lock()
		wake := p.wake
		p.mu.Unlock()
		if l, ok := p.find(re); ok {
			return l, true
		}
		select {
		case <-p.done:
			return p.find(re)
		case <-wake:
		case <-ctx.Done():
			return line{}, false
		}
	}
}

// wait waits for the process to exit; false when ctx ended first.
func (p *proc) wait(ctx context.Context) (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-ctx.Done():
		return nil, false
	}
}

func (p *proc) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.out {
		tag := "out"
		if l.stderr {
			tag = "err"
		}
		fmt.Fprintf(&b, "  %s %s %s\n", l.at.Format("15:04:05.000"), tag, l.text)
	}
	return b.String()
}
