package config

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// SandboxOptions are the settings a sandbox differs in from the defaults.
type SandboxOptions struct {
	Ipaddr, Netmask string
	Port            int
	// Datadir holds the shipped overlays (Datadir/overlays); default
	// /usr/share/warewulf. Pointing it at a source checkout runs the
	// project without installing it.
	Datadir string
}

// WriteSandbox writes DIR/warewulf.conf whose paths are all relative to DIR
// (etc/, share/, state/, run/), with upstream's meaning of them: nodes.conf
// in etc/warewulf/, the shipped overlays in share/warewulf/overlays (a link
// to Datadir/overlays). Tests and the demo so run anywhere, as any user.
// The iPXE binaries still come from the system (/usr/lib/ipxe). It refuses
// to overwrite an existing warewulf.conf and returns its path.
func WriteSandbox(dir string, o SandboxOptions) (string, error) {
	file := filepath.Join(dir, "warewulf.conf")
	if _, err := os.Stat(file); err == nil {
		return "", fmt.Errorf("%s already exists", file)
	}
	c := upstreamDefaults()
	c.Ipaddr, c.Netmask = o.Ipaddr, o.Netmask
	c.Warewulf.Port = o.Port
	c.Paths = PathsConf{
		// Named to the warewulf folder itself, which reads the same with
		// upstream's meaning (see warewulfDir) and with tools that take
		// sysconfdir as the folder of nodes.conf.
		Sysconfdir:     "etc/warewulf",
		Datadir:        "share/warewulf",
		Localstatedir:  "state",
		Cachedir:       "state/cache",
		Srvdir:         "state",
		Rundir:         "run",
		WWOverlaydir:   "state/overlays",
		WWChrootdir:    "state/chroots",
		WWProvisiondir: "state/provision",
	}
	if o.Datadir == "" {
		o.Datadir = "/usr/share/warewulf"
	}
	c.TFTP.TftpRoot = "tftp"
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return "", err
	}
	// network follows from ipaddr when left out: written, it would stay
	// behind when a site (or a merged-in warewulf.conf) moves ipaddr.
	c.Network = ""
	data, err := c.Marshal()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc", "warewulf"), 0o755); err != nil {
		return "", err
	}
	share := filepath.Join(dir, "share", "warewulf")
	if err := os.MkdirAll(share, 0o755); err != nil {
		return "", err
	}
	src, err := filepath.Abs(filepath.Join(o.Datadir, "overlays"))
	if err != nil {
		return "", err
	}
	if err := os.Symlink(src, filepath.Join(share, "overlays")); err != nil && !os.IsExist(err) {
		return "", err
	}
	if err := safefile.WriteFile(file, data, 0o644); err != nil {
		return "", err
	}
	return file, nil
}
