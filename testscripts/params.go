package testscripts

import (
	"os"
	"path/filepath"

	"github.com/rogpeppe/go-internal/testscript"
)

// Params are the testscript parameters of the stories in dir: the custom
// commands below, and an environment in which qchat finds nothing of the
// machine's (no server, password, history or home of the user).
//
// The qchat the scripts run is the test binary itself (testscript.Main in
// scripts_test.go runs modes/cli as qchat), so it is built once, with the
// test's flags (-race included), and never as a second binary.
func Params(dir string) testscript.Params {
	return testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, "data"))
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("QCHAT_SERVER", "")
			env.Setenv("QCHAT_PASSWORD", "")
			// No story's server answers LAN discovery on the host's port
			// 4000, and no client searches the host's networks; the
			// discovery stories turn it on inside namespaces they made.
			env.Setenv("QCHAT_NO_DISCOVERY", "1")
			// A binary built with -race sleeps a second when it exits
			// (GORACE atexit_sleep_ms, default 1000): with hundreds of
			// qchat runs that was most of the suite's time. It still
			// exits 66 when it saw a race.
			env.Setenv("GORACE", "atexit_sleep_ms=0 "+os.Getenv("GORACE"))
			return nil
		},
		Cmds:      commands,
		Condition: condition,
	}
}
