// Package config loads warewulf.conf (the Warewulf v4 YAML shape plus a
// paths section), fills in defaults, validates it, and resolves every
// filesystem path the project uses. Nothing else in the project builds a
// path by hand: ask the Config.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"
)

// EnvVar names the environment variable that points every binary at a
// warewulf.conf; the --config flag takes precedence.
const EnvVar = "WW_CONFIG"

// UpstreamEnvVar is upstream's name for the same, read after EnvVar.
const UpstreamEnvVar = "WAREWULFCONF"

// DefaultFile is where warewulf.conf lives on an installed controller.
const DefaultFile = "/etc/warewulf/warewulf.conf"

// Config is warewulf.conf. Keys this version does not know are kept in Extra
// so that a rewrite never drops them.
type Config struct {
	Comment     string       `yaml:"comment,omitempty"`
	Ipaddr      string       `yaml:"ipaddr,omitempty"`
	Netmask     string       `yaml:"netmask,omitempty"`
	Network     string       `yaml:"network,omitempty"`
	Fqdn        string       `yaml:"fqdn,omitempty"`
	Ipaddr6     string       `yaml:"ipaddr6,omitempty"`
	PrefixLen6  string       `yaml:"prefixlen6,omitempty"`
	Warewulf    WarewulfConf `yaml:"warewulf"`
	API         APIConf      `yaml:"api,omitempty"`
	DHCP        DHCPConf     `yaml:"dhcp"`
	TFTP        TFTPConf     `yaml:"tftp"`
	NFS         NFSConf      `yaml:"nfs"`
	SSH         SSHConf      `yaml:"ssh"`
	ImageMounts []MountConf  `yaml:"image mounts,omitempty"`
	// ContainerMounts is the 4.5 name of `image mounts`, read and moved.
	ContainerMounts []MountConf  `yaml:"container mounts,omitempty"`
	Paths           PathsConf    `yaml:"paths"`
	WWClient        WWClientConf `yaml:"wwclient,omitempty"`
	Pacing          PacingConf   `yaml:"pacing,omitempty"` // pacing.go

	Extra map[string]any `yaml:",inline"`

	// file is the path this config was loaded from; relative paths in
	// Paths resolve against its directory.
	file string
	// sysconfHere: a relocated warewulf.conf without paths: sysconfdir
	// keeps nodes.conf beside itself.
	sysconfHere bool
	warnings    []string
}

// APIConf is the `api:` section (upstream's REST API).
type APIConf struct {
	Enabled        bool           `yaml:"enabled"`
	TLS            bool           `yaml:"tls,omitempty"`
	AllowedSubnets []string       `yaml:"allowed subnets,omitempty"`
	Extra          map[string]any `yaml:",inline"`
}

// WWClientConf is the `wwclient:` section: the node agent's settings.
type WWClientConf struct {
	// Port is the local port wwclient binds (0: any; upstream binds a
	// privileged one so the server can trust it).
	Port  int            `yaml:"port,omitempty"`
	Extra map[string]any `yaml:",inline"`
}

// WarewulfConf is the `warewulf:` section: the daemon's own settings.
type WarewulfConf struct {
	Port              int   `yaml:"port"`
	TLSPort           int   `yaml:"tls port,omitempty"`
	TLS               bool  `yaml:"tls,omitempty"`
	Secure            bool  `yaml:"secure"`
	SecureFiles       *bool `yaml:"secure files,omitempty"`
	UpdateInterval    int   `yaml:"update interval"`
	AutobuildOverlays bool  `yaml:"autobuild overlays"`
	HostOverlay       bool  `yaml:"host overlay"`
	// GrubBoot boots UEFI nodes through shim and GRUB instead of iPXE
	// (upstream's `grubboot`), for Secure Boot.
	GrubBoot      bool   `yaml:"grubboot,omitempty"`
	SystemdName   string `yaml:"systemd name,omitempty"`
	Syslog        bool   `yaml:"syslog"`
	ListenAddress string `yaml:"listen address,omitempty"`
	// ImageCompression is how `wwctl image build` compresses: gz or zstd.
	ImageCompression string `yaml:"image compression,omitempty"`
	// AnswerRouterSolicitations makes warewulfd answer IPv6 router
	// solicitations on the provisioning interfaces with an advertisement
	// that configures nothing, so iPXE need not wait for a router; unset
	// means true (see AnswersRouterSolicitations).
	AnswerRouterSolicitations *bool `yaml:"answer router solicitations,omitempty"`

	Extra map[string]any `yaml:",inline"`
}

