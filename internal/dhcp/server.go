// Package dhcp is warewulfd's built-in DHCP server: static leases from
// nodes.conf, a dynamic range for discovery, iPXE chain loading, and proxy
// DHCP for networks where another server hands out addresses.
package dhcp

import (
	"context"
	"errors"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// Server answers DHCP on the interfaces warewulf.conf names.
type Server struct{}

// New prepares a server. nodes returns the current node database; warewulfd
// swaps it on reload, so the server calls it per packet (it must be cheap).
func New(cfg *config.Config, nodes func() *node.DB) (*Server, error) {
	return nil, errors.New("dhcp: not implemented yet")
}

// Serve answers until ctx is cancelled.
func (s *Server) Serve(ctx context.Context) error {
	return errors.New("dhcp: not implemented yet")
}
