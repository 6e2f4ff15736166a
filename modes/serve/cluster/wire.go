package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"

	"qchat/modes/serve/presence"
	"qchat/protocol"
)

// What nodes say to each other, as text (a person with `nats sub
// 'qchat.>'` can read it). Subjects under the deployment's prefix P:
//
//	P.hb                HB <node> <inc> <addr>  every timeout/4 (addr: its client port)
//	                    BYE <node> <inc>    a node that stops
//	P.pres              FROM <node> <inc>\n + presence.AppendBatch: a node's changes
//	P.changed           CHANGED <node> user|social <id>
//	P.node.<node>.snap  request, answered with FROM ... and every user online there
//	P.node.<node>.take  TAKE <user>, answered OK once the session ended and saved
//	P.node.<node>.mail  MAIL <user> [<user>...]
//	P.node.<node>.offer OFFER <from-node>\n + the server's own text of a direct-link offer
//	P.sent              SENT <node>\n + the server's own text of a client id it recorded
//	P.node.<node>.event EVENT <user>\n + an event line for that user (NUDGE, TYPING, RECEIPT)
//	P.stored            STORED <node> <user> [<user>...]: messages stored for them
//	P.node.<node>.fwd   FWD <from-node>\n + messages for users on node (the server's JSON)
//	P.node.<node>.safe  FWD <from-node>\n + answers for messages node forwarded (the server's JSON)
//
// <inc> is a node's incarnation: 16 hex digits drawn at start, so that a
// node restarted under the same name is a new one.

// maxIDs bounds the users of one MAIL notice.
const maxIDs = 1 << 16

var errWire = errors.New("cluster message")

func validInc(s string) bool {
	if len(s) != 16 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// parseHeartbeat reads "HB <node> <inc> <host:port>" or "BYE <node> <inc>".
func parseHeartbeat(data []byte) (kind, node, inc, addr string, err error) {
	f := bytes.Fields(data)
	if len(f) < 3 || string(f[0]) == "HB" && len(f) != 4 || string(f[0]) == "BYE" && len(f) != 3 ||
		string(f[0]) != "HB" && string(f[0]) != "BYE" {
		return "", "", "", "", fmt.Errorf("%w: want HB <node> <inc> <addr> or BYE <node> <inc>: %q", errWire, protocol.Clip(string(data), 40))
	}
	node, inc = string(f[1]), string(f[2])
	if !ValidNode(node) || !validInc(inc) {
		return "", "", "", "", fmt.Errorf("%w: bad node or incarnation: %q", errWire, protocol.Clip(string(data), 40))
	}
	if len(f) == 4 {
		addr = string(f[3])
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" || len(addr) > 255 {
			return "", "", "", "", fmt.Errorf("%w: bad node address %q", errWire, protocol.Clip(addr, 40))
		}
	}
	return string(f[0]), node, inc, addr, nil
}

// parseOffer reads "OFFER <node>\n<data>".
func parseOffer(data []byte) (node string, rest []byte, err error) {
	return parseTagged(data, "OFFER", maxOffer)
}

// parseTagged reads "<verb> <node>\n<data>", data at most most bytes.
func parseTagged(data []byte, verb string, most int) (node string, rest []byte, err error) {
	head, rest, ok := bytes.Cut(data, []byte{'\n'})
	f := bytes.Fields(head)
	if !ok || len(f) != 2 || string(f[0]) != verb || !ValidNode(string(f[1])) || len(rest) > most {
		return "", nil, fmt.Errorf("%w: want %s <node> and at most %d bytes: %q", errWire, verb, most, protocol.Clip(string(head), 40))
	}
	return string(f[1]), rest, nil
}

// appendFrom appends "FROM <node> <inc>\n" and b.
func appendFrom(dst []byte, node, inc string, b presence.Batch) []byte {
	dst = fmt.Appendf(dst, "FROM %s %s\n", node, inc)
	return presence.AppendBatch(dst, b)
}

// parseFrom reads what appendFrom wrote.
func parseFrom(data []byte) (node, inc string, b presence.Batch, err error) {
	head, rest, ok := bytes.Cut(data, []byte{'\n'})
	f := bytes.Fields(head)
	if !ok || len(f) != 3 || string(f[0]) != "FROM" || !ValidNode(string(f[1])) || !validInc(string(f[2])) {
		return "", "", b, fmt.Errorf("%w: want FROM <node> <inc>: %q", errWire, protocol.Clip(string(head), 40))
	}
	b, err = presence.ParseBatch(rest)
	if err != nil {
		return "", "", b, err
	}
	return string(f[1]), string(f[2]), b, nil
}

// parseIDs reads "<verb> <id> [<id>...]", 1 to most ids.
func parseIDs(data []byte, verb string, most int) ([]int64, error) {
	f := bytes.Fields(data)
	if len(f) < 2 || string(f[0]) != verb || len(f)-1 > most {
		return nil, fmt.Errorf("%w: want %s and 1 to %d user ids: %q", errWire, verb, most, protocol.Clip(string(data), 40))
	}
	ids := make([]int64, 0, len(f)-1)
	for _, x := range f[1:] {
		id, ok := protocol.ParseID(string(x))
		if !ok {
			return nil, fmt.Errorf("%w: %s: bad user id %q", errWire, verb, protocol.Clip(string(x), 20))
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// parseChanged reads "CHANGED <node> user|social <id>".
func parseChanged(data []byte) (node, kind string, id int64, err error) {
	f := bytes.Fields(data)
	if len(f) != 4 || string(f[0]) != "CHANGED" || !ValidNode(string(f[1])) ||
		string(f[2]) != "user" && string(f[2]) != "social" {
		return "", "", 0, fmt.Errorf("%w: want CHANGED <node> user|social <id>: %q", errWire, protocol.Clip(string(data), 40))
	}
	id, err = strconv.ParseInt(string(f[3]), 10, 64)
	if err != nil || id < 0 {
		return "", "", 0, fmt.Errorf("%w: CHANGED: bad id %q", errWire, protocol.Clip(string(f[3]), 20))
	}
	return string(f[1]), string(f[2]), id, nil
}
