package warewulfd

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// state is one consistent view of warewulf.conf and nodes.conf. A reload
// builds a new one and swaps it in atomically, so a request in flight keeps
// the view it started with.
type state struct {
	cfg   *config.Config
	db    *node.DB
	nodes map[string]*nodeEntry // by node name
	byMAC map[string]*nodeEntry // lowercase colon MAC -> node
	// discoverable lists nodes waiting for an unknown MAC, by name.
	discoverable []string
	// gen numbers the states a process loads, so that what remembers a
	// state keeps a number, not the whole database.
	gen uint64
}

var stateGen atomic.Uint64

// nodeEntry is a merged node and what requests need of it, precomputed.
type nodeEntry struct {
	*node.Node
	addrs []netip.Addr // every address of every network device
}

func newState(cfg *config.Config, db *node.DB) (*state, error) {
	merged, err := db.AllMerged()
	if err != nil {
		return nil, err
	}
	st := &state{gen: stateGen.Add(1), cfg: cfg, db: db, nodes: make(map[string]*nodeEntry, len(merged)), byMAC: make(map[string]*nodeEntry, len(merged))}
	for _, n := range merged { // sorted by name: the first name wins a duplicate
		e := &nodeEntry{Node: n}
		st.nodes[n.Name] = e
		hasMAC := false
		for _, devName := range sortedDevs(n) {
			d := n.NetDevs[devName]
			if d == nil {
				continue
			}
			for _, s := range []string{d.Ipaddr, d.Ipaddr6} {
				if a, err := netip.ParseAddr(s); err == nil {
					e.addrs = append(e.addrs, a.Unmap())
				}
			}
			if d.Hwaddr == "" {
				continue
			}
			mac, err := ParseMAC(d.Hwaddr)
			if err != nil {
				logrus.Warnf("node %s: network device %s: %v", n.Name, devName, err)
				continue
			}
			hasMAC = true
			if other, ok := st.byMAC[mac]; ok && other != e {
				logrus.Warnf("node %s: hwaddr %s already belongs to node %s; ignored", n.Name, mac, other.Name)
				continue
			}
			st.byMAC[mac] = e
		}
		if !hasMAC && node.Bool(n.Discoverable) {
			st.discoverable = append(st.discoverable, n.Name)
		}
	}
	return st, nil
}

func sortedDevs(n *node.Node) []string {
	return slices.Sorted(maps.Keys(n.NetDevs))
}

// hasAddr reports whether ip is one of the node's addresses.
func (e *nodeEntry) hasAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, a := range e.addrs {
		if a == ip {
			return true
		}
	}
	return false
}

// loadState reads warewulf.conf (when cfgFile is set) and nodes.conf.
func loadState(cfgFile string, cfg *config.Config) (*state, error) {
	if cfgFile != "" {
		c, err := config.Load(cfgFile)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	db, err := node.Load(cfg.NodesConf())
	if err != nil {
		return nil, err
	}
	st, err := newState(cfg, db)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.NodesConf(), err)
	}
	return st, nil
}
