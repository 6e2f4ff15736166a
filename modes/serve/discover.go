package serve

import (
	"net"

	"qchat/modes/serve/discovery"
	"qchat/protocol"
)

// startDiscovery answers LAN discovery (modes/serve/discovery) on the
// interfaces the server listens on, unless the config turned it off. A
// discovery port that cannot be had is logged, and the server runs on
// without: clients can still be given its address.
func (srv *Server) startDiscovery() {
	if srv.cfg.DiscoveryPort == 0 {
		return
	}
	ta, ok := srv.ln.Addr().(*net.TCPAddr)
	if !ok {
		return
	}
	d, err := discovery.Start(discovery.Config{Port: srv.cfg.DiscoveryPort, Listen: ta.AddrPort(), Name: srv.cfg.Name,
		Proto: protocol.ProtocolName, Fingerprint: srv.keyHint, Log: srv.log})
	if err != nil {
		srv.log.Warn("discovery off: clients on the LAN must be given the address", "err", err)
		return
	}
	srv.disco = d
}

// keyHint is the fingerprint of the key of the moment ("" without TLS).
func (srv *Server) keyHint() string {
	if fp := srv.fp.Load(); fp != nil {
		return *fp
	}
	return ""
}

func (srv *Server) stopDiscovery() {
	if srv.disco != nil {
		srv.disco.Close()
	}
}
