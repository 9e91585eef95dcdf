package overlay

import (
	"net"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// The template view of a node: upstream Warewulf's node as its templates
// see it (net.IP addresses that print "<nil>" when unset, yes/no flags as
// strings with Bool methods, disks and file systems typed), built from the
// project's one node model. Sites' templates written for upstream render
// the same here.

// WWbool is an optional yes/no value kept as written ("" when unset).
type WWbool string

// Bool is the value, false when unset or not a boolean.
func (b WWbool) Bool() bool {
	v, ok := parseBool(string(b))
	return ok && v
}

// BoolDefaultTrue is the value, true when unset or not a boolean.
func (b WWbool) BoolDefaultTrue() bool {
	s := strings.ToLower(string(b))
	if isUnset(s) && s != "" {
		return false
	}
	v, ok := parseBool(s)
	return !ok || v
}

func (b WWbool) String() string { return string(b) }

func isUnset(s string) bool {
	switch strings.ToLower(s) {
	case "unset", "delete", "undef", "--", "nil", "0.0.0.0":
		return true
	}
	return false
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "yes":
		return true, true
	case "no":
		return false, true
	}
	v, err := strconv.ParseBool(s)
	return v, err == nil
}

func wwbool(b node.WWbool) WWbool {
	if !b.IsSet() {
		return ""
	}
	return WWbool(strconv.FormatBool(b.Bool()))
}

func boolP(b *bool) bool { return b != nil && *b }

// TNode is a node as templates see it (.ThisNode, each of .AllNodes).
type TNode struct {
	id             string
	Discoverable   WWbool
	AssetKey       string
	Profiles       []string
	Comment        string
	ClusterName    string
	ImageName      string
	Ipxe           string
	RuntimeOverlay []string
	SystemOverlay  []string
	Kernel         *TKernel
	Ipmi           *TIpmi
	Init           string
	Root           string
	NetDevs        map[string]*TNetDev
	Tags           map[string]string
	PrimaryNetDev  string
	Disks          map[string]*TDisk
	FileSystems    map[string]*TFileSystem
	Resources      map[string]any
}

// TKernel is the node's kernel.
type TKernel struct {
	Version string
	Args    []string
}

// TIpmi is the node's BMC.
type TIpmi struct {
	UserName   string
	Password   string
	Ipaddr     net.IP
	Gateway    net.IP
	Netmask    net.IP
	Port       string
	Interface  string
	EscapeChar string
	Write      WWbool
	Template   string
	Tags       map[string]string
}

// TNetDev is one network device.
type TNetDev struct {
	Type       string
	OnBoot     WWbool
	Device     string
	Hwaddr     string
	Ipaddr     net.IP
	Netmask    net.IP
	Gateway    net.IP
	Ipaddr6    net.IP
	PrefixLen6 string
	Gateway6   net.IP
	MTU        string
	Tags       map[string]string
	primary    bool
}

// Primary reports whether this is the node's primary device.
func (d *TNetDev) Primary() bool { return d.primary }

// IpCIDR is the IPv4 address with its prefix ("10.0.0.1/24"), or "".
func (d *TNetDev) IpCIDR() string {
	if d.Ipaddr == nil || d.Ipaddr.IsUnspecified() || d.Netmask == nil || d.Netmask.IsUnspecified() {
		return ""
	}
	return (&net.IPNet{IP: d.Ipaddr, Mask: net.IPMask(d.Netmask)}).String()
}

// IpCIDR6 is the IPv6 address with its prefix ("fd00::1/64"), or "".
func (d *TNetDev) IpCIDR6() string {
	if d.Ipaddr6 == nil || d.Ipaddr6.IsUnspecified() || d.Ipaddr6.To4() != nil {
		return ""
	}
	p, err := strconv.Atoi(d.PrefixLen6)
	if err != nil || p < 0 || p > 128 {
		return ""
	}
	return (&net.IPNet{IP: d.Ipaddr6, Mask: net.CIDRMask(p, 128)}).String()
}

