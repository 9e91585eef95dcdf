package controller

import (
	"fmt"
	"net"
	"strings"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// HostsBlock is the /etc/hosts block for the cluster: the controller, then
// every node's addresses. A node's primary device carries its name, the
// others NODE-DEVICE, its BMC NODE-ipmi; with a cluster name each line also
// carries the fully qualified name first.
func HostsBlock(cfg *config.Config, db *node.DB) (string, error) {
	var b strings.Builder
	line := func(ip string, names ...string) {
		fmt.Fprintf(&b, "%-15s %s\n", ip, strings.Join(names, " "))
	}
	ctl := []string{"warewulf"}
	if cfg.Fqdn != "" {
		ctl = append([]string{cfg.Fqdn, strings.SplitN(cfg.Fqdn, ".", 2)[0]}, ctl...)
	}
	line(cfg.Ipaddr, ctl...)
	nodes, err := db.AllMerged()
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		names := func(short string) []string {
			if n.ClusterName != "" {
				return []string{short + "." + n.ClusterName, short}
			}
			return []string{short}
		}
		for _, i := range n.Interfaces() {
			if i.Ipaddr == "" {
				continue
			}
			if net.ParseIP(i.Ipaddr) == nil {
				return "", fmt.Errorf("node %s: network devices: %s: ipaddr %q is not an IP address", n.Name, i.Name, i.Ipaddr)
			}
			line(i.Ipaddr, names(i.Hostname)...)
		}
		if n.Ipmi != nil && n.Ipmi.Ipaddr != "" {
			if net.ParseIP(n.Ipmi.Ipaddr) == nil {
				return "", fmt.Errorf("node %s: ipmi: ipaddr %q is not an IP address", n.Name, n.Ipmi.Ipaddr)
			}
			line(n.Ipmi.Ipaddr, names(n.Name+"-ipmi")...)
		}
	}
	return b.String(), nil
}

// ExportsBlock is the /etc/exports block: every `nfs: export paths` entry
// exported to the cluster network.
func ExportsBlock(cfg *config.Config) string {
	var b strings.Builder
	ones, _ := net.IPMask(net.ParseIP(cfg.Netmask).To4()).Size()
	for _, e := range cfg.NFS.ExportPaths {
		opts := e.ExportOptions
		if opts == "" {
			opts = "ro,sync,no_subtree_check"
		}
		fmt.Fprintf(&b, "%s %s/%d(%s)\n", e.Path, cfg.Network, ones, opts)
	}
	return b.String()
}
