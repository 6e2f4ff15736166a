package protocol

import (
	"encoding/base64"
	"strings"
)

// ValidLinkKey reports whether s is written like the fingerprint of a
// peer-link key (LINKKEY, and the 260 reply): "SHA256:" and the unpadded
// standard base64 of 32 bytes, as OpenSSH prints key fingerprints.
func ValidLinkKey(s string) bool {
	b64, ok := strings.CutPrefix(s, "SHA256:")
	if !ok || len(b64) != 43 {
		return false
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(b64)
	return err == nil && len(b) == 32
}
