package wwctl

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// confFlags are the flags `node add|set` and `profile add|set` share, with
// Warewulf v4's names. Each scalar flag knows the field it writes, so one
// table drives set, unset and the flag definitions.
type confFlags struct {
	netname string
}

type scalarField struct {
	name, short, usage string
	// field returns the string the flag writes, creating parents.
	field func(c *node.Conf, net string) *string
	// step: for a range of nodes, the value is an IP address advanced by
	// one per node.
	step bool
}

func netdev(c *node.Conf, net string) *node.NetDev {
	if c.NetDevs == nil {
		c.NetDevs = map[string]*node.NetDev{}
	}
	d := c.NetDevs[net]
	if d == nil {
		d = &node.NetDev{}
		c.NetDevs[net] = d
	}
	return d
}

func ipmi(c *node.Conf) *node.Ipmi {
	if c.Ipmi == nil {
		c.Ipmi = &node.Ipmi{}
	}
	return c.Ipmi
}

func kernel(c *node.Conf) *node.Kernel {
	if c.Kernel == nil {
		c.Kernel = &node.Kernel{}
	}
	return c.Kernel
}

var scalarFields = []scalarField{
	{"comment", "", "a comment", func(c *node.Conf, _ string) *string { return &c.Comment }, false},
	{"cluster", "c", "cluster name", func(c *node.Conf, _ string) *string { return &c.ClusterName }, false},
	{"image", "C", "image name", func(c *node.Conf, _ string) *string { return &c.ImageName }, false},
	{"ipxe", "", "iPXE template name", func(c *node.Conf, _ string) *string { return &c.IpxeTemplate }, false},
	{"kernelversion", "K", "kernel version to boot (default: the image's newest)", func(c *node.Conf, _ string) *string { return &kernel(c).Version }, false},
	{"init", "i", "init to exec after wwinit (default /sbin/init)", func(c *node.Conf, _ string) *string { return &c.Init }, false},
	{"root", "", "root filesystem: initramfs or tmpfs", func(c *node.Conf, _ string) *string { return &c.Root }, false},
	{"asset", "", "asset key the node must present for its runtime overlay", func(c *node.Conf, _ string) *string { return &c.AssetKey }, false},
	{"primarynet", "p", "name of the primary network device", func(c *node.Conf, _ string) *string { return &c.PrimaryNetwork }, false},
	{"netdev", "N", "interface name on the node (eth0)", func(c *node.Conf, n string) *string { return &netdev(c, n).Device }, false},
	{"type", "T", "network device type (ethernet, infiniband)", func(c *node.Conf, n string) *string { return &netdev(c, n).Type }, false},
	{"hwaddr", "H", "MAC address", func(c *node.Conf, n string) *string { return &netdev(c, n).Hwaddr }, false},
	{"ipaddr", "I", "IPv4 address (steps by one per node for a range)", func(c *node.Conf, n string) *string { return &netdev(c, n).Ipaddr }, true},
	{"netmask", "M", "IPv4 netmask", func(c *node.Conf, n string) *string { return &netdev(c, n).Netmask }, false},
	{"gateway", "G", "IPv4 gateway", func(c *node.Conf, n string) *string { return &netdev(c, n).Gateway }, false},
	{"ipaddr6", "", "IPv6 address (steps by one per node for a range)", func(c *node.Conf, n string) *string { return &netdev(c, n).Ipaddr6 }, true},
	{"prefixlen6", "", "IPv6 prefix length", func(c *node.Conf, n string) *string { return &netdev(c, n).Prefixlen6 }, false},
	{"gateway6", "", "IPv6 gateway", func(c *node.Conf, n string) *string { return &netdev(c, n).Gateway6 }, false},
	{"mtu", "", "MTU", func(c *node.Conf, n string) *string { return &netdev(c, n).MTU }, false},
	{"ipmiaddr", "", "BMC IPv4 address (steps by one per node for a range)", func(c *node.Conf, _ string) *string { return &ipmi(c).Ipaddr }, true},
	{"ipmimask", "", "BMC netmask", func(c *node.Conf, _ string) *string { return &ipmi(c).Netmask }, false},
	{"ipmigateway", "", "BMC gateway", func(c *node.Conf, _ string) *string { return &ipmi(c).Gateway }, false},
	{"ipmiuser", "", "BMC user name", func(c *node.Conf, _ string) *string { return &ipmi(c).UserName }, false},
	{"ipmipass", "", "BMC password", func(c *node.Conf, _ string) *string { return &ipmi(c).Password }, false},
	{"ipmiport", "", "BMC port", func(c *node.Conf, _ string) *string { return &ipmi(c).Port }, false},
	{"ipmiinterface", "", "BMC interface (lan, lanplus)", func(c *node.Conf, _ string) *string { return &ipmi(c).Interface }, false},
	{"ipmiescapechar", "", "BMC serial-over-LAN escape character", func(c *node.Conf, _ string) *string { return &ipmi(c).EscapeChar }, false},
	{"ipmitemplate", "", "BMC configuration template", func(c *node.Conf, _ string) *string { return &ipmi(c).Template }, false},
}

