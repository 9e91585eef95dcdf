package overlay

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// Cluster is what templates know about the controller and the cluster, in
// upstream Warewulf's names: the top level of every template's data except
// the node's own fields.
type Cluster struct {
	BuildHost     string
	BuildTime     string // "01-02-2006 15:04:05 MST" (not a cache input)
	BuildTimeUnix string
	Ipaddr        string
	IpCIDR        string
	Netmask       string
	Network       string
	NetworkCIDR   string
	Ipaddr6       string
	PrefixLen6    string
	IpCIDR6       string
	Network6      string
	NetworkCIDR6  string
	Ipv6          bool
	Fqdn          string
	Dhcp          DhcpData
	Nfs           NfsData
	Ssh           SshData
	Warewulf      WarewulfData
	Tftp          TftpData
	Paths         PathsData
	// ClusterKey is the public half of the controller's key for logging in
	// to nodes (KEYDIR/cluster.pub, made by `wwctl configure ssh`), or "".
	// A project addition.
	ClusterKey string
}

// WarewulfData is warewulf.conf's `warewulf:` section.
type WarewulfData struct {
	Port              int
	TLSPort           int
	Secure            bool
	SecureFiles       bool
	TLSEnabled        bool
	UpdateInterval    int
	AutobuildOverlays bool
	EnableHostOverlay bool
	GrubBoot          bool
	Syslog            bool
	SystemdName       string
}

// DhcpData is the `dhcp:` section.
type DhcpData struct {
	Enabled     bool
	Template    string
	RangeStart  string
	RangeEnd    string
	Range6Start string
	Range6End   string
	SystemdName string
	// Project additions: who answers DHCP (builtin, dnsmasq or dhcpd),
	// where (`interfaces`), whether as proxy DHCP, and whether a dnsmasq
	// config serves TFTP itself (`dhcp: tftp`).
	Server     string
	Interfaces []string
	Proxy      bool
	Tftp       bool
}

// TftpData is the `tftp:` section.
type TftpData struct {
	Enabled      bool
	TftpRoot     string
	SystemdName  string
	IpxeBinaries map[string]string
}

// NfsData is the `nfs:` section.
type NfsData struct {
	Enabled         bool
	ExportsExtended []*NfsExport
	SystemdName     string
}

// NfsExport is one exported path.
type NfsExport struct {
	Path          string
	ExportOptions string
	MountOptions  string
	Mount         bool
}

// SshData is the `ssh:` section.
type SshData struct {
	KeyTypes []string
}

// PathsData is the `paths:` section as upstream names it. Sysconfdir is the
// system's configuration directory (/etc): warewulf.conf and nodes.conf
// live in Sysconfdir/warewulf.
type PathsData struct {
	Bindir         string
	Sysconfdir     string
	Localstatedir  string
	Cachedir       string
	Ipxesource     string
	Srvdir         string
	Firewallddir   string
	Systemddir     string
	Datadir        string
	WWOverlaydir   string
	WWChrootdir    string
	WWProvisiondir string
	WWClientdir    string
	WWFilesdir     string
}

