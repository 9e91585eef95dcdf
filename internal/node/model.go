// Package node is the node database: nodes.conf in the Warewulf v4 shape,
// profiles merged into nodes, name ranges, validation, and a locked,
// atomic store.
package node

import (
	"strconv"
	"strings"
)

// DB is nodes.conf. Unknown top-level keys are kept in Extra.
type DB struct {
	Profiles map[string]*Conf `yaml:"nodeprofiles"`
	Nodes    map[string]*Conf `yaml:"nodes"`
	Extra    map[string]any   `yaml:",inline"`
}

// Conf is what a node or a profile sets, with upstream's keys and in
// upstream's order. An empty string, a nil pointer or an empty list means
// "not set here", so a profile's value shows through. Every struct keeps
// the keys it does not know in Extra.
//
// Struct tags drive the command line and `node list -a`: lopt/sopt are the
// flag names of `node set`, name is upstream's field name where the Go
// name differs, type:"IP" marks addresses (0.0.0.0 clears them), scope says
// which --netname/--diskname/--partname/--fsname selects the record.
// usage is the flag's help; doc, where it says something else, is what
// `wwctl overlay info` shows for the field a template reads: upstream's
// short wording, without how a flag takes its value.
type Conf struct {
	Discoverable   WWbool                 `yaml:"discoverable,omitempty" lopt:"discoverable" sopt:"e" usage:"discoverable: the first unknown MAC that boots takes this node (true/false)" only:"node" doc:"discoverable in given network (true/false)"`
	AssetKey       string                 `yaml:"asset key,omitempty" lopt:"asset" usage:"the node's asset tag (key)" only:"node" doc:"the node's Asset tag (key)"`
	Profiles       List                   `yaml:"profiles,omitempty" lopt:"profile" sopt:"P" usage:"profiles, in order (comma separated)" doc:"the node's profile members (comma separated)"`
	Comment        string                 `yaml:"comment,omitempty" lopt:"comment" usage:"arbitrary string comment"`
	ClusterName    string                 `yaml:"cluster name,omitempty" lopt:"cluster" sopt:"c" usage:"cluster group"`
	ImageName      string                 `yaml:"image name,omitempty" lopt:"image" usage:"image name"`
	IpxeTemplate   string                 `yaml:"ipxe template,omitempty" lopt:"ipxe" usage:"the iPXE template name" name:"Ipxe"`
	RuntimeOverlay List                   `yaml:"runtime overlay,omitempty" lopt:"runtime-overlays" sopt:"R" usage:"runtime overlays (comma separated; ~NAME drops an inherited one)" doc:"the runtime overlay"`
	SystemOverlay  List                   `yaml:"system overlay,omitempty" lopt:"system-overlays" sopt:"O" usage:"system overlays (comma separated; ~NAME drops an inherited one)" doc:"the system overlay"`
	Kernel         *Kernel                `yaml:"kernel,omitempty"`
	Ipmi           *Ipmi                  `yaml:"ipmi,omitempty"`
	Init           string                 `yaml:"init,omitempty" lopt:"init" sopt:"i" usage:"the init process to boot the image"`
	Root           string                 `yaml:"root,omitempty" lopt:"root" usage:"the root filesystem (initramfs, tmpfs)" doc:"the rootfs"`
	NetDevs        map[string]*NetDev     `yaml:"network devices,omitempty"`
	Tags           map[string]string      `yaml:"tags,omitempty"`
	PrimaryNetwork string                 `yaml:"primary network,omitempty" lopt:"primarynet" sopt:"p" usage:"the primary network interface" name:"PrimaryNetDev"`
	Disks          map[string]*Disk       `yaml:"disks,omitempty"`
	FileSystems    map[string]*FileSystem `yaml:"filesystems,omitempty"`
	Resources      map[string]any         `yaml:"resources,omitempty"`

	Extra map[string]any `yaml:",inline"`
}

// Kernel selects the kernel a node boots and its command line.
type Kernel struct {
	Version string         `yaml:"version,omitempty" lopt:"kernelversion" usage:"kernel version"`
	Args    Args           `yaml:"args,omitempty" lopt:"kernelargs" sopt:"A" usage:"kernel arguments (comma separated; ~ARG drops an inherited one)" doc:"kernel arguments"`
	Extra   map[string]any `yaml:",inline"`
}

