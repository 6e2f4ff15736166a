package client

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"qchat/protocol"
)

func TestPresencesEvent(t *testing.T) {
	l, err := protocol.ParseLine([]byte("PRESENCES 1733130000000042 312 4 20"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := PresencesEvent(l)
	if err != nil || c != (PresenceCounts{Since: "1733130000000042", Online: 312, Away: 4, Offline: 20}) {
		t.Fatalf("PresencesEvent = %+v, %v", c, err)
	}
	var plain, js bytes.Buffer
	if out := NewPrinter(&plain, false).Presences(c); !strings.Contains(out, "312 came online, 4 went away, 20 went offline") {
		t.Fatalf("plain: %q", out)
	}
	NewPrinter(&js, true).Presences(PresenceCounts{Since: "7", Online: 17})
	var rec map[string]any
	if err := json.Unmarshal(js.Bytes(), &rec); err != nil || rec["type"] != "presences" || rec["online"] != 17.0 || rec["since"] != "7" || rec["offline"] != 0.0 {
		t.Fatalf("json: %s (%v)", js.Bytes(), err)
	}
	for _, bad := range []string{"PRESENCES x 1 2 3", "PRESENCES 1 -1 2 3", "PRESENCES 1 a 2 3", "PRESENCE 1001 bob online"} {
		l, err := protocol.ParseLine([]byte(bad))
		if err != nil {
			continue
		}
		if _, err := PresencesEvent(l); err == nil {
			t.Errorf("%q taken", bad)
		}
	}
}
