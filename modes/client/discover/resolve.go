package discover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"qchat/modes/client"
	"qchat/protocol"
)

// Options is what chat and recv tell Resolve.
type Options struct {
	Config
	// Keys checks the server's key. Its Fingerprint (--server-fingerprint)
	// leaves out servers that announced another key; Resolve sets its
	// FirstContact (Trust) unless a fingerprint is pinned.
	Keys   *client.ServerKeys
	Prompt *Prompt // a person at a terminal; nil when piped
}

// Resolve searches the LAN and returns the server to use and every
// server that answered. One usable server is taken; among several the
// person at the terminal chooses, and piped they are a *SeveralError;
// none is a *NoServerError.
func Resolve(ctx context.Context, o Options) (Server, []Server, error) {
	found, err := Find(ctx, o.Config)
	if err != nil {
		return Server{}, nil, fmt.Errorf("searching the LAN: %w", err)
	}
	var pinned []string
	if o.Keys != nil {
		pinned = o.Keys.Fingerprints
		Prefer(found, o.Keys.KnownAt)
	}
	ok, other := Usable(found, pinned)
	var s Server
	switch {
	case len(ok) == 0:
		port, wait := o.Port, o.Wait
		if port == 0 {
			port = protocol.DiscoveryPort
		}
		if wait <= 0 {
			wait = DefaultWait
		}
		return Server{}, found, &NoServerError{Port: port, Wait: wait, Other: other}
	case len(ok) == 1:
		s = ok[0]
	case o.Prompt == nil:
		return Server{}, found, &SeveralError{Servers: ok}
	default:
		if s, err = o.Prompt.Choose(ok); err != nil {
			return Server{}, found, err
		}
	}
	if o.Keys != nil && len(o.Keys.Fingerprints) == 0 {
		said := NotAsked
		if o.Prompt != nil && s.Fingerprint != "" && !s.Known && len(o.Keys.KnownAt(s.Fingerprint)) == 0 {
			said = o.Prompt.Ask(s)
		}
		o.Keys.FirstContact = Trust(s, said)
	}
	return s, found, nil
}

// Run is Resolve as chat and recv use it: it says on stderr which
// server it found (or why none), prints the discovery objects under
// --json, and returns the address to dial, or the exit status to end
// with (1: none found or the search failed; 2: several, and nobody
// chose).
func Run(ctx context.Context, o Options, out *client.Printer, stderr io.Writer, who string) (addr string, status int) {
	s, found, err := Resolve(ctx, o)
	records := make([]client.FoundServer, len(found))
	for i, f := range found {
		records[i] = client.FoundServer{Name: f.Name, Address: f.Addr(), Fingerprint: f.Fingerprint, Protocol: f.Proto, Known: f.Known}
	}
	if err != nil {
		code, status := "no-server", 1
		var several *SeveralError
		if errors.As(err, &several) || errors.Is(err, ErrNoChoice) {
			code, status = "several-servers", 2
		}
		out.Discovery(records, "")
		out.DiscoveryError(code, err.Error())
		// The names in it are escaped already (Describe); its lines are
		// escaped again, whatever else it quotes.
		for _, l := range strings.Split(err.Error(), "\n") {
			if strings.HasPrefix(l, "  ") {
				fmt.Fprintf(stderr, "%s\n", protocol.Escape(l))
			} else {
				fmt.Fprintf(stderr, "%s: %s\n", who, protocol.Escape(l))
			}
		}
		if !errors.As(err, &several) {
			fmt.Fprintf(stderr, "%s: give the address with --server HOST:PORT (or QCHAT_SERVER)\n", who)
		}
		return "", status
	}
	out.Discovery(records, s.Addr())
	fmt.Fprintf(stderr, "%s: found %s on the LAN\n", who, Describe(s))
	return s.Addr(), 0
}
