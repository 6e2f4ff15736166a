package testscripts

import (
	"os"

	"github.com/rogpeppe/go-internal/testscript"
)

// Custom command and condition for the stories of several nodes
// (cluster_*.txtar):
//
//	natsurl VAR
//	    set $VAR to the NATS server that QCHAT_TEST_NATS names (for qchat
//	    serve --cluster). Each story is a deployment of its own: its
//	    fresh schema (pgschema) gives its nodes subjects of their own.
//	[nats]
//	    true when QCHAT_TEST_NATS is set; a story without it skips,
//	    naming the variable.
func init() {
	commands["natsurl"] = cmdNatsurl
}

// envNats names the variable that points the stories at a NATS server.
const envNats = "QCHAT_TEST_NATS"

// skipNats is why the cluster stories did not run.
const skipNats = "cluster stories skipped: set " + envNats + " to a NATS server URL (e.g. nats://127.0.0.1:4222) and " +
	"QCHAT_TEST_POSTGRES to a PostgreSQL database URL to run them"

func haveNats() bool { return os.Getenv(envNats) != "" }

func cmdNatsurl(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: natsurl VAR")
	}
	if !haveNats() {
		ts.Fatalf("%s", skipNats)
	}
	ts.Setenv(args[0], os.Getenv(envNats))
}
