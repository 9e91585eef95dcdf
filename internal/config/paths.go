package config

import (
	"path/filepath"
)

// warewulfDir is upstream's PARENT/warewulf for sysconfdir, datadir,
// localstatedir and cachedir. A value that already names a warewulf
// folder (/etc/warewulf, as older configs and tools write it) is that
// folder: upstream would look in /etc/warewulf/warewulf, which no site has.
func (c *Config) warewulfDir(p string) string {
	p = filepath.Clean(c.abs(p))
	if filepath.Base(p) == "warewulf" {
		return p
	}
	return filepath.Join(p, "warewulf")
}

// abs resolves a configured path against the directory of warewulf.conf.
func (c *Config) abs(p string) string {
	if filepath.IsAbs(p) || c.file == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.file), p)
}

// SysconfDir holds nodes.conf, the iPXE templates and the DHCP templates:
// sysconfdir/warewulf as upstream has it, or the directory of a relocated
// warewulf.conf that names no sysconfdir.
func (c *Config) SysconfDir() string {
	if c.sysconfHere && c.file != "" {
		return filepath.Dir(c.file)
	}
	return c.warewulfDir(c.Paths.Sysconfdir)
}

// NodesConf is the node database.
func (c *Config) NodesConf() string { return filepath.Join(c.SysconfDir(), "nodes.conf") }

// IpxeTemplateDir holds the iPXE script templates (NAME.ipxe).
func (c *Config) IpxeTemplateDir() string { return filepath.Join(c.SysconfDir(), "ipxe") }

// GrubTemplate is the template of every node's grub.cfg (upstream's
// SYSCONFDIR/warewulf/grub/grub.cfg.ww).
func (c *Config) GrubTemplate() string { return filepath.Join(c.SysconfDir(), "grub", "grub.cfg.ww") }

// TemplateDir holds the templates of generated service configs (dhcp, hosts).
func (c *Config) TemplateDir() string { return c.SysconfDir() }

// DataDir is the read-only data the project ships: datadir/warewulf.
func (c *Config) DataDir() string { return c.warewulfDir(c.Paths.Datadir) }

// DistOverlayDir holds the overlays shipped with the project (read-only).
func (c *Config) DistOverlayDir() string { return filepath.Join(c.DataDir(), "overlays") }

// BMCTemplateDir holds the `ipmi template` files named without a path.
func (c *Config) BMCTemplateDir() string { return filepath.Join(c.DataDir(), "bmc") }

// SiteOverlayDir holds the site's own overlays; a site overlay shadows a
// shipped one of the same name.
func (c *Config) SiteOverlayDir() string { return c.abs(c.Paths.WWOverlaydir) }

// StateDir is the controller's mutable state: localstatedir/warewulf.
func (c *Config) StateDir() string { return c.warewulfDir(c.Paths.Localstatedir) }

// CacheDir is cachedir/warewulf (image layers).
func (c *Config) CacheDir() string { return c.warewulfDir(c.Paths.Cachedir) }

// RunDir holds the pidfile and other runtime files.
func (c *Config) RunDir() string { return c.abs(c.Paths.Rundir) }

// PidFile is where warewulfd writes its PID when not run by systemd.
func (c *Config) PidFile() string { return filepath.Join(c.RunDir(), "warewulfd.pid") }

// ImageStoreDir holds one directory per image.
func (c *Config) ImageStoreDir() string { return c.abs(c.Paths.WWChrootdir) }

// ImageDir is the directory of one image: its rootfs and metadata.
func (c *Config) ImageDir(name string) string { return filepath.Join(c.ImageStoreDir(), name) }

// ImageRootfs is the root filesystem of an image.
func (c *Config) ImageRootfs(name string) string { return filepath.Join(c.ImageDir(name), "rootfs") }

// ProvisionDir is the tree of built artifacts that warewulfd serves.
func (c *Config) ProvisionDir() string { return c.abs(c.Paths.WWProvisiondir) }

// ImageProvisionDir holds an image's built archive, kernel and kmods.
func (c *Config) ImageProvisionDir(name string) string {
	return filepath.Join(c.ProvisionDir(), "images", name)
}

// OverlayProvisionDir holds the built overlay archives of one node.
func (c *Config) OverlayProvisionDir(node string) string {
	return filepath.Join(c.ProvisionDir(), "overlays", node)
}

// IpxeSourceDir holds the iPXE binaries served over TFTP.
func (c *Config) IpxeSourceDir() string { return c.abs(c.Paths.IpxeSource) }

// TftpRoot is where `wwctl configure tftp` copies the iPXE binaries for an
// external TFTP server.
func (c *Config) TftpRoot() string { return c.abs(c.TFTP.TftpRoot) }

// KeyDir holds controller-side secrets: per-node ssh host keys and the
// cluster's own keys.
func (c *Config) KeyDir() string { return filepath.Join(c.SysconfDir(), "keys") }

// LeaseFile is where the built-in DHCP server persists its leases.
func (c *Config) LeaseFile() string { return filepath.Join(c.StateDir(), "dhcp.leases") }

// StatusFile is where warewulfd keeps what it last saw of each node, so
// `wwctl node status` survives a restart of the daemon.
func (c *Config) StatusFile() string { return filepath.Join(c.StateDir(), "node-status.json") }

// OverlaySharedDir holds the overlay archives many nodes share: the plain
// files of an overlay set and the templates that render the same for every
// node. Its name cannot be a node name.
func (c *Config) OverlaySharedDir() string {
	return filepath.Join(c.ProvisionDir(), "overlays", "_shared")
}

// DaemonLog is where `wwctl server start` sends warewulfd's log when no
// systemd runs it (systemd keeps it in the journal).
func (c *Config) DaemonLog() string { return filepath.Join(c.StateDir(), "warewulfd.log") }

// DHCPConfigFile is where `wwctl configure dhcp` writes the config of the
// external DHCP server (dhcp: server: dnsmasq or dhcpd): `dhcp: config
// file`, else where upstream's host overlay puts it.
func (c *Config) DHCPConfigFile() string {
	switch {
	case c.DHCP.ConfigFile != "":
		return c.abs(c.DHCP.ConfigFile)
	case c.DHCP.Server == "dhcpd":
		return "/etc/dhcp/dhcpd.conf"
	default:
		return "/etc/dnsmasq.d/ww4-hosts.conf"
	}
}

// RetiredDHCPTemplateDir held the dnsmasq and dhcpd config templates of
// earlier versions, which the host overlay's templates replace.
func (c *Config) RetiredDHCPTemplateDir() string { return filepath.Join(c.TemplateDir(), "dhcp") }

// FilesDir is what warewulfd serves under /files/ (`wwfilesdir`).
func (c *Config) FilesDir() string { return c.abs(c.Paths.WWFilesdir) }

// AuthFile holds the REST API's users and their bcrypt password hashes.
func (c *Config) AuthFile() string { return filepath.Join(c.SysconfDir(), "auth.conf") }

// TLSDir holds warewulfd's TLS key and certificates (upstream's
// SYSCONFDIR/warewulf/tls).
func (c *Config) TLSDir() string { return filepath.Join(c.SysconfDir(), "tls") }
