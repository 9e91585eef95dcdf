package config

import (
	"fmt"
	"sort"
)

// unused lists, one line each, the keys a warewulf.conf sets that this
// version does not act on: upstream keys whose feature is not here (yet),
// and keys nobody knows. Remove an entry here when its feature lands.
func (c *Config) unused() []string {
	var out []string
	notActed := func(key string, set bool) {
		if set {
			out = append(out, fmt.Sprintf("warewulf.conf: %s: read but not acted on by this version", key))
		}
	}
	notActed("wwclient: port", c.WWClient.Port != 0)
	// Only a dnsmasq config serves TFTP itself.
	notActed("dhcp: tftp", c.DHCP.TFTP && c.DHCP.Server == "dhcpd")
	for i, m := range c.ImageMounts {
		notActed(fmt.Sprintf("image mounts: %d: options", i), m.Options != "")
		for _, k := range sortedKeys(m.Extra) {
			out = append(out, unknown(fmt.Sprintf("image mounts: %d: %s", i, k)))
		}
	}
	for _, sec := range []struct {
		prefix string
		extra  map[string]any
	}{
		{"", c.Extra}, {"warewulf: ", c.Warewulf.Extra}, {"api: ", c.API.Extra}, {"dhcp: ", c.DHCP.Extra},
		{"tftp: ", c.TFTP.Extra}, {"nfs: ", c.NFS.Extra}, {"ssh: ", c.SSH.Extra},
		{"paths: ", c.Paths.Extra}, {"wwclient: ", c.WWClient.Extra},
	} {
		for _, k := range sortedKeys(sec.extra) {
			out = append(out, unknown(sec.prefix+k))
		}
	}
	return out
}

func unknown(key string) string {
	return fmt.Sprintf("warewulf.conf: %s: unknown key, ignored", key)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
