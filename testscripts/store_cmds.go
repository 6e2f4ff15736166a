package testscripts

import (
	"os"

	"github.com/rogpeppe/go-internal/testscript"

	"qchat/modes/serve/store/storetest"
)

// Custom command and condition for the stories of the PostgreSQL store:
//
//	pgschema VAR
//	    make a fresh schema in the database that QCHAT_TEST_POSTGRES names,
//	    set $VAR to its URL (for qchat serve --store), and drop the schema
//	    with everything in it when the script ends.
//	[postgres]
//	    true when QCHAT_TEST_POSTGRES is set; a story without it skips,
//	    naming the variable.
func init() {
	commands["pgschema"] = cmdPgschema
}

func havePostgres() bool { return os.Getenv(storetest.EnvPostgres) != "" }

func cmdPgschema(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: pgschema VAR")
	}
	if !havePostgres() {
		ts.Fatalf("%s", storetest.SkipPostgres)
	}
	s, err := storetest.NewPostgresSchema(os.Getenv(storetest.EnvPostgres))
	ts.Check(err)
	ts.Defer(func() {
		if err := s.Drop(); err != nil {
			ts.Logf("drop schema: %v", err)
		}
	})
	ts.Setenv(args[0], s.URL)
}
