package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// LAN discovery (PROTOCOL.md section 10): a client asks every server on
// its links with one padded UDP datagram, each server answers with one
// line. This file is the datagram format and its limits; the sockets are
// modes/serve/discovery's and modes/client/discover's.
//
//	request: QCHAT-DISCOVER 1 <nonce> LF, padded to DiscoveryRequestSize bytes
//	answer:  QCHAT-SERVER 1 <nonce> <instance> <port> <proto> <fingerprint|-> <name> LF

// Discovery constants.
const (
	// DiscoveryPort is the well-known UDP port servers answer on
	// (serve --discovery-port, chat/recv --discovery-port change it).
	DiscoveryPort = 4000
	// DiscoveryRequestSize is the least size of a request: the padding
	// makes every request at least as long as any answer, so a forged
	// source address never gets back more bytes than were sent.
	DiscoveryRequestSize = 512
	// MaxDiscoveryRequest is the largest request a server reads.
	MaxDiscoveryRequest = 1024
	// MaxDiscoveryAnswer is the largest answer a server sends and a client
	// reads; it is never more than DiscoveryRequestSize.
	MaxDiscoveryAnswer = 512
	// MaxDiscoveryName is the most bytes of a server name an answer holds.
	MaxDiscoveryName = 128
	// ProtocolName is what a server says it speaks, in its greeting and in
	// its discovery answers.
	ProtocolName = "qchat/1"
	// DiscoveryVersion is the version of the datagram format.
	DiscoveryVersion = "1"

	discoverVerb = "QCHAT-DISCOVER"
	serverVerb   = "QCHAT-SERVER"
)

// DiscoveryGroup is the IPv6 link-local multicast group servers join on
// each interface ("qcht" in the last 32 bits).
var DiscoveryGroup = netip.MustParseAddr("ff02::7163:6874")

// Discovery errors: a datagram that is not a request or an answer.
var (
	ErrDiscoveryShort     = errors.New("request shorter than 512 bytes")
	ErrDiscoveryMalformed = errors.New("not a qchat discovery datagram")
)

// Announcement is what a server says about itself in an answer.
type Announcement struct {
	Nonce       string // the request's, echoed
	Instance    string // random per server run: tells one server's answers over several paths
	Port        int    // the TCP port of its qchat protocol
	Proto       string // the protocol it speaks, as in its greeting: "qchat/1"
	Fingerprint string // its key (SHA256:...), "" when it has no TLS
	Name        string // its name, at most MaxDiscoveryName bytes of UTF-8
}

