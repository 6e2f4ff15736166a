package testscripts

import (
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"

	"qchat/modes/client"
)

// Custom commands and conditions for the TLS stories:
//
//	exitcode N PROG [ARGS...]
//	    run PROG as exec does and fail unless it exits with status N
//	    (stdout and stderr are kept for the next checks).
//	hostip VAR
//	    set $VAR to an IPv4 address of this host that is not loopback,
//	    to reach a server as another host on the LAN would.
//	[hostip]
//	    true when there is such an address.
func init() {
	commands["exitcode"] = cmdExitcode
	commands["hostip"] = cmdHostIP
}

// condition answers the scripts' custom conditions.
func condition(cond string) (bool, error) {
	switch cond {
	case "hostip":
		return hostIP() != "", nil
	case "netns":
		return netnsUsable() == "", nil // lan_cmds_test.go
	case "postgres":
		return havePostgres(), nil // store_cmds_test.go
	case "nats":
		return haveNats(), nil // cluster_cmds.go
	}
	return false, errors.New("unknown condition " + cond)
}

func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("exitcode: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

func cmdHostIP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: hostip VAR")
	}
	ip := hostIP()
	if ip == "" {
		ts.Fatalf("hostip: this host has no address but loopback (guard the line with [hostip])")
	}
	ts.Setenv(args[0], ip)
}

// hostIP is an IPv4 address of an interface that is up and not loopback.
func hostIP() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return ""
}

// scriptKeys checks server keys as `qchat` run by the script would: in
// the script's own known_servers, notes on the script's stderr.
func scriptKeys(ts *testscript.TestScript) *client.ServerKeys {
	return &client.ServerKeys{File: filepath.Join(ts.Getenv("XDG_DATA_HOME"), "qchat", client.KnownServersFile), Notify: ts.Stderr()}
}
