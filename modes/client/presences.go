package client

import (
	"fmt"
	"strconv"
	"strings"

	"qchat/protocol"
)

// PresenceCounts is a PRESENCES event: more users changed presence at
// once than the server sends one by one (PROTOCOL.md section 4, "Presence
// batches"). Since is the version to give LIST for who they are.
type PresenceCounts struct {
	Since                 string
	Online, Away, Offline int
}

// PresencesEvent reads a PRESENCES event.
func PresencesEvent(l protocol.Line) (PresenceCounts, error) {
	if l.Kind != "PRESENCES" || len(l.Args) != 4 {
		return PresenceCounts{}, fmt.Errorf("not a PRESENCES event")
	}
	var n [3]int
	for i := range n {
		v, err := strconv.Atoi(l.Args[i+1])
		if err != nil || v < 0 {
			return PresenceCounts{}, fmt.Errorf("malformed PRESENCES event")
		}
		n[i] = v
	}
	if _, err := strconv.ParseUint(l.Args[0], 10, 64); err != nil {
		return PresenceCounts{}, fmt.Errorf("malformed PRESENCES event")
	}
	return PresenceCounts{Since: l.Args[0], Online: n[0], Away: n[1], Offline: n[2]}, nil
}

// PresencesRecord is the JSON of a PRESENCES event.
type PresencesRecord struct {
	Head           // "presences"
	Since   string `json:"since"`
	Online  int    `json:"online"`
	Away    int    `json:"away"`
	Offline int    `json:"offline"`
}

// Presences prints a summary of many presence changes.
func (p *Printer) Presences(c PresenceCounts) string {
	var parts []string
	for _, x := range []struct {
		n    int
		what string
	}{{c.Online, "came online"}, {c.Away, "went away"}, {c.Offline, "went offline"}} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", x.n, x.what))
		}
	}
	plain := "* " + strings.Join(parts, ", ") + " (too many to name: /list shows who is online)"
	return p.Emit(&PresencesRecord{Head: NewHead("presences"), Since: c.Since, Online: c.Online, Away: c.Away, Offline: c.Offline}, plain)
}
