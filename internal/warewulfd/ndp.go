package warewulfd

import (
	"context"
	"fmt"
	"net"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/ndp"
)

// runNDP answers IPv6 router solicitations on the provisioning interfaces,
// so iPXE does not wait ~16 s for a router that never answers. Failing to
// start costs boot time, not service: it is logged and warewulfd goes on.
func (s *Server) runNDP(ctx context.Context, cfg *config.Config) {
	err := s.enter(func() error {
		ifaces, err := provisioningInterfaces(cfg)
		if err != nil {
			return err
		}
		return ndp.Serve(ctx, ifaces)
	})
	if err != nil && ctx.Err() == nil {
		s.log.Errorf("warewulfd: not answering IPv6 router solicitations: %v (iPXE will wait about 16 s for a router on each boot; a reload tries again)", err)
	}
}

// provisioningInterfaces are the interfaces nodes boot on: `dhcp:
// interfaces`, else the one that holds ipaddr.
func provisioningInterfaces(cfg *config.Config) ([]string, error) {
	if len(cfg.DHCP.Interfaces) > 0 {
		return cfg.DHCP.Interfaces, nil
	}
	want := net.ParseIP(cfg.Ipaddr)
	ifcs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, ifc := range ifcs {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(want) {
				return []string{ifc.Name}, nil
			}
		}
	}
	return nil, fmt.Errorf("no interface holds ipaddr %s; name one in dhcp: interfaces", cfg.Ipaddr)
}
