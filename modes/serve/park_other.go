//go:build !linux

package serve

import (
	"io"
	"log/slog"
	"net"
)

// parker is Linux's (park_linux.go); elsewhere sessions keep their
// goroutines while idle.
type parker struct{}

func newParker(*slog.Logger) *parker                { return nil }
func (p *parker) stop()                             {}
func (p *parker) park(*session) bool                { return false }
func (p *parker) forget(*session)                   {}
func (s *session) parkable(conn net.Conn) io.Reader { return conn }
