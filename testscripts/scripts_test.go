package testscripts

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"qchat/modes/cli"
)

// TestMain makes this test binary the qchat of the end-to-end stories:
// run as "qchat" (testscript puts a copy by that name first on PATH), it is
// the program; otherwise it runs the tests.
func TestMain(m *testing.M) {
	testscript.Main(parallelM{m}, map[string]func(){
		"qchat": func() { os.Exit(cli.Run(os.Args[1:], os.Stdin, scriptStdout(os.Args[1:]), os.Stderr)) },
	})
}

// scriptStdout is qchat's stdout in a story: under --json (chat, recv) also
// appended to $QCHAT_TEST_JSONLOG, for the check of every object against
// the README (checkJSONLogs). One write a record, with O_APPEND: the
// clients of one story share the file.
func scriptStdout(args []string) io.Writer {
	log := os.Getenv("QCHAT_TEST_JSONLOG")
	if log == "" || len(args) == 0 || (args[0] != "chat" && args[0] != "recv") || !slices.Contains(args, "--json") {
		return os.Stdout
	}
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qchat test: JSON log:", err)
		return os.Stdout
	}
	return io.MultiWriter(os.Stdout, f)
}

// parallelM runs the tests with more of them at once than -parallel's
// default (GOMAXPROCS), unless -parallel was given: a story spends most of
// its time waiting for the processes it started, not on a CPU.
type parallelM struct{ m *testing.M }

func (p parallelM) Run() int {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", strconv.Itoa(4*runtime.GOMAXPROCS(0)))
	}
	return p.m.Run()
}

// TestScripts runs every story in this folder (one subtest per file),
// then checks every JSON object they printed against the README's table.
func TestScripts(t *testing.T) {
	t.Parallel() // beside TestREADMEShellBlocks: both mostly wait for processes
	logs := t.TempDir()
	t.Cleanup(func() { checkJSONLogs(t, logs) }) // after the stories, which run in parallel
	p := Params(".")
	setup := p.Setup
	p.Setup = func(env *testscript.Env) error {
		env.Setenv("QCHAT_TEST_JSONLOG", filepath.Join(logs, filepath.Base(env.WorkDir)+".jsonl"))
		return setup(env)
	}
	testscript.Run(t, p)
}
