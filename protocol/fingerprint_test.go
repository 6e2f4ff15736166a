package protocol_test

import (
	"testing"

	"qchat/protocol"
)

func TestFingerprint(t *testing.T) {
	// Any bytes hashed and printed as openssl would (for a real key, the
	// DER of "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der"):
	// printf ... | openssl dgst -sha256 -binary | base64, without the "=".
	got := protocol.Fingerprint([]byte("not a real SPKI"))
	if want := "SHA256:V78rzRP8IsW8ORZT/WXCsm7wzDjk7j6YfvF9QaCOl3U"; got != want {
		t.Fatalf("Fingerprint = %q, want %q", got, want)
	}
	if !protocol.ValidFingerprint(got) {
		t.Fatalf("ValidFingerprint(%q) = false", got)
	}
	for _, bad := range []string{"", "SHA256:", "sha256:5DdgjbGmkeNqGoQRWHNWVwEK4qKbjt2WqK9m5OZWRSw",
		"SHA256:5DdgjbGmkeNqGoQRWHNWVwEK4qKbjt2WqK9m5OZWRSw=", "SHA256:5Ddgjb", "MD5:5DdgjbGmkeNqGoQRWHNWVwEK4qKbjt2WqK9m5OZWRSw"} {
		if protocol.ValidFingerprint(bad) {
			t.Errorf("ValidFingerprint(%q) = true", bad)
		}
	}
}
