//go:build ignore

// Port answers what .ci/run asks of the network, which POSIX sh cannot:
//
//	go run .ci/port.go answers HOST:PORT   exit 0 when HOST:PORT accepts a TCP connection (2 s at most)
//	go run .ci/port.go wait HOST:PORT      wait until it does (60 s at most, polling), exit 1 if never
//	go run .ci/port.go free                print a TCP port of 127.0.0.1 that is free now
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "answers":
		if len(os.Args) != 3 {
			usage()
		}
		if !answers(os.Args[2]) {
			os.Exit(1)
		}
	case "wait":
		if len(os.Args) != 3 {
			usage()
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(60 * time.Second); !answers(os.Args[2]); <-tick.C {
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "port: nothing answers at %s after 60s\n", os.Args[2])
				os.Exit(1)
			}
		}
	case "free":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "port:", err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	default:
		usage()
	}
}

func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go run .ci/port.go answers|wait HOST:PORT, or free")
	os.Exit(2)
}