type listField struct {
	name, short, usage string
	field              func(c *node.Conf) *[]string
}

var listFields = []listField{
	{"profile", "P", "profiles, in order (comma separated)", func(c *node.Conf) *[]string { return (*[]string)(&c.Profiles) }},
	{"system-overlays", "O", "system overlays (comma separated; ~NAME drops an inherited one)", func(c *node.Conf) *[]string { return (*[]string)(&c.SystemOverlay) }},
	{"runtime-overlays", "R", "runtime overlays (comma separated; ~NAME drops an inherited one)", func(c *node.Conf) *[]string { return (*[]string)(&c.RuntimeOverlay) }},
	{"kernelargs", "A", "kernel arguments (space separated; ~ARG drops an inherited one)", func(c *node.Conf) *[]string { return (*[]string)(&kernel(c).Args) }},
}

type boolField struct {
	name, usage string
	field       func(c *node.Conf, net string) **bool
}

var boolFields = []boolField{
	{"discoverable", "yes: the first unknown MAC that boots takes this node", func(c *node.Conf, _ string) **bool { return &c.Discoverable }},
	{"onboot", "yes: bring the network device up at boot", func(c *node.Conf, n string) **bool { return &netdev(c, n).OnBoot }},
	{"ipmiwrite", "yes: write the BMC settings at boot", func(c *node.Conf, _ string) **bool { return &ipmi(c).Write }},
}

// addSetFlags defines the value flags of add and set.
func (f *confFlags) addSetFlags(fs *pflag.FlagSet, forProfile bool) {
	fs.StringVarP(&f.netname, "netname", "n", "default", "network device the network flags apply to")
	for _, s := range scalarFields {
		fs.StringP(s.name, s.short, "", s.usage)
	}
	for _, l := range listFields {
		if forProfile && l.name == "profile" {
			continue
		}
		fs.StringP(l.name, l.short, "", l.usage)
	}
	for _, b := range boolFields {
		fs.String(b.name, "", b.usage+" (yes or no)")
	}
	fs.String("container", "", "old name of --image")
	fs.Lookup("container").Hidden = true
	fs.StringSlice("tagadd", nil, "add tags: key=value[,key=value]")
	fs.StringSlice("tagdel", nil, "delete tags by key")
	fs.StringSlice("nettagadd", nil, "add tags to the network device: key=value")
	fs.StringSlice("nettagdel", nil, "delete tags of the network device by key")
	fs.StringSlice("ipmitagadd", nil, "add tags to the BMC: key=value")
	fs.StringSlice("ipmitagdel", nil, "delete tags of the BMC by key")
	fs.Bool("netdel", false, "delete the network device named by --netname")
}