// Ipmi is a node's baseboard management controller.
type Ipmi struct {
	UserName   string            `yaml:"username,omitempty" lopt:"ipmiuser" usage:"the IPMI username"`
	Password   string            `yaml:"password,omitempty" lopt:"ipmipass" usage:"the IPMI password"`
	Ipaddr     string            `yaml:"ipaddr,omitempty" lopt:"ipmiaddr" usage:"the IPMI IP address" type:"IP"`
	Gateway    string            `yaml:"gateway,omitempty" lopt:"ipmigateway" usage:"the IPMI gateway" type:"IP"`
	Netmask    string            `yaml:"netmask,omitempty" lopt:"ipminetmask" usage:"the IPMI netmask" type:"IP"`
	Port       string            `yaml:"port,omitempty" lopt:"ipmiport" usage:"the IPMI port"`
	Interface  string            `yaml:"interface,omitempty" lopt:"ipmiinterface" usage:"the node's IPMI interface (default: lan)" doc:"the node's IPMI interface (defaults: 'lan')"`
	EscapeChar string            `yaml:"escapechar,omitempty" lopt:"ipmiescapechar" usage:"the IPMI escape character (default: ~)" doc:"the IPMI escape character (defaults: '~')"`
	Write      WWbool            `yaml:"write,omitempty" lopt:"ipmiwrite" usage:"write the IPMI configuration at boot (true/false)" doc:"writing of IPMI configuration (true/false)"`
	Template   string            `yaml:"template,omitempty" lopt:"ipmitemplate" usage:"template used for ipmi commands" doc:"template used for ipmi command"`
	Tags       map[string]string `yaml:"tags,omitempty"`
	Extra      map[string]any    `yaml:",inline"`
}

// NetDev is one network interface of a node.
type NetDev struct {
	Type       string            `yaml:"type,omitempty" lopt:"type" sopt:"T" usage:"device type of the network" scope:"net" doc:"device type of given network"`
	OnBoot     WWbool            `yaml:"onboot,omitempty" lopt:"onboot" usage:"bring the network device up at boot (true/false)" scope:"net" doc:"network device (true/false)"`
	Device     string            `yaml:"device,omitempty" lopt:"netdev" sopt:"N" usage:"the device of the network (eth0)" scope:"net" doc:"the device for given network"`
	Hwaddr     string            `yaml:"hwaddr,omitempty" lopt:"hwaddr" sopt:"H" usage:"the device's MAC address" scope:"net" type:"MAC" doc:"the device's HW address for given network"`
	Ipaddr     string            `yaml:"ipaddr,omitempty" lopt:"ipaddr" sopt:"I" usage:"IPv4 address in the network (steps by one per node for a range)" scope:"net" type:"IP" doc:"IPv4 address in given network"`
	Netmask    string            `yaml:"netmask,omitempty" lopt:"netmask" sopt:"M" usage:"the network's netmask" scope:"net" type:"IP"`
	Gateway    string            `yaml:"gateway,omitempty" lopt:"gateway" sopt:"G" usage:"the node's IPv4 gateway" scope:"net" type:"IP" doc:"the node's IPv4 network device gateway"`
	Ipaddr6    string            `yaml:"ipaddr6,omitempty" lopt:"ipaddr6" usage:"IPv6 address in the network" scope:"net" type:"IP" doc:"IPv6 address in given network"`
	Prefixlen6 string            `yaml:"prefixlen6,omitempty" lopt:"prefixlen6" usage:"the network's IPv6 prefix length" scope:"net" type:"uint" name:"PrefixLen6"`
	Gateway6   string            `yaml:"gateway6,omitempty" lopt:"gateway6" usage:"the node's IPv6 gateway" scope:"net" type:"IP" doc:"the node's IPv6 network device gateway"`
	MTU        string            `yaml:"mtu,omitempty" lopt:"mtu" usage:"the MTU" scope:"net" type:"uint"`
	Tags       map[string]string `yaml:"tags,omitempty"`
	Extra      map[string]any    `yaml:",inline"`
}

// Disk is a block device to partition, keyed by its path (/dev/vda).
type Disk struct {
	WipeTable  *bool                 `yaml:"wipe_table,omitempty" lopt:"diskwipe" usage:"wipe the partition table" scope:"disk" doc:"whether or not the partition tables shall be wiped"`
	Partitions map[string]*Partition `yaml:"partitions,omitempty"`
	Extra      map[string]any        `yaml:",inline"`
}