// AnswersRouterSolicitations reports `answer router solicitations`, true
// unless set to false.
func (w WarewulfConf) AnswersRouterSolicitations() bool {
	return w.AnswerRouterSolicitations == nil || *w.AnswerRouterSolicitations
}

// DHCPConf is the `dhcp:` section.
type DHCPConf struct {
	Enabled bool `yaml:"enabled"`
	// Server chooses who answers DHCP: builtin (warewulfd), dnsmasq or dhcpd.
	Server string `yaml:"server,omitempty"`
	// Template is upstream's: `static` makes the host overlay's dnsmasq
	// and dhcpd configs list a fixed lease for every node device, `default`
	// leaves nodes to the range.
	Template    string   `yaml:"template,omitempty"`
	RangeStart  string   `yaml:"range start,omitempty"`
	RangeEnd    string   `yaml:"range end,omitempty"`
	Range6Start string   `yaml:"range6 start,omitempty"`
	Range6End   string   `yaml:"range6 end,omitempty"`
	Interfaces  []string `yaml:"interfaces,omitempty"`
	Proxy       bool     `yaml:"proxy,omitempty"`
	SystemdName string   `yaml:"systemd name,omitempty"`
	// Domain is the DNS domain handed to nodes; default: the node's cluster name.
	Domain string `yaml:"domain,omitempty"`
	// ConfigFile is where `wwctl configure dhcp` writes the dnsmasq or
	// dhcpd config; default /etc/dnsmasq.d/ww4-hosts.conf or /etc/dhcp/dhcpd.conf.
	ConfigFile string `yaml:"config file,omitempty"`
	// TFTP makes the host overlay's dnsmasq config serve the iPXE binaries
	// by TFTP itself (off: warewulfd or another TFTP server does).
	TFTP bool `yaml:"tftp,omitempty"`
	// LeaseTime is the lease length in seconds of the built-in server.
	LeaseTime int `yaml:"lease time,omitempty"`

	Extra map[string]any `yaml:",inline"`
}

// TFTPConf is the `tftp:` section. IPXE maps a PXE client architecture
// (as "00:00", "00:07", ...) to an iPXE binary in the iPXE source directory.
type TFTPConf struct {
	Enabled     bool              `yaml:"enabled"`
	TftpRoot    string            `yaml:"tftproot,omitempty"`
	SystemdName string            `yaml:"systemd name,omitempty"`
	IPXE        map[string]string `yaml:"ipxe,omitempty"`

	Extra map[string]any `yaml:",inline"`
}

// NFSConf is the `nfs:` section.
type NFSConf struct {
	Enabled     bool           `yaml:"enabled"`
	ExportPaths []NFSExport    `yaml:"export paths,omitempty"`
	SystemdName string         `yaml:"systemd name,omitempty"`
	Extra       map[string]any `yaml:",inline"`
}

// NFSExport is one exported path and how nodes mount it.
type NFSExport struct {
	Path          string `yaml:"path"`
	ExportOptions string `yaml:"export options,omitempty"`
	MountOptions  string `yaml:"mount options,omitempty"`
	Mount         bool   `yaml:"mount"`
}

// SSHConf is the `ssh:` section.
type SSHConf struct {
	KeyTypes []string       `yaml:"key types,omitempty"`
	Extra    map[string]any `yaml:",inline"`
}