// apply writes every flag the user gave into c; index is the node's
// position in a range, for stepping IP addresses.
func (f *confFlags) apply(fs *pflag.FlagSet, c *node.Conf, index int) error {
	for _, s := range scalarFields {
		name := s.name
		if name == "image" && !fs.Changed("image") && fs.Changed("container") {
			name = "container"
		}
		if !fs.Changed(name) {
			continue
		}
		v, _ := fs.GetString(name)
		if s.step && v != "" {
			var err error
			if v, err = node.StepIP(v, index); err != nil {
				return fmt.Errorf("--%s: %w", s.name, err)
			}
		}
		*s.field(c, f.netname) = v
	}
	for _, l := range listFields {
		if fs.Lookup(l.name) == nil || !fs.Changed(l.name) {
			continue
		}
		v, _ := fs.GetString(l.name)
		sep := func(r rune) bool { return r == ',' }
		if l.name == "kernelargs" {
			sep = func(r rune) bool { return r == ' ' }
		}
		*l.field(c) = strings.FieldsFunc(v, sep)
	}
	for _, b := range boolFields {
		if !fs.Changed(b.name) {
			continue
		}
		v, _ := fs.GetString(b.name)
		val, err := parseYesNo(v)
		if err != nil {
			return fmt.Errorf("--%s: %w", b.name, err)
		}
		*b.field(c, f.netname) = &val
	}
	tagOps := []struct {
		add, del string
		tags     func() *map[string]string
	}{
		{"tagadd", "tagdel", func() *map[string]string { return &c.Tags }},
		{"nettagadd", "nettagdel", func() *map[string]string { return &netdev(c, f.netname).Tags }},
		{"ipmitagadd", "ipmitagdel", func() *map[string]string { return &ipmi(c).Tags }},
	}
	for _, op := range tagOps {
		if fs.Changed(op.add) {
			kvs, _ := fs.GetStringSlice(op.add)
			tags := op.tags()
			for _, kv := range kvs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--%s: %q is not key=value", op.add, kv)
				}
				if *tags == nil {
					*tags = map[string]string{}
				}
				(*tags)[k] = v
			}
		}
		if fs.Changed(op.del) {
			keys, _ := fs.GetStringSlice(op.del)
			tags := op.tags()
			for _, k := range keys {
				delete(*tags, k)
			}
		}
	}
	if del, _ := fs.GetBool("netdel"); del {
		if _, ok := c.NetDevs[f.netname]; !ok {
			return fmt.Errorf("--netdel: network device %q does not exist", f.netname)
		}
		delete(c.NetDevs, f.netname)
	}
	return nil
}

// changedAny reports whether the user gave any value flag.
func changedAny(fs *pflag.FlagSet) bool {
	any := false
	fs.Visit(func(fl *pflag.Flag) {
		if fl.Name != "netname" && fl.Name != "yes" {
			any = true
		}
	})
	return any
}

func parseYesNo(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "y", "true", "1", "on":
		return true, nil
	case "no", "n", "false", "0", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not yes or no", s)
}

// addUnsetFlags defines `unset`'s flags: one boolean per field.
func addUnsetFlags(cmd *cobra.Command, netname *string, forProfile bool) {
	fs := cmd.Flags()
	fs.StringVarP(netname, "netname", "n", "default", "network device the network flags apply to")
	for _, s := range scalarFields {
		fs.BoolP(s.name, s.short, false, "clear: "+s.usage)
	}
	for _, l := range listFields {
		if forProfile && l.name == "profile" {
			continue
		}
		fs.BoolP(l.name, l.short, false, "clear: "+l.usage)
	}
	for _, b := range boolFields {
		fs.Bool(b.name, false, "clear: "+b.usage)
	}
	fs.Bool("tags", false, "clear all tags")
	fs.Bool("ipmi", false, "clear all BMC settings")
	fs.Bool("netdevs", false, "clear all network devices")
}

// unset clears the fields whose flags were given.
func unset(fs *pflag.FlagSet, c *node.Conf, netname string) {
	on := func(name string) bool { v, _ := fs.GetBool(name); return fs.Lookup(name) != nil && v }
	for _, s := range scalarFields {
		if on(s.name) {
			*s.field(c, netname) = ""
		}
	}
	for _, l := range listFields {
		if on(l.name) {
			*l.field(c) = nil
		}
	}
	for _, b := range boolFields {
		if on(b.name) {
			*b.field(c, netname) = nil
		}
	}
	if on("tags") {
		c.Tags = nil
	}
	if on("ipmi") {
		c.Ipmi = nil
	}
	if on("netdevs") {
		c.NetDevs = nil
	}
	prune(c)
}

// prune drops parents that unset left empty, so nodes.conf stays tidy.
func prune(c *node.Conf) {
	for name, d := range c.NetDevs {
		if d == nil || (d.Type+d.Device+d.Hwaddr+d.Ipaddr+d.Netmask+d.Gateway+d.Ipaddr6+d.Prefixlen6+d.Gateway6+d.MTU == "" && d.OnBoot == nil && len(d.Tags) == 0 && len(d.Extra) == 0) {
			delete(c.NetDevs, name)
		}
	}
	if k := c.Kernel; k != nil && k.Version == "" && len(k.Args) == 0 && len(k.Extra) == 0 {
		c.Kernel = nil
	}
	if i := c.Ipmi; i != nil && i.Ipaddr+i.Netmask+i.Gateway+i.UserName+i.Password+i.Port+i.Interface+i.EscapeChar+i.Template == "" && i.Write == nil && len(i.Tags) == 0 && len(i.Extra) == 0 {
		c.Ipmi = nil
	}
}
