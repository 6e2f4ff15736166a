package cluster

import (
	"bytes"
	"testing"

	"qchat/modes/serve/presence"
)

// FuzzWire feeds every parser of what nodes say to each other (all of it
// read from NATS) with the same bytes: none may panic, and what one takes
// must say again what it took.
func FuzzWire(f *testing.F) {
	for _, s := range []string{
		"HB n1 0123456789abcdef 127.0.0.1:4000",
		"BYE n1 0123456789abcdef",
		"FROM n1 0123456789abcdef\nBATCH 3 1\nPRESENCE 1000 alice online\n",
		"FROM n1 0123456789abcdef\nBATCH 0 2\nPRESENCE 1000 alice away lunch\nPRESENCE 1001 bob offline\n",
		"MAIL 1000 1001",
		"TAKE 1000",
		"CHANGED n1 social 0",
		"OFFER n2\n{\"kind\":\"gone\",\"ticket\":\"aaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		"SENT n2\n1000 k3f9.1 812 1001 - 1764748800123",
		"FWD n2\n[]",
		"EVENT 1000",
		"HB n1 0123456789abcdef [::1]:4000 x",
		"FROM n1 0123456789abcdef\nBATCH 99999999999 1048577\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, n, i, a, err := parseHeartbeat(data); err == nil {
			if !ValidNode(n) || !validInc(i) || k != "HB" && k != "BYE" || k == "HB" && a == "" {
				t.Fatalf("parseHeartbeat(%q) took %q %q %q %q", data, k, n, i, a)
			}
		}
		if n, i, b, err := parseFrom(data); err == nil {
			again := appendFrom(nil, n, i, presence.Batch{Version: b.Version, Changes: b.Changes})
			n2, i2, b2, err := parseFrom(again)
			if err != nil || n2 != n || i2 != i || len(b2.Changes) != len(b.Changes) {
				t.Fatalf("parseFrom(%q) took it, but not what appendFrom wrote of it: %v", data, err)
			}
		}
		for _, verb := range []string{"MAIL", "TAKE", "EVENT"} {
			if ids, err := parseIDs(data, verb, maxIDs); err == nil {
				for _, id := range ids {
					if id <= 0 {
						t.Fatalf("parseIDs(%q) took id %d", data, id)
					}
				}
			}
		}
		if n, k, id, err := parseChanged(data); err == nil && (!ValidNode(n) || k != "user" && k != "social" || id < 0) {
			t.Fatalf("parseChanged(%q) took %q %q %d", data, n, k, id)
		}
		for _, verb := range []string{"OFFER", "SENT", "FWD"} {
			if n, rest, err := parseTagged(data, verb, maxOffer); err == nil {
				if !ValidNode(n) || len(rest) > maxOffer || !bytes.HasSuffix(data, rest) {
					t.Fatalf("parseTagged(%q, %s) took %q", data, verb, n)
				}
			}
		}
	})
}
