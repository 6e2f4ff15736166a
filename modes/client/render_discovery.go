package client

import (
	"time"

	"qchat/protocol"
)

// The JSON objects of discovery (--json, chat and recv without --server).
type (
	// DiscoveryRecord lists the servers that answered on the LAN and the
	// one taken ("server", left out when none was).
	DiscoveryRecord struct {
		Type    string        `json:"type"` // "discovery"
		Time    string        `json:"time"`
		Servers []FoundServer `json:"servers"`
		Server  string        `json:"server,omitempty"`
	}
	// FoundServer is one server that answered. Name comes from the
	// network: JSON escapes its control characters.
	FoundServer struct {
		Name        string `json:"name"`
		Address     string `json:"address"`
		Fingerprint string `json:"fingerprint"` // "" without TLS; a hint, checked when connecting
		Protocol    string `json:"protocol"`
		Known       bool   `json:"known"` // known_servers holds this key for this address
	}
	// DiscoveryErrorRecord is a search that found no server to take:
	// code "no-server" (none answered, or none usable) or
	// "several-servers" (piped, or none chosen).
	DiscoveryErrorRecord struct {
		Type    string `json:"type"` // "error"
		Time    string `json:"time"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
)

// Discovery prints the servers found (under --json only: people read
// discovery's lines on stderr).
func (p *Printer) Discovery(servers []FoundServer, chosen string) {
	if p.JSON {
		p.Emit(DiscoveryRecord{Type: "discovery", Time: p.jsonNow(), Servers: servers, Server: chosen}, "")
	}
}

// DiscoveryError prints why discovery found no server (under --json
// only).
func (p *Printer) DiscoveryError(code, message string) {
	if p.JSON {
		p.Emit(DiscoveryErrorRecord{Type: "error", Time: p.jsonNow(), Code: code, Message: message}, "")
	}
}

func (p *Printer) jsonNow() string {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	return protocol.FormatTime(now())
}
