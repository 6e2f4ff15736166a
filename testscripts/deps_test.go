package testscripts

import (
	"os"
	"testing"

	// The qchat binary the scripts run is built from these packages.
	// Importing them makes `go test` run the scripts again, instead of
	// reusing a cached result, whenever one of them changes.
	_ "qchat/history"
	_ "qchat/modes/chat"
	_ "qchat/modes/client"
	_ "qchat/modes/recv"
	_ "qchat/modes/serve"
	_ "qchat/protocol"
	_ "qchat/xfer"
)

// readMain reads main.go (not importable) during the run, so that the test
// cache also notices changes to it.
func readMain(t *testing.T) {
	if _, err := os.ReadFile("../main.go"); err != nil {
		t.Fatal(err)
	}
}
