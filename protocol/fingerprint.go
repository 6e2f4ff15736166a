package protocol

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// FingerprintPrefix starts every key fingerprint.
const FingerprintPrefix = "SHA256:"

// Fingerprint is how a server key is named to people and pinned by
// clients: "SHA256:" and the unpadded standard base64 of the SHA-256 of the
// certificate's SubjectPublicKeyInfo (x509.Certificate.RawSubjectPublicKeyInfo),
// as OpenSSH prints its fingerprints. It names the key, not the
// certificate: a certificate made again for the same key keeps it.
func Fingerprint(spki []byte) string {
	sum := sha256.Sum256(spki)
	return FingerprintPrefix + base64.RawStdEncoding.EncodeToString(sum[:])
}

// ValidFingerprint reports whether s is a fingerprint as Fingerprint
// writes it.
func ValidFingerprint(s string) bool {
	b64, ok := strings.CutPrefix(s, FingerprintPrefix)
	if !ok {
		return false
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(b64)
	return err == nil && len(b) == sha256.Size
}