// MountConf is a bind mount into an image for `wwctl image exec`.
type MountConf struct {
	Source   string `yaml:"source"`
	Dest     string `yaml:"dest,omitempty"`
	ReadOnly bool   `yaml:"readonly,omitempty"`
	// Copy copies the file into the image for the command instead of
	// bind mounting it.
	Copy    bool           `yaml:"copy,omitempty"`
	Options string         `yaml:"options,omitempty"`
	Extra   map[string]any `yaml:",inline"`
}

// PathsConf is where things live, with upstream's meaning: sysconfdir,
// datadir, localstatedir, cachedir and srvdir are parent folders (/etc,
// /usr/share, /var/lib, /var/cache, /srv) to which warewulf/ is appended;
// the ww* keys are full paths. Relative paths resolve against the
// directory of warewulf.conf, so a sandbox is one directory.
type PathsConf struct {
	Bindir         string `yaml:"bindir,omitempty"`
	Sysconfdir     string `yaml:"sysconfdir,omitempty"`
	Localstatedir  string `yaml:"localstatedir,omitempty"`
	Cachedir       string `yaml:"cachedir,omitempty"`
	IpxeSource     string `yaml:"ipxesource,omitempty"`
	Srvdir         string `yaml:"srvdir,omitempty"`
	Firewallddir   string `yaml:"firewallddir,omitempty"`
	Systemddir     string `yaml:"systemddir,omitempty"`
	Datadir        string `yaml:"datadir,omitempty"`
	WWOverlaydir   string `yaml:"wwoverlaydir,omitempty"`
	WWChrootdir    string `yaml:"wwchrootdir,omitempty"`
	WWProvisiondir string `yaml:"wwprovisiondir,omitempty"`
	WWClientdir    string `yaml:"wwclientdir,omitempty"`
	WWFilesdir     string `yaml:"wwfilesdir,omitempty"`
	// Rundir (this project's) is the directory of the pidfile itself.
	Rundir string         `yaml:"rundir,omitempty"`
	Extra  map[string]any `yaml:",inline"`
}

// Default returns the configuration of a stock controller.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	if c.Ipaddr == "" {
		c.Ipaddr = "192.168.200.1"
	}
	if c.Netmask == "" {
		c.Netmask = "255.255.255.0"
	}
	if c.Network == "" {
		if ip, mask := net.ParseIP(c.Ipaddr).To4(), net.ParseIP(c.Netmask).To4(); ip != nil && mask != nil {
			c.Network = ip.Mask(net.IPMask(mask)).String()
		}
	}
	if len(c.ContainerMounts) > 0 && len(c.ImageMounts) == 0 {
		c.ImageMounts, c.ContainerMounts = c.ContainerMounts, nil
	}
	w := &c.Warewulf
	if w.Port == 0 {
		w.Port = 9873
	}
	if w.UpdateInterval == 0 {
		w.UpdateInterval = 60
	}
	if w.ImageCompression == "" {
		w.ImageCompression = "gz"
	}
	if c.DHCP.Server == "" {
		c.DHCP.Server = "builtin"
	}
	if c.DHCP.LeaseTime == 0 {
		c.DHCP.LeaseTime = 3600
	}
	if c.DHCP.Template == "" {
		c.DHCP.Template = "default"
	}
	if c.TFTP.IPXE == nil {
		// Upstream's names; IpxeBinary finds Debian's files under them.
		c.TFTP.IPXE = map[string]string{
			"00:00": "undionly.kpxe",
			"00:07": "ipxe-snponly-x86_64.efi",
			"00:09": "ipxe-snponly-x86_64.efi",
			"00:0B": "arm64-efi/snponly.efi",
		}
	}
	if c.TFTP.TftpRoot == "" {
		c.TFTP.TftpRoot = "/srv/tftp"
	}
	if len(c.SSH.KeyTypes) == 0 {
		// Upstream's; rsa host keys take ~0.3 s each, made once per node
		// (in parallel) and kept in the key store.
		c.SSH.KeyTypes = []string{"ed25519", "ecdsa", "rsa"}
	}
	p := &c.Paths
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&p.Sysconfdir, "/etc")
	def(&p.Datadir, "/usr/share")
	def(&p.Localstatedir, "/var/lib")
	def(&p.Cachedir, "/var/cache")
	def(&p.Srvdir, "/srv")
	def(&p.Rundir, "/run/warewulf")
	def(&p.IpxeSource, "/usr/lib/ipxe")
	def(&p.WWOverlaydir, filepath.Join(p.Localstatedir, "warewulf", "overlays"))
	def(&p.WWChrootdir, filepath.Join(p.Localstatedir, "warewulf", "chroots"))
	def(&p.WWProvisiondir, filepath.Join(p.Srvdir, "warewulf"))
	def(&p.WWClientdir, "/warewulf")
	def(&p.WWFilesdir, filepath.Join(p.Localstatedir, "warewulf", "files"))
	def(&p.Bindir, "/usr/bin")
	def(&p.Systemddir, "/usr/lib/systemd/system")
	def(&p.Firewallddir, "/usr/lib/firewalld/services")
}

