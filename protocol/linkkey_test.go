package protocol_test

import (
	"crypto/sha256"
	"encoding/base64"
	"testing"

	"qchat/protocol"
)

func TestValidLinkKey(t *testing.T) {
	sum := sha256.Sum256([]byte("a key"))
	good := "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
	if !protocol.ValidLinkKey(good) {
		t.Errorf("ValidLinkKey(%q) = false", good)
	}
	for _, bad := range []string{
		"",
		"-",
		good[7:],                    // no prefix
		"sha256:" + good[7:],        // prefix in the wrong case
		"MD5:" + good[7:],           // another hash
		good + "=",                  // padded
		good[:len(good)-1],          // short
		good[:len(good)-1] + "*",    // not base64
		good[:10] + "-" + good[11:], // the URL alphabet
		good[:len(good)-1] + "B",    // stray bits in the last character
	} {
		if protocol.ValidLinkKey(bad) {
			t.Errorf("ValidLinkKey(%q) = true", bad)
		}
	}
}
