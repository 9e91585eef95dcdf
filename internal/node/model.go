// Package node is the node database: nodes.conf in the Warewulf v4 shape,
// profiles merged into nodes, name ranges, validation, and a locked,
// atomic store.
package node

// DB is nodes.conf. Unknown top-level keys are kept in Extra.
type DB struct {
	Profiles map[string]*Conf `yaml:"nodeprofiles"`
	Nodes    map[string]*Conf `yaml:"nodes"`
	Extra    map[string]any   `yaml:",inline"`
}

// Conf is what a node or a profile sets. An empty string, a nil pointer or
// an empty list means "not set here", so a profile's value shows through.
// Every struct keeps the keys it does not know in Extra.
type Conf struct {
	Comment        string             `yaml:"comment,omitempty"`
	ClusterName    string             `yaml:"cluster name,omitempty"`
	ImageName      string             `yaml:"image name,omitempty"`
	IpxeTemplate   string             `yaml:"ipxe template,omitempty"`
	Kernel         *Kernel            `yaml:"kernel,omitempty"`
	Init           string             `yaml:"init,omitempty"`
	Root           string             `yaml:"root,omitempty"`
	AssetKey       string             `yaml:"asset key,omitempty"`
	Discoverable   *bool              `yaml:"discoverable,omitempty"`
	Profiles       List               `yaml:"profiles,omitempty"`
	PrimaryNetwork string             `yaml:"primary network,omitempty"`
	NetDevs        map[string]*NetDev `yaml:"network devices,omitempty"`
	Ipmi           *Ipmi              `yaml:"ipmi,omitempty"`
	SystemOverlay  List               `yaml:"system overlay,omitempty"`
	RuntimeOverlay List               `yaml:"runtime overlay,omitempty"`
	Tags           map[string]string  `yaml:"tags,omitempty"`
	Resources      map[string]any     `yaml:"resources,omitempty"`
	Disks          map[string]any     `yaml:"disks,omitempty"`
	FileSystems    map[string]any     `yaml:"filesystems,omitempty"`

	Extra map[string]any `yaml:",inline"`
}

// Kernel selects the kernel a node boots and its command line.
type Kernel struct {
	Version string         `yaml:"version,omitempty"`
	Args    Args           `yaml:"args,omitempty"`
	Extra   map[string]any `yaml:",inline"`
}

// NetDev is one network interface of a node.
type NetDev struct {
	Type       string            `yaml:"type,omitempty"`
	OnBoot     *bool             `yaml:"onboot,omitempty"`
	Device     string            `yaml:"device,omitempty"`
	Hwaddr     string            `yaml:"hwaddr,omitempty"`
	Ipaddr     string            `yaml:"ipaddr,omitempty"`
	Netmask    string            `yaml:"netmask,omitempty"`
	Gateway    string            `yaml:"gateway,omitempty"`
	Ipaddr6    string            `yaml:"ipaddr6,omitempty"`
	Prefixlen6 string            `yaml:"prefixlen6,omitempty"`
	Gateway6   string            `yaml:"gateway6,omitempty"`
	MTU        string            `yaml:"mtu,omitempty"`
	Tags       map[string]string `yaml:"tags,omitempty"`
	Extra      map[string]any    `yaml:",inline"`
}

// Ipmi is a node's baseboard management controller.
type Ipmi struct {
	Ipaddr     string            `yaml:"ipaddr,omitempty"`
	Netmask    string            `yaml:"netmask,omitempty"`
	Gateway    string            `yaml:"gateway,omitempty"`
	UserName   string            `yaml:"username,omitempty"`
	Password   string            `yaml:"password,omitempty"`
	Port       string            `yaml:"port,omitempty"`
	Interface  string            `yaml:"interface,omitempty"`
	EscapeChar string            `yaml:"escapechar,omitempty"`
	Write      *bool             `yaml:"write,omitempty"`
	Template   string            `yaml:"template,omitempty"`
	Tags       map[string]string `yaml:"tags,omitempty"`
	Extra      map[string]any    `yaml:",inline"`
}

// Node is a node's effective record: its profiles merged in order, then its
// own values. Source maps a field path (as in `wwctl node list --all`, for
// instance "network devices.default.ipaddr") to where its value came from:
// "profile:NAME" or "node".
type Node struct {
	Name string
	Conf
	Source map[string]string `yaml:"-" json:"-"`
}

// Bool reads an optional flag, with false for unset.
func Bool(b *bool) bool { return b != nil && *b }

// Primary returns the node's primary network device: the one named by
// `primary network`, else "default", else the first by name. It returns ""
// and nil when the node has no network devices.
func (n *Node) Primary() (string, *NetDev) {
	if d, ok := n.NetDevs[n.PrimaryNetwork]; ok {
		return n.PrimaryNetwork, d
	}
	if d, ok := n.NetDevs["default"]; ok {
		return "default", d
	}
	var first string
	for name := range n.NetDevs {
		if first == "" || name < first {
			first = name
		}
	}
	if first == "" {
		return "", nil
	}
	return first, n.NetDevs[first]
}

// KernelArgs is the kernel command line, space separated.
func (n *Node) KernelArgs() string {
	if n.Kernel == nil {
		return ""
	}
	return joinSpace(n.Kernel.Args)
}

// Interface is one network device of a node, with the host name its
// address goes by: the node's name on its primary device, NODE-DEVICE on
// the others (as /etc/hosts, DHCP and the hosts overlay all name them).
type Interface struct {
	Name     string // the key under `network devices`
	Hostname string
	*NetDev
}

// Interfaces returns the node's network devices sorted by name.
func (n *Node) Interfaces() []Interface {
	primary, _ := n.Primary()
	out := make([]Interface, 0, len(n.NetDevs))
	for _, name := range sortedKeys(n.NetDevs) {
		d := n.NetDevs[name]
		if d == nil {
			continue
		}
		host := n.Name
		if name != primary {
			host = n.Name + "-" + name
		}
		out = append(out, Interface{Name: name, Hostname: host, NetDev: d})
	}
	return out
}