// upstreamDefaults are the values upstream Warewulf gives keys a
// warewulf.conf leaves out; they are set before decoding so that an
// absent key keeps upstream's meaning (secure, dhcp enabled, ...).
func upstreamDefaults() *Config {
	c := &Config{}
	c.Warewulf.Secure = true
	c.Warewulf.AutobuildOverlays = true
	c.Warewulf.HostOverlay = true
	c.Warewulf.TLSPort = 9874
	c.DHCP.Enabled = true
	c.TFTP.Enabled = true
	c.NFS.Enabled = true
	c.API.AllowedSubnets = []string{"127.0.0.0/8", "::1/128"}
	return c
}

// File returns the path this configuration was loaded from ("" for Default).
func (c *Config) File() string { return c.file }

// Path resolves the file to load: the flag value, else $WW_CONFIG, else the
// installed default.
func Path(flag string) string {
	if flag != "" {
		return flag
	}
	for _, v := range []string{EnvVar, UpstreamEnvVar} {
		if env := os.Getenv(v); env != "" {
			return env
		}
	}
	return DefaultFile
}

// Load reads, defaults and validates warewulf.conf at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("warewulf.conf: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c, err := parse(data, abs != DefaultFile, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.file = abs
	for _, w := range c.warnings {
		logrus.Warn(w)
	}
	return c, nil
}

// Parse decodes, defaults and validates a warewulf.conf document.
// Addresses left empty keep the built-in defaults (Load finds them from the
// machine's interfaces instead).
func Parse(data []byte) (*Config, error) { return parse(data, false, false) }