func newCluster(cfg *config.Config, buildHost string) Cluster {
	c := Cluster{
		BuildHost: buildHost,
		Ipaddr:    cfg.Ipaddr,
		Netmask:   cfg.Netmask,
		Network:   cfg.Network,
		Fqdn:      cfg.Fqdn,
	}
	// ipaddr may carry its prefix (192.168.0.1/24), as upstream allows.
	if ip, n, err := net.ParseCIDR(c.Ipaddr); err == nil {
		c.Ipaddr = ip.String()
		if c.Network == "" {
			c.Network = n.IP.String()
		}
		if c.Netmask == "" {
			c.Netmask = net.IP(n.Mask).String()
		}
	}
	if ip, mask := net.ParseIP(c.Ipaddr).To4(), net.ParseIP(c.Netmask).To4(); ip != nil && mask != nil {
		c.IpCIDR = (&net.IPNet{IP: ip, Mask: net.IPMask(mask)}).String()
		if nw := net.ParseIP(c.Network).To4(); nw != nil {
			c.NetworkCIDR = (&net.IPNet{IP: nw, Mask: net.IPMask(mask)}).String()
		}
	}
	c.Ipaddr6 = cfg.Ipaddr6
	c.PrefixLen6 = cfg.PrefixLen6
	if ip, n, err := net.ParseCIDR(c.Ipaddr6); err == nil {
		ones, _ := n.Mask.Size()
		c.Ipaddr6, c.PrefixLen6 = ip.String(), strconv.Itoa(ones)
	}
	if ip := net.ParseIP(c.Ipaddr6); ip != nil {
		if p, err := strconv.Atoi(c.PrefixLen6); err == nil && p >= 0 && p <= 128 {
			n := &net.IPNet{IP: ip, Mask: net.CIDRMask(p, 128)}
			c.IpCIDR6 = n.String()
			nw := &net.IPNet{IP: ip.Mask(n.Mask), Mask: n.Mask}
			c.Network6 = nw.IP.String()
			c.NetworkCIDR6 = nw.String()
			c.Ipv6 = true
		}
	}
	w := cfg.Warewulf
	secureFiles := w.Secure // upstream: `secure files` follows `secure` unless set
	if w.SecureFiles != nil {
		secureFiles = *w.SecureFiles
	}
	c.Warewulf = WarewulfData{
		Port:              w.Port,
		TLSPort:           w.TLSPort,
		Secure:            w.Secure,
		SecureFiles:       secureFiles,
		TLSEnabled:        w.TLS,
		UpdateInterval:    w.UpdateInterval,
		AutobuildOverlays: w.AutobuildOverlays,
		EnableHostOverlay: w.HostOverlay,
		GrubBoot:          w.GrubBoot,
		Syslog:            w.Syslog,
		SystemdName:       w.SystemdName,
	}
	d := cfg.DHCP
	c.Dhcp = DhcpData{Enabled: d.Enabled, Template: d.Template, RangeStart: d.RangeStart, RangeEnd: d.RangeEnd,
		Range6Start: d.Range6Start, Range6End: d.Range6End,
		SystemdName: d.SystemdName,
		Server:      d.Server, Interfaces: d.Interfaces, Proxy: d.Proxy, Tftp: d.TFTP}
	if c.Dhcp.SystemdName == "" {
		c.Dhcp.SystemdName = "dhcpd"
	}
	t := cfg.TFTP
	c.Tftp = TftpData{Enabled: t.Enabled, TftpRoot: t.TftpRoot, SystemdName: t.SystemdName, IpxeBinaries: t.IPXE}
	if c.Tftp.SystemdName == "" {
		c.Tftp.SystemdName = "tftp"
	}
	c.Nfs = NfsData{Enabled: cfg.NFS.Enabled, SystemdName: cfg.NFS.SystemdName}
	if c.Nfs.SystemdName == "" {
		c.Nfs.SystemdName = "nfsd"
	}
	for _, e := range cfg.NFS.ExportPaths {
		c.Nfs.ExportsExtended = append(c.Nfs.ExportsExtended, &NfsExport{Path: e.Path, ExportOptions: e.ExportOptions, MountOptions: e.MountOptions, Mount: e.Mount})
	}
	c.Ssh = SshData{KeyTypes: cfg.SSH.KeyTypes}
	p := cfg.Paths
	c.Paths = PathsData{
		Bindir:         p.Bindir,
		Sysconfdir:     filepath.Dir(filepath.Clean(cfg.SysconfDir())),
		Localstatedir:  cfg.StateDir(),
		Cachedir:       p.Cachedir,
		Ipxesource:     cfg.IpxeSourceDir(),
		Srvdir:         p.Srvdir,
		Firewallddir:   p.Firewallddir,
		Systemddir:     p.Systemddir,
		Datadir:        filepath.Dir(cfg.DataDir()),
		WWOverlaydir:   cfg.SiteOverlayDir(),
		WWChrootdir:    cfg.ImageStoreDir(),
		WWProvisiondir: cfg.ProvisionDir(),
		WWClientdir:    p.WWClientdir,
		WWFilesdir:     p.WWFilesdir,
	}
	if c.Paths.Srvdir == "" {
		c.Paths.Srvdir = "/srv"
	}
	if data, err := os.ReadFile(filepath.Join(cfg.KeyDir(), "cluster.pub")); err == nil {
		c.ClusterKey = string(data)
	}
	return c
}