// ValidNonce reports whether s can be a nonce or an instance: 8 to 32
// letters and digits.
func ValidNonce(s string) bool {
	if len(s) < 8 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// AppendDiscoverRequest appends a request with nonce, padded with dots
// to DiscoveryRequestSize bytes.
func AppendDiscoverRequest(dst []byte, nonce string) []byte {
	start := len(dst)
	dst = append(dst, discoverVerb+" "+DiscoveryVersion+" "...)
	dst = append(dst, nonce...)
	dst = append(dst, '\n')
	for len(dst)-start < DiscoveryRequestSize {
		dst = append(dst, '.')
	}
	return dst
}

// ParseDiscoverRequest returns the nonce of a request. A request shorter
// than DiscoveryRequestSize is ErrDiscoveryShort: it must not be answered.
// What follows the first line is padding, whatever it holds.
func ParseDiscoverRequest(b []byte) (nonce string, err error) {
	if len(b) > MaxDiscoveryRequest {
		return "", fmt.Errorf("%w: %d bytes (at most %d)", ErrDiscoveryMalformed, len(b), MaxDiscoveryRequest)
	}
	i := bytes.IndexByte(b[:min(len(b), 64)], '\n')
	if i < 0 {
		return "", ErrDiscoveryMalformed
	}
	f := strings.Split(string(b[:i]), " ")
	if len(f) != 3 || f[0] != discoverVerb || f[1] != DiscoveryVersion || !ValidNonce(f[2]) {
		return "", ErrDiscoveryMalformed
	}
	if len(b) < DiscoveryRequestSize {
		return "", ErrDiscoveryShort
	}
	return f[2], nil
}

// AppendDiscoverAnswer appends the answer a. The name is cut to
// MaxDiscoveryName bytes (on a character boundary) and cleaned: control
// characters and invalid UTF-8 become '?', so that it stays one line.
func AppendDiscoverAnswer(dst []byte, a Announcement) ([]byte, error) {
	fp := a.Fingerprint
	if fp == "" {
		fp = "-"
	}
	if !ValidNonce(a.Nonce) || !ValidNonce(a.Instance) || a.Port < 1 || a.Port > 65535 || !validProto(a.Proto) ||
		(fp != "-" && !ValidFingerprint(fp)) {
		return dst, fmt.Errorf("%w: bad announcement", ErrDiscoveryMalformed)
	}
	name := cleanName(a.Name)
	if name == "" {
		name = "?"
	}
	dst = append(dst, serverVerb+" "+DiscoveryVersion+" "...)
	dst = append(dst, a.Nonce...)
	dst = append(dst, ' ')
	dst = append(dst, a.Instance...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(a.Port), 10)
	dst = append(dst, ' ')
	dst = append(dst, a.Proto...)
	dst = append(dst, ' ')
	dst = append(dst, fp...)
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, '\n')
	return dst, nil
}

// ParseDiscoverAnswer reads an answer: exactly one line, at most
// MaxDiscoveryAnswer bytes. The name may hold any character but CR, LF and
// NUL, and must be valid UTF-8: a client escapes it before showing it.
func ParseDiscoverAnswer(b []byte) (Announcement, error) {
	var a Announcement
	if len(b) > MaxDiscoveryAnswer || len(b) == 0 || b[len(b)-1] != '\n' || bytes.IndexByte(b[:len(b)-1], '\n') >= 0 {
		return a, ErrDiscoveryMalformed
	}
	line := string(b[:len(b)-1])
	f := strings.SplitN(line, " ", 8)
	if len(f) != 8 || f[0] != serverVerb || f[1] != DiscoveryVersion {
		return a, ErrDiscoveryMalformed
	}
	port, err := strconv.Atoi(f[4])
	switch {
	case !ValidNonce(f[2]), !ValidNonce(f[3]):
		return a, fmt.Errorf("%w: bad nonce or instance", ErrDiscoveryMalformed)
	case err != nil || port < 1 || port > 65535 || f[4][0] == '0' || f[4][0] == '+':
		return a, fmt.Errorf("%w: bad port", ErrDiscoveryMalformed)
	case !validProto(f[5]):
		return a, fmt.Errorf("%w: bad protocol", ErrDiscoveryMalformed)
	case f[6] != "-" && !ValidFingerprint(f[6]):
		return a, fmt.Errorf("%w: bad fingerprint", ErrDiscoveryMalformed)
	}
	name := f[7]
	if name == "" || len(name) > MaxDiscoveryName || !utf8.ValidString(name) || strings.ContainsAny(name, "\r\x00") {
		return a, fmt.Errorf("%w: bad name", ErrDiscoveryMalformed)
	}
	a = Announcement{Nonce: f[2], Instance: f[3], Port: port, Proto: f[5], Fingerprint: f[6], Name: name}
	if a.Fingerprint == "-" {
		a.Fingerprint = ""
	}
	return a, nil
}

// validProto: 1 to 32 printable ASCII characters but space.
func validProto(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// cleanName makes a server's own name fit an answer.
func cleanName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r < 0x20 || r == 0x7f {
			r, size = '?', max(size, 1)
		}
		if b.Len()+utf8.RuneLen(r) > MaxDiscoveryName {
			break
		}
		b.WriteRune(r)
		i += size
	}
	return b.String()
}
