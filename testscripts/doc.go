// Package testscripts runs the end-to-end stories in this folder
// (*.txtar) against the real qchat binary, built once by TestMain. Each
// story starts its own server on a free port (--listen 127.0.0.1:0
// --addr-file) and drives clients with piped commands. The custom
// commands the scripts may use are documented in commands_test.go.
package testscripts