// withTime sets the build time fields.
func (c Cluster) withTime(t time.Time) Cluster {
	c.BuildTime = t.Format("01-02-2006 15:04:05 MST")
	c.BuildTimeUnix = strconv.FormatInt(t.Unix(), 10)
	return c
}

// Data is the dot of every template: the cluster's fields, and the node's
// own fields at the top level (.Id, .NetDevs, ...) as methods, so that a
// render for no node in particular learns whether the template reads the
// node: such a template renders once for all nodes.
type Data struct {
	Cluster
	Overlay     string // the overlay being rendered
	BuildSource string // the template's path
	st          *renderState
}

// nodeData is the dot of a render for one node: Data's node methods as
// fields, filled once per node. Templates see the same names and values
// (TestNodeDataMatchesData), and text/template finds a field for much
// less than a method. Data, whose methods fail without a node, stays the
// dot of the render for no node in particular that sorts templates.
type nodeData struct {
	Cluster
	Overlay        string
	BuildSource    string
	ThisNode       *TNode
	Node           *TNode
	Id             string
	Hostname       string
	Comment        string
	ClusterName    string
	ImageName      string
	Container      string
	ContainerName  string
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
	Discoverable   WWbool
	AssetKey       string
	Profiles       []string
	st             *renderState
}

// AllNodes is every node, sorted by name.
func (d *nodeData) AllNodes() []*TNode {
	d.st.usedNodes = true
	return d.st.allViews()
}

// fill makes d the dot for the node st renders for.
func (d *nodeData) fill(base Cluster, st *renderState) {
	n := st.view()
	*d = nodeData{
		Cluster:        base,
		ThisNode:       n,
		Node:           st.flatNode(n),
		Id:             n.id,
		Hostname:       n.id,
		Comment:        n.Comment,
		ClusterName:    n.ClusterName,
		ImageName:      n.ImageName,
		Container:      n.ImageName,
		ContainerName:  n.ImageName,
		Ipxe:           n.Ipxe,
		RuntimeOverlay: n.RuntimeOverlay,
		SystemOverlay:  n.SystemOverlay,
		Kernel:         n.Kernel,
		Ipmi:           n.Ipmi,
		Init:           n.Init,
		Root:           n.Root,
		NetDevs:        st.flatNetDevs(n),
		Tags:           n.Tags,
		PrimaryNetDev:  n.PrimaryNetDev,
		Disks:          n.Disks,
		FileSystems:    n.FileSystems,
		Resources:      n.Resources,
		Discoverable:   n.Discoverable,
		AssetKey:       n.AssetKey,
		Profiles:       n.Profiles,
		st:             st,
	}
}

func (d *Data) node() (*TNode, error) {
	if d.st.node == nil {
		return nil, errNeedsNode
	}
	return d.st.view(), nil
}

// ThisNode is the node rendered for.
func (d *Data) ThisNode() (*TNode, error) { return d.node() }

// Node is the node too: upstream's data embeds the node as a field of
// that name, so `.Node.Tags.x` reads what `.Tags.x` does.
func (d *Data) Node() (*TNode, error) {
	n, err := d.node()
	if err != nil {
		return nil, err
	}
	return d.st.flatNode(n), nil
}

// AllNodes is every node, sorted by name.
func (d *Data) AllNodes() []*TNode {
	d.st.usedNodes = true
	return d.st.allViews()
}