// TDisk is a disk of the node (`disks:`).
type TDisk struct {
	id         string
	WipeTableP *bool                  `yaml:"wipe_table"`
	Partitions map[string]*TPartition `yaml:"partitions"`
}

// TPartition is a partition of a disk.
type TPartition struct {
	id                  string
	Number              string `yaml:"number"`
	SizeMiB             string `yaml:"size_mib"`
	StartMiB            string `yaml:"start_mib"`
	TypeGuid            string `yaml:"type_guid"`
	Guid                string `yaml:"guid"`
	WipePartitionEntryP *bool  `yaml:"wipe_partition_entry"`
	ShouldExistP        *bool  `yaml:"should_exist"`
	ResizeP             *bool  `yaml:"resize"`
}

// TFileSystem is a file system of the node (`filesystems:`).
type TFileSystem struct {
	id              string
	Format          string   `yaml:"format"`
	Path            string   `yaml:"path"`
	WipeFileSystemP *bool    `yaml:"wipe_filesystem"`
	Label           string   `yaml:"label"`
	Uuid            string   `yaml:"uuid"`
	Options         []string `yaml:"options"`
	MountOptions    string   `yaml:"mount_options"`
}

func (d *TDisk) Id() string                    { return d.id }
func (d *TDisk) WipeTable() bool               { return boolP(d.WipeTableP) }
func (p *TPartition) Id() string               { return p.id }
func (p *TPartition) WipePartitionEntry() bool { return boolP(p.WipePartitionEntryP) }
func (p *TPartition) ShouldExist() bool        { return boolP(p.ShouldExistP) }
func (p *TPartition) Resize() bool             { return boolP(p.ResizeP) }
func (f *TFileSystem) Id() string              { return f.id }
func (f *TFileSystem) WipeFileSystem() bool    { return boolP(f.WipeFileSystemP) }

// Id is the node's name.
func (n *TNode) Id() string { return n.id }

// ContainerName is the image name (upstream's old name for it).
func (n *TNode) ContainerName() string { return n.ImageName }

// DiskList is the disks sorted by device.
func (n *TNode) DiskList() []*TDisk {
	var out []*TDisk
	for _, k := range sortedMapKeys(n.Disks) {
		if d := n.Disks[k]; d != nil {
			out = append(out, d)
		}
	}
	return out
}

// FileSystemList is the file systems sorted by device.
func (n *TNode) FileSystemList() []*TFileSystem {
	var out []*TFileSystem
	for _, k := range sortedMapKeys(n.FileSystems) {
		if f := n.FileSystems[k]; f != nil {
			out = append(out, f)
		}
	}
	return out
}