// Partition is one partition of a disk, keyed by its label.
type Partition struct {
	Number             string         `yaml:"number,omitempty" lopt:"partnumber" usage:"the partition number (default: the next free one)" scope:"disk,part" type:"uint" doc:"the partition number (if not set, next free slot is used)"`
	SizeMiB            string         `yaml:"size_mib,omitempty" lopt:"partsize" usage:"the partition size in MiB (default: all that is left)" scope:"disk,part" type:"uint" doc:"the partition size (if not set, maximum possible size is used)"`
	StartMiB           string         `yaml:"start_mib,omitempty" type:"uint" doc:"the start of the partition"`
	TypeGuid           string         `yaml:"type_guid,omitempty" lopt:"parttype" usage:"the partition type GUID" scope:"disk,part"`
	Guid               string         `yaml:"guid,omitempty" doc:"the GPT unique partition GUID"`
	WipePartitionEntry *bool          `yaml:"wipe_partition_entry,omitempty" lopt:"partwipe" usage:"replace an existing partition that does not match" scope:"disk,part" doc:"if true, Ignition will clobber an existing partition if it does not match the config"`
	ShouldExist        *bool          `yaml:"should_exist,omitempty" lopt:"partcreate" usage:"create the partition if it does not exist" scope:"disk,part"`
	Resize             *bool          `yaml:"resize,omitempty" doc:"whether or not the existing partition should be resize"`
	Extra              map[string]any `yaml:",inline"`
}

// FileSystem is a filesystem on a block device, keyed by the device
// (/dev/disk/by-partlabel/scratch).
type FileSystem struct {
	Format         string         `yaml:"format,omitempty" lopt:"fsformat" usage:"format of the file system" scope:"fs"`
	Path           string         `yaml:"path,omitempty" lopt:"fspath" usage:"the mount point of the file system" scope:"fs"`
	WipeFileSystem *bool          `yaml:"wipe_filesystem,omitempty" lopt:"fswipe" usage:"wipe the file system at boot" scope:"fs" doc:"wipe file system at boot"`
	Label          string         `yaml:"label,omitempty" doc:"the label of the filesystem"`
	Uuid           string         `yaml:"uuid,omitempty" doc:"the uuid of the filesystem"`
	Options        []string       `yaml:"options,omitempty" doc:"any additional options to be passed to the format-specific mkfs utility"`
	MountOptions   string         `yaml:"mount_options,omitempty" doc:"any special options to be passed to the mount command"`
	Extra          map[string]any `yaml:",inline"`
}

// WWbool is an upstream boolean: kept as the text nodes.conf has it
// ("true", "false", "yes") so a rewrite keeps its type, read with Bool.
type WWbool string

// Bool reads the value, with false for unset or unreadable.
func (b WWbool) Bool() bool {
	v, ok := b.parse()
	return ok && v
}

// BoolDefaultTrue reads the value, with true for unset.
func (b WWbool) BoolDefaultTrue() bool {
	if b == "" {
		return true
	}
	v, ok := b.parse()
	return !ok || v
}

// IsSet reports whether the value says anything.
func (b WWbool) IsSet() bool { return b != "" }

func (b WWbool) parse() (bool, bool) {
	switch strings.ToLower(string(b)) {
	case "yes", "y", "on":
		return true, true
	case "no", "n", "off", "":
		return false, true
	}
	v, err := strconv.ParseBool(string(b))
	return v, err == nil
}

// ParseWWbool turns a command-line value into the stored form: "true" or
// "false" (yes/no accepted), or an error naming the value.
func ParseWWbool(s string) (WWbool, error) {
	v, ok := WWbool(s).parse()
	if !ok || s == "" {
		return "", errNotBool(s)
	}
	return WWbool(strconv.FormatBool(v)), nil
}

// Node is a node's effective record: its profiles merged in order, then its
// own values. Source maps a field (upstream's name, as in `wwctl node list
// -a`: "NetDevs[default].Ipaddr") to where its value came from; only
// MergedFields and MergedProfile fill it (tracking costs a walk per layer).
type Node struct {
	Name string
	Conf
	Source map[string]string `yaml:"-" json:"-"`
	// fields is the merge's record of every set field, for `list -a`.
	fields []Field
}

// Bool reads an upstream boolean, with false for unset.
func Bool(b WWbool) bool { return b.Bool() }

// Primary returns the node's primary network device: the one named by
// `primary network`, else the first by name. It returns "" and nil when the
// node has no network devices.
func (n *Node) Primary() (string, *NetDev) {
	if d, ok := n.NetDevs[n.PrimaryNetwork]; ok {
		return n.PrimaryNetwork, d
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