// parse decodes a document. A warewulf.conf that is not the installed one
// keeps its node database and state beside it unless `paths:` says
// otherwise, so pointing WW_CONFIG at a file is all a sandbox needs.
func parse(data []byte, relocated, detect bool) (*Config, error) {
	c := upstreamDefaults()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if relocated {
		p := &c.Paths
		if p.Sysconfdir == "" {
			c.sysconfHere = true
		}
		for _, d := range []struct {
			field *string
			value string
		}{{&p.Localstatedir, "state"}, {&p.Srvdir, "srv"}, {&p.Cachedir, "state/cache"}, {&p.Rundir, "run"}} {
			if *d.field == "" {
				*d.field = d.value
			}
		}
		if c.TFTP.TftpRoot == "" {
			c.TFTP.TftpRoot = "tftp"
		}
	}
	if err := c.resolveAddresses(detect); err != nil {
		return nil, err
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.warnings = append(c.warnings, c.unused()...)
	return c, nil
}

// Warnings lists the keys this version reads but does not act on, and the
// keys it does not know, one line each.
func (c *Config) Warnings() []string { return c.warnings }

// Validate reports the first bad value, naming its key.
func (c *Config) Validate() error {
	if net.ParseIP(c.Ipaddr).To4() == nil {
		return fmt.Errorf("ipaddr: %q is not an IPv4 address", c.Ipaddr)
	}
	if m := net.ParseIP(c.Netmask).To4(); m == nil || !isMask(m) {
		return fmt.Errorf("netmask: %q is not a netmask", c.Netmask)
	}
	if c.Network != "" && net.ParseIP(c.Network).To4() == nil {
		return fmt.Errorf("network: %q is not an IPv4 address", c.Network)
	}
	if c.Ipaddr6 != "" {
		if ip := net.ParseIP(c.Ipaddr6); ip == nil || ip.To4() != nil {
			return fmt.Errorf("ipaddr6: %q is not an IPv6 address", c.Ipaddr6)
		}
	}
	if c.PrefixLen6 != "" {
		if n, err := strconv.Atoi(c.PrefixLen6); err != nil || n < 1 || n > 128 {
			return fmt.Errorf("prefixlen6: %q is not a prefix length (1-128)", c.PrefixLen6)
		}
	}
	if c.Warewulf.TLSPort < 0 || c.Warewulf.TLSPort > 65535 {
		return fmt.Errorf("warewulf: tls port: %d is not a TCP port", c.Warewulf.TLSPort)
	}
	if c.WWClient.Port < 0 || c.WWClient.Port > 65535 {
		return fmt.Errorf("wwclient: port: %d is not a port", c.WWClient.Port)
	}
	for key, v := range map[string]string{"range6 start": c.DHCP.Range6Start, "range6 end": c.DHCP.Range6End} {
		if ip := net.ParseIP(v); v != "" && (ip == nil || ip.To4() != nil) {
			return fmt.Errorf("dhcp: %s: %q is not an IPv6 address", key, v)
		}
	}
	for _, s := range c.API.AllowedSubnets {
		if _, _, err := net.ParseCIDR(s); err != nil {
			return fmt.Errorf("api: allowed subnets: %q is not a CIDR subnet", s)
		}
	}
	if c.Warewulf.Port < 1 || c.Warewulf.Port > 65535 {
		return fmt.Errorf("warewulf: port: %d is not a TCP port", c.Warewulf.Port)
	}
	if c.Warewulf.UpdateInterval < 1 {
		return fmt.Errorf("warewulf: update interval: %d must be at least 1 second", c.Warewulf.UpdateInterval)
	}
	if l := c.Warewulf.ListenAddress; l != "" && net.ParseIP(l) == nil {
		return fmt.Errorf("warewulf: listen address: %q is not an IP address", l)
	}
	switch c.Warewulf.ImageCompression {
	case "gz", "zstd":
	default:
		return fmt.Errorf("warewulf: image compression: %q is not gz or zstd", c.Warewulf.ImageCompression)
	}
	switch c.DHCP.Server {
	case "builtin", "dnsmasq", "dhcpd":
	default:
		return fmt.Errorf("dhcp: server: %q is not builtin, dnsmasq or dhcpd", c.DHCP.Server)
	}
	if c.DHCP.LeaseTime < 60 {
		return fmt.Errorf("dhcp: lease time: %d must be at least 60 seconds", c.DHCP.LeaseTime)
	}
	for key, v := range map[string]string{"range start": c.DHCP.RangeStart, "range end": c.DHCP.RangeEnd} {
		if v != "" && net.ParseIP(v).To4() == nil {
			return fmt.Errorf("dhcp: %s: %q is not an IPv4 address", key, v)
		}
	}
	for arch, file := range c.TFTP.IPXE {
		if strings.Contains(file, "..") || filepath.IsAbs(file) {
			return fmt.Errorf("tftp: ipxe: %s: %q must be a relative name inside ipxesource", arch, file)
		}
	}
	for _, e := range c.NFS.ExportPaths {
		if !filepath.IsAbs(e.Path) {
			return fmt.Errorf("nfs: export paths: %q is not an absolute path", e.Path)
		}
	}
	for _, t := range c.SSH.KeyTypes {
		switch t {
		case "rsa", "dsa", "ecdsa", "ed25519":
		default:
			return fmt.Errorf("ssh: key types: %q is not rsa, dsa, ecdsa or ed25519", t)
		}
	}
	return c.Pacing.validate()
}

func isMask(m net.IP) bool {
	ones, bits := net.IPMask(m).Size()
	return bits != 0 || ones != 0
}

// Marshal renders the configuration as YAML.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
