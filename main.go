// Command qchat is QQ for the terminal: one binary that is the server
// (serve), the interactive client (chat), the unattended receiver of shell
// scripts (recv) and a load tool (bench). The command line is modes/cli;
// everything else lives in modes/.
package main

import (
	"os"

	"qchat/modes/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
