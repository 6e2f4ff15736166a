package testscripts

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmePath is the README, seen from this package's folder.
const readmePath = "../README.md"

// The README is tested: its shell blocks run as written, and its table of
// JSON objects is the schema every object the stories print must follow.

// TestREADMEShellBlocks runs every ```sh block of the README, in order, in
// one shell, in a fresh folder (with a fresh home and the README in it),
// as a reader who pastes them would; the qchat on PATH is this test
// binary. Two things differ, and only these: a line that runs go (after
// any VAR=value) is skipped (building and testing is what this test is
// part of), and the
// server listens on a free port ("--listen 127.0.0.1:0") instead of 4000,
// which the blocks then find in the address file as a reader does. Every
// "# prints: TEXT" comment must hold: a line of the output contains TEXT.
func TestREADMEShellBlocks(t *testing.T) {
	t.Parallel() // beside the stories (TestScripts)
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(string(readme))
	if len(blocks) < 3 {
		t.Fatalf("the README has %d sh blocks; the quick start alone has more", len(blocks))
	}
	var script strings.Builder
	var prints []string
	listen := 0
	for _, b := range blocks {
		for _, line := range strings.Split(b, "\n") {
			if runsGo(line) {
				continue
			}
			if strings.Contains(line, "--listen 127.0.0.1:4000") {
				line = strings.Replace(line, "--listen 127.0.0.1:4000", "--listen 127.0.0.1:0", 1)
				listen++
			}
			if _, p, ok := strings.Cut(line, "# prints: "); ok {
				prints = append(prints, strings.TrimSpace(p))
			}
			script.WriteString(line + "\n")
		}
	}
	if listen != 1 {
		t.Fatalf("the README's blocks start %d servers on 127.0.0.1:4000, want 1", listen)
	}
	if len(prints) == 0 {
		t.Fatal("the README's blocks promise no output (# prints: ...)")
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README.md"), readme, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-e", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+filepath.Join(dir, "home"), "XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"QCHAT_SERVER=", "QCHAT_PASSWORD=", "QCHAT_NO_DISCOVERY=1", "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	// Its own process group: whatever the blocks leave running (the
	// server, when a block fails before it is stopped) is ended with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Output into a file, not a pipe: a server left in the background
	// would hold a pipe open, and Wait with it.
	outf, err := os.Create(filepath.Join(t.TempDir(), "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer outf.Close()
	cmd.Stdout, cmd.Stderr = outf, outf
	err = cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	out, _ := os.ReadFile(outf.Name())
	if err != nil {
		t.Fatalf("the README's blocks fail: %v\nscript:\n%s\noutput:\n%s", err, script.String(), out)
	}
	lines := strings.Split(string(out), "\n")
	for _, p := range prints {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, p) }) {
			t.Errorf("the README promises %q; the output is:\n%s", p, out)
		}
	}
}

// runsGo tells a shell line that runs the go command: "go build ...",
// "QCHAT_TEST_POSTGRES=... go test ./...".
func runsGo(line string) bool {
	f := strings.Fields(line)
	for len(f) > 0 && strings.Contains(f[0], "=") && !strings.HasPrefix(f[0], "=") {
		f = f[1:]
	}
	return len(f) > 0 && f[0] == "go"
}

// shellBlocks returns the text of every ```sh block.
func shellBlocks(md string) []string {
	var blocks []string
	var cur *strings.Builder
	for _, l := range strings.Split(md, "\n") {
		switch {
		case cur == nil && l == "```sh":
			cur = &strings.Builder{}
		case cur != nil && l == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(l + "\n")
		}
	}
	return blocks
}

// jsonSchema is the README's table of JSON objects: for each type, its
// fields (besides type and time); and the items of lists.
type jsonSchema struct {
	types map[string][]jsonField
	items map[string][]jsonField
}

// jsonField is one documented field: its name, whether it may be left
// out, and what its value holds: a list of items ("[user]"), an object of
// strings ("{}"), or anything else ("").
type jsonField struct {
	name     string
	optional bool
	list     string // the item of a list
	object   bool
}

// readSchema reads the tables of the README's "JSON output" section.
func readSchema(t *testing.T) jsonSchema {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	i := strings.Index(md, "### JSON output")
	if i < 0 {
		t.Fatal("the README has no JSON output section")
	}
	md = md[i:]
	if j := strings.Index(md[3:], "\n## "); j >= 0 {
		md = md[:j+3]
	}
	s := jsonSchema{types: map[string][]jsonField{}, items: map[string][]jsonField{}}
	field := regexp.MustCompile("`([a-z_0-9]+)(\\??)`(?: \\[([a-z]+)\\]| (\\{\\}))?")
	name := regexp.MustCompile("`([a-z_]+)`")
	for _, row := range strings.Split(md, "\n") {
		cells := strings.Split(row, "|")
		if len(cells) < 4 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		var fields []jsonField
		for _, m := range field.FindAllStringSubmatch(cells[2], -1) {
			fields = append(fields, jsonField{name: m[1], optional: m[2] == "?", list: m[3], object: m[4] != ""})
		}
		if len(cells) == 5 { // | type | fields | what |
			for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
				s.types[m[1]] = fields
			}
		} else if item := strings.TrimSpace(cells[1]); item != "item" { // | item | fields |
			s.items[item] = fields
		}
	}
	for _, typ := range []string{"msg", "error", "sent", "connection"} {
		if s.types[typ] == nil {
			t.Fatalf("the README's JSON table has no %q: %v", typ, s.types)
		}
	}
	return s
}

var jsonTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// check says what is wrong with one printed object, or "".
func (s jsonSchema) check(line string) string {
	var obj map[string]any
	if err := json.Unmarshal([]byte(line), &obj); err != nil {
		return "not a JSON object: " + err.Error()
	}
	typ, _ := obj["type"].(string)
	fields, ok := s.types[typ]
	switch {
	case !ok:
		return fmt.Sprintf("type %q is not in the README's table", obj["type"])
	case obj["time"] == nil || !jsonTime.MatchString(fmt.Sprint(obj["time"])):
		return fmt.Sprintf("time %v is not RFC 3339 UTC with milliseconds", obj["time"])
	}
	delete(obj, "type")
	delete(obj, "time")
	return s.checkFields(typ, obj, fields)
}

func (s jsonSchema) checkFields(what string, obj map[string]any, fields []jsonField) string {
	for _, f := range fields {
		v, present := obj[f.name]
		delete(obj, f.name)
		switch {
		case !present && !f.optional:
			return fmt.Sprintf("%s: field %q is missing", what, f.name)
		case !present:
		case f.object:
			m, ok := v.(map[string]any)
			if !ok {
				return fmt.Sprintf("%s: %q is not an object", what, f.name)
			}
			for k, x := range m {
				if _, ok := x.(string); !ok {
					return fmt.Sprintf("%s: %s.%s is not a string", what, f.name, k)
				}
			}
		case f.list != "":
			list, ok := v.([]any)
			items, known := s.items[f.list]
			if !ok || !known {
				return fmt.Sprintf("%s: %q is not a list of %s", what, f.name, f.list)
			}
			for _, it := range list {
				m, ok := it.(map[string]any)
				if !ok {
					return fmt.Sprintf("%s: an item of %q is not an object", what, f.name)
				}
				if why := s.checkFields(what+"."+f.name, m, items); why != "" {
					return why
				}
			}
		}
	}
	for k := range obj {
		return fmt.Sprintf("%s: field %q is not in the README's table", what, k)
	}
	return ""
}

// TestJSONSchemaCheck makes sure the check can fail.
func TestJSONSchemaCheck(t *testing.T) {
	s := readSchema(t)
	for line, bad := range map[string]bool{
		`{"type":"sent","time":"2026-11-22T10:00:00.000Z","command":"/msg bob hi","id":7,"to":1001,"to_nick":"bob","status":"stored"}`:               false,
		`{"type":"list","time":"2026-11-22T10:00:00.000Z","command":"/list","online":[{"id":1001,"nick":"bob","state":"online"}]}`:                   false,
		`{"type":"connection","time":"2026-11-22T10:00:00.000Z","state":"lost","server":"127.0.0.1:4000","error":"EOF"}`:                             false,
		`{"type":"sent","time":"2026-11-22T10:00:00.000Z","id":7,"to":1001,"status":"stored"}`:                                                       true, // no command
		`{"type":"sent","time":"2026-11-22T10:00:00Z","command":"/msg bob hi","id":7,"status":"stored"}`:                                             true, // time without ms
		`{"type":"msg","id":7,"from":1001,"from_nick":"bob","text":"hi"}`:                                                                            true, // no time
		`{"type":"msg","time":"2026-11-22T10:00:00.000Z","id":7,"from":1001,"from_nick":"bob","text":"hi","note":"x"}`:                               true, // a field not documented
		`{"type":"list","time":"2026-11-22T10:00:00.000Z","command":"/list","online":[{"type":"presence","id":1001,"nick":"bob","state":"online"}]}`: true,
		`{"type":"frob","time":"2026-11-22T10:00:00.000Z"}`:                                                                                          true,
		`null`: true,
	} {
		if why := s.check(line); (why != "") != bad {
			t.Errorf("check(%s) = %q, want a failure: %v", line, why, bad)
		}
	}
}

// checkJSONLogs checks, once every story has run, what the stories' qchat
// printed under --json (collected by the qchat of scripts_test.go).
func checkJSONLogs(t *testing.T, dir string) {
	s := readSchema(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	n := 0
	seen := map[string]bool{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Error(err)
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			n++
			var head struct{ Type string }
			json.Unmarshal(sc.Bytes(), &head)
			seen[head.Type] = true
			if why := s.check(sc.Text()); why != "" {
				t.Errorf("%s printed %s\n\t%s", strings.TrimSuffix(filepath.Base(f), ".jsonl"), sc.Text(), why)
			}
		}
		fh.Close()
	}
	// In a full run, the stories that print JSON must have been heard:
	// the check cannot pass by checking nothing.
	if flag.Lookup("test.run").Value.String() == "" {
		for _, story := range []string{"chat_json", "json_all"} {
			if fi, err := os.Stat(filepath.Join(dir, "script-"+story+".jsonl")); err != nil || fi.Size() == 0 {
				t.Errorf("no JSON objects from the story %s were collected: %v", story, err)
			}
		}
	}
	types := slices.Sorted(maps.Keys(seen))
	t.Logf("%d JSON objects from %d stories checked against the README's table; types %v", n, len(files), types)
}

func TestRunsGo(t *testing.T) {
	for line, want := range map[string]bool{
		"go build -o qchat .":                                true,
		"  go test -race ./...":                              true,
		"QCHAT_TEST_POSTGRES=postgres://x A=b go test ./...": true,
		"qchat serve --listen 127.0.0.1:4000 &":              false,
		"export PATH=\"$PWD:$PATH\"   # go on":               false,
		"echo '/register alice' | qchat chat  # go":          false,
		"": false,
	} {
		if got := runsGo(line); got != want {
			t.Errorf("runsGo(%q) = %v, want %v", line, got, want)
		}
	}
}
