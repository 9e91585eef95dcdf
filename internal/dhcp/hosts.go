package dhcp

import (
	"net"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// Host is a static lease: one network device of a node that has both a
// hardware address and an IPv4 address in nodes.conf.
type Host struct {
	Node    string
	Device  string // the network device's name in nodes.conf ("default")
	Hwaddr  net.HardwareAddr
	IP      net.IP
	Netmask net.IPMask
	Gateway net.IP // nil when unset
	Domain  string // "" when neither dhcp: domain nor cluster name is set
	// Hostname is the node name for its primary device, NODE-DEVICE for
	// the others, so every name is unique.
	Hostname string
}

// Hosts lists the static leases of every node, sorted by node and device.
// A device with a bad address is skipped with a warning, not fatal, so one
// typo does not take DHCP down for the whole cluster.
func Hosts(cfg *config.Config, db *node.DB) []Host {
	var out []Host
	if db == nil {
		return nil
	}
	for _, name := range db.NodeNames() {
		n, err := db.Merged(name)
		if err != nil {
			logrus.Warnf("dhcp: skipping node %s: %v", name, err)
			continue
		}
		for _, i := range n.Interfaces() {
			if i.Hwaddr == "" || i.Ipaddr == "" {
				continue
			}
			h, err := hostOf(cfg, n, i)
			if err != nil {
				logrus.Warnf("dhcp: skipping node %s device %s: %v", name, i.Name, err)
				continue
			}
			out = append(out, h)
		}
	}
	return out
}

func hostOf(cfg *config.Config, n *node.Node, nd node.Interface) (Host, error) {
	h := Host{Node: n.Name, Device: nd.Name, Hostname: nd.Hostname}
	mac, err := net.ParseMAC(nd.Hwaddr)
	if err != nil {
		return h, &badValue{"hwaddr", nd.Hwaddr}
	}
	h.Hwaddr = mac
	if h.IP = net.ParseIP(nd.Ipaddr).To4(); h.IP == nil {
		return h, &badValue{"ipaddr", nd.Ipaddr}
	}
	mask := nd.Netmask
	if mask == "" {
		mask = cfg.Netmask
	}
	m := net.ParseIP(mask).To4()
	if m == nil {
		return h, &badValue{"netmask", mask}
	}
	h.Netmask = net.IPMask(m)
	if nd.Gateway != "" {
		if h.Gateway = net.ParseIP(nd.Gateway).To4(); h.Gateway == nil {
			return h, &badValue{"gateway", nd.Gateway}
		}
	}
	h.Domain = domainOf(cfg, n)
	return h, nil
}

// domainOf is `dhcp: domain` when set, else the node's cluster name.
func domainOf(cfg *config.Config, n *node.Node) string {
	if cfg.DHCP.Domain != "" {
		return cfg.DHCP.Domain
	}
	return strings.TrimSpace(n.ClusterName)
}

type badValue struct{ key, value string }

func (e *badValue) Error() string { return e.key + " " + strconv.Quote(e.value) + " is not valid" }

// hostIndex finds a static lease by hardware address and tells which
// addresses are taken by nodes.
type hostIndex struct {
	db     *node.DB
	byMAC  map[string]*Host
	usedIP map[string]bool
}

func newHostIndex(cfg *config.Config, db *node.DB) *hostIndex {
	idx := &hostIndex{db: db, byMAC: map[string]*Host{}, usedIP: map[string]bool{}}
	hosts := Hosts(cfg, db)
	for i := range hosts {
		h := &hosts[i]
		key := h.Hwaddr.String()
		if prev, dup := idx.byMAC[key]; dup {
			logrus.Warnf("dhcp: hwaddr %s is set on both %s and %s; using %s", key, prev.Node, h.Node, prev.Node)
			continue
		}
		idx.byMAC[key] = h
		idx.usedIP[h.IP.String()] = true
	}
	return idx
}
