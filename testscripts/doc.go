// Package testscripts holds the end-to-end stories of qchat (*.txtar in
// this folder) and what they need to run: the custom commands (documented
// in commands.go) and the environment (Params). The stories run as
// TestScripts (scripts_test.go), whose test binary is qchat itself
// (modes/cli): `go test ./testscripts -run TestScripts/NAME` runs one.
//
// Each story starts its own server on a free port (--listen 127.0.0.1:0
// --addr-file) and drives clients with piped commands.
package testscripts