// PartitionList is the partitions by number, then name; numbered first.
func (d *TDisk) PartitionList() []*TPartition {
	names := sortedMapKeys(d.Partitions)
	sort.SliceStable(names, func(i, j int) bool {
		ni, ei := strconv.Atoi(d.Partitions[names[i]].Number)
		nj, ej := strconv.Atoi(d.Partitions[names[j]].Number)
		switch {
		case ei == nil && ej == nil && ni != nj:
			return ni < nj
		case ei == nil && ej != nil:
			return true
		case ei != nil && ej == nil:
			return false
		}
		return names[i] < names[j]
	})
	var out []*TPartition
	for _, k := range names {
		if p := d.Partitions[k]; p != nil {
			out = append(out, p)
		}
	}
	return out
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func parseIP(s string) net.IP {
	if s == "" || isUnset(s) {
		return nil
	}
	if ip, _, err := net.ParseCIDR(s); err == nil {
		return ip
	}
	return net.ParseIP(s)
}

func nonNilTags(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// viewOf turns a merged node into its template view. Maps and pointers are
// never nil, as upstream expands them, so `.Ipmi.Tags.x` and `.Kernel.Args`
// work on any node.
func viewOf(n *node.Node) *TNode {
	t := &TNode{
		id:           n.Name,
		Discoverable: wwbool(n.Discoverable),
		// The asset key proves a node's identity to warewulfd: it is
		// never written into anything the server hands out.
		AssetKey:       "",
		Profiles:       []string(n.Profiles),
		Comment:        n.Comment,
		ClusterName:    n.ClusterName,
		ImageName:      n.ImageName,
		Ipxe:           n.IpxeTemplate,
		RuntimeOverlay: []string(n.RuntimeOverlay),
		SystemOverlay:  []string(n.SystemOverlay),
		Kernel:         &TKernel{},
		Ipmi:           &TIpmi{Tags: map[string]string{}},
		Init:           n.Init,
		Root:           n.Root,
		NetDevs:        map[string]*TNetDev{},
		Tags:           nonNilTags(n.Tags),
		PrimaryNetDev:  n.PrimaryNetwork,
		Resources:      n.Resources,
	}
	if k := n.Kernel; k != nil {
		t.Kernel.Version = k.Version
		t.Kernel.Args = []string(k.Args)
	}
	if i := n.Ipmi; i != nil {
		t.Ipmi = &TIpmi{UserName: i.UserName, Password: i.Password, Ipaddr: parseIP(i.Ipaddr), Gateway: parseIP(i.Gateway),
			Netmask: parseIP(i.Netmask), Port: i.Port, Interface: i.Interface, EscapeChar: i.EscapeChar,
			Write: wwbool(i.Write), Template: i.Template, Tags: nonNilTags(i.Tags)}
	}
	for name, d := range n.NetDevs {
		if d == nil {
			continue
		}
		t.NetDevs[name] = &TNetDev{Type: d.Type, OnBoot: wwbool(d.OnBoot), Device: d.Device, Hwaddr: d.Hwaddr,
			Ipaddr: parseIP(d.Ipaddr), Netmask: parseIP(d.Netmask), Gateway: parseIP(d.Gateway),
			Ipaddr6: parseIP(d.Ipaddr6), PrefixLen6: d.Prefixlen6, Gateway6: parseIP(d.Gateway6),
			MTU: d.MTU, Tags: nonNilTags(d.Tags)}
	}
	// The primary device: the one `primary network` names, else the first
	// by name (which then becomes the primary network).
	if d, ok := t.NetDevs[t.PrimaryNetDev]; ok {
		d.primary = true
	} else if keys := sortedMapKeys(t.NetDevs); len(keys) > 0 {
		t.NetDevs[keys[0]].primary = true
		t.PrimaryNetDev = keys[0]
	}
	// Most nodes have no disks or file systems: an empty map, as the YAML
	// round trip makes of nothing, without it.
	if len(n.Disks) == 0 {
		t.Disks = map[string]*TDisk{}
	} else {
		decodeInto(n.Disks, &t.Disks)
	}
	for id, d := range t.Disks {
		if d == nil {
			continue
		}
		d.id = id
		for pid, p := range d.Partitions {
			if p != nil {
				p.id = pid
			}
		}
	}
	if len(n.FileSystems) == 0 {
		t.FileSystems = map[string]*TFileSystem{}
	} else {
		decodeInto(n.FileSystems, &t.FileSystems)
	}
	for id, f := range t.FileSystems {
		if f != nil {
			f.id = id
		}
	}
	return t
}

// decodeInto types a free-form nodes.conf section (disks, filesystems).
// Validation reports bad values when nodes.conf is loaded; what does not
// decode here is left out.
func decodeInto(src any, dst any) {
	data, err := yaml.Marshal(src)
	if err == nil {
		_ = yaml.Unmarshal(data, dst)
	}
}

// flatNetDevs is .NetDevs at the top level of the data: upstream hands
// templates a copy of the node there that lost which device is primary,
// so Primary is false on every one (.ThisNode.NetDevs keeps it).
func flatNetDevs(m map[string]*TNetDev) map[string]*TNetDev {
	out := make(map[string]*TNetDev, len(m))
	for k, d := range m {
		c := *d
		c.primary = false
		out[k] = &c
	}
	return out
}

// NetDevsOf is a node's network devices as templates see them (upstream's
// types), for the iPXE and GRUB templates.
func NetDevsOf(n *node.Node) map[string]*TNetDev { return viewOf(n).NetDevs }
