package warewulfd

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
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

// checkShrink refuses a nodes.conf that no wwctl command writes, while
// the daemon serves nodes: a missing file, one with no nodes at all, or
// one without the newline every complete file ends with (cut short by a
// truncating editor or a full disk: a cut can drop nodes, or a digit of an
// address, and still parse). The CLI still reads a missing file as an
// empty database.
func checkShrink(path string, old, cur *state) error {
	if len(old.nodes) == 0 {
		return nil
	}
	keep := fmt.Sprintf("; still serving its %d nodes", len(old.nodes))
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is missing%s (restart warewulfd to serve none)", path, keep)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if len(cur.nodes) == 0 {
		return fmt.Errorf("%s has no nodes (emptied or cut short?)%s (restart warewulfd to serve none)", path, keep)
	}
	last := make([]byte, 1)
	fi, err := f.Stat()
	if err == nil && fi.Size() > 0 {
		_, err = f.ReadAt(last, fi.Size()-1)
	}
	if err != nil {
		return err
	}
	if last[0] != '\n' {
		return fmt.Errorf("%s looks cut short: it does not end with a newline, as a complete one does%s", path, keep)
	}
	return nil
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
