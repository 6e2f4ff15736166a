package serve

import (
	"os"
	"strings"
	"syscall"

	"qchat/modes/serve/store"
)

// testKillAfterStore is for tests only (testscripts/resend_lost_reply.txtar):
// set from QCHAT_TEST_KILL_AFTER_STORE, it makes the server kill itself
// with SIGKILL right after it has committed a message whose text ends with
// it, and before the sender is told: the moment at which a resend must be
// recognised after a restart. Never set it on a server people use.
var testKillAfterStore = os.Getenv("QCHAT_TEST_KILL_AFTER_STORE")

// testKillBeforeAnswer is the hook: called with a committed item before
// its sender hears "stored".
func testKillBeforeAnswer(it *store.Item) {
	if testKillAfterStore != "" && strings.HasSuffix(it.Body, testKillAfterStore) {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way: answer nothing
	}
}
