package warewulfd

import (
	"errors"
	"os"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

var errNoDiscoverable = errors.New("no discoverable node without a hwaddr")

// discover gives mac to the first discoverable node (by name) that has no
// hwaddr yet, saves nodes.conf, and reloads. It returns the node, or nil
// when none was waiting.
func (s *Server) discover(mac string) (*nodeEntry, error) {
	if len(s.st.Load().discoverable) == 0 {
		return nil, nil
	}
	s.discoverMu.Lock()
	defer s.discoverMu.Unlock()
	st := s.st.Load()
	if e := st.byMAC[mac]; e != nil { // another request assigned it meanwhile
		return e, nil
	}
	if len(st.discoverable) == 0 {
		return nil, nil
	}
	var name string
	err := node.Update(st.cfg.NodesConf(), func(db *node.DB) error {
		for _, n := range db.NodeNames() {
			m, err := db.Merged(n)
			if err != nil || !node.Bool(m.Discoverable) || hasHwaddr(m) {
				continue
			}
			dev, _ := m.Primary()
			if dev == "" {
				dev = "default"
			}
			c := db.Nodes[n]
			if c.NetDevs == nil {
				c.NetDevs = map[string]*node.NetDev{}
			}
			if c.NetDevs[dev] == nil {
				c.NetDevs[dev] = &node.NetDev{}
			}
			c.NetDevs[dev].Hwaddr = mac
			c.Discoverable = "false"
			name = n
			return nil
		}
		return errNoDiscoverable
	})
	if errors.Is(err, errNoDiscoverable) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.log.Infof("warewulfd: discovered node %s at %s; nodes.conf saved", name, mac)
	if st.cfg.Warewulf.AutobuildOverlays {
		// Overlay images upstream built for the node before it had this
		// hwaddr are stale: gone, so autobuild makes its own (as upstream).
		for _, kind := range []string{overlay.System, overlay.Runtime} {
			for _, p := range overlay.UpstreamImages(st.cfg.ProvisionDir(), name, kind) {
				if err := os.Remove(p); err != nil {
					s.log.Warnf("warewulfd: discovered node %s: %v", name, err)
				}
			}
		}
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s.st.Load().byMAC[mac], nil
}

func hasHwaddr(n *node.Node) bool {
	for _, d := range n.NetDevs {
		if d != nil && d.Hwaddr != "" {
			return true
		}
	}
	return false
}