// Id is the node's name; Hostname the same.
func (d *Data) Id() (string, error) {
	n, err := d.node()
	if err != nil {
		return "", err
	}
	return n.id, nil
}

func (d *Data) Hostname() (string, error) { return d.Id() }

func (d *Data) Comment() (string, error) {
	n, err := d.node()
	if err != nil {
		return "", err
	}
	return n.Comment, nil
}

func (d *Data) ClusterName() (string, error) {
	n, err := d.node()
	if err != nil {
		return "", err
	}
	return n.ClusterName, nil
}

func (d *Data) ImageName() (string, error) {
	n, err := d.node()
	if err != nil {
		return "", err
	}
	return n.ImageName, nil
}

// Container and ContainerName are the image name, by upstream's old names.
func (d *Data) Container() (string, error)     { return d.ImageName() }
func (d *Data) ContainerName() (string, error) { return d.ImageName() }

func (d *Data) Ipxe() (string, error) {
	n, err := d.node()
	if err != nil {
		return "", err
	}
	return n.Ipxe, nil
}

func (d *Data) RuntimeOverlay() ([]string, error) {
	n, err := d.node()
	if err != nil {
		return nil, err
	}
	return n.RuntimeOverlay, nil
}

func (d *Data) SystemOverlay() ([]string, error) {
	n, err := d.node()
	if err != nil {
		return nil, err
	}
	return n.SystemOverlay, nil
}

func (d *Data) Kernel() (*TKernel, error) {
	n, err := d.node()
	if err != nil {
		return nil, err
	}
	return n.Kernel, nil
}

func (d *Data) Ipmi() (*TIpmi, error) {
	n, err := d.node()
	if err != nil {
		return nil, err
	}
	return n.Ipmi, nil
}

func (d *Data) Init() (string, error) {
	n, err := d.node()
	if err != nil {
		return "", err
	}
	return n.Init, nil
}

func (d *Data) Root() (string, error) {
	n, err := d.node()
	if err != nil {
		return "", err
	}
	return n.Root, nil
}

// flatNode is n with the top level's .NetDevs, as upstream's embedded
// node has them.
func (st *renderState) flatNode(n *TNode) *TNode {
	c := *n
	c.NetDevs = st.flatNetDevs(n)
	return &c
}

// NetDevs is the node's network devices (Primary is false on each here, as
// upstream has it; .ThisNode.NetDevs knows the primary one).
func (d *Data) NetDevs() (map[string]*TNetDev, error) {
	n, err := d.node()
	if err != nil {
		return nil, err
	}
	return d.st.flatNetDevs(n), nil
}

func (d *Data) Tags() (map[string]string, error) {
	n, err := d.node()
	if err != nil {
		return nil, err
	}
	return n.Tags, nil
}

func (d *Data) PrimaryNetDev() (string, error) {
	n, err := d.node()
	if err != nil {
		return "", err
	}
	return n.PrimaryNetDev, nil
}

func (d *Data) Disks() (map[string]*TDisk, error) {
	n, err := d.node()
	if err != nil {
		return nil, err
	}
	return n.Disks, nil
}

func (d *Data) FileSystems() (map[string]*TFileSystem, error) {
	n, err := d.node()
	if err != nil {
		return nil, err
	}
	return n.FileSystems, nil
}

func (d *Data) Resources() (map[string]any, error) {
	n, err := d.node()
	if err != nil {
		return nil, err
	}
	return n.Resources, nil
}

func (d *Data) Discoverable() (WWbool, error) {
	n, err := d.node()
	if err != nil {
		return "", err
	}
	return n.Discoverable, nil
}

func (d *Data) AssetKey() (string, error) {
	n, err := d.node()
	if err != nil {
		return "", err
	}
	return n.AssetKey, nil
}

func (d *Data) Profiles() ([]string, error) {
	n, err := d.node()
	if err != nil {
		return nil, err
	}
	return n.Profiles, nil
}
