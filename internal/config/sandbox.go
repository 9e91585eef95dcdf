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
// (etc/, share/, state/, run/), so tests and the demo run anywhere, as any
// user. The iPXE binaries still come from the system (/usr/lib/ipxe). It
// refuses to overwrite an existing warewulf.conf and returns its path.
func WriteSandbox(dir string, o SandboxOptions) (string, error) {
	file := filepath.Join(dir, "warewulf.conf")
	if _, err := os.Stat(file); err == nil {
		return "", fmt.Errorf("%s already exists", file)
	}
	c := &Config{Ipaddr: o.Ipaddr, Netmask: o.Netmask}
	c.Warewulf.Port = o.Port
	c.Warewulf.Secure = true
	c.Warewulf.AutobuildOverlays = true
	c.DHCP.Enabled = true
	c.TFTP.Enabled = true
	c.Paths = PathsConf{
		Sysconfdir:     "etc",
		Datadir:        o.Datadir,
		Localstatedir:  "state",
		Rundir:         "run",
		WWOverlaydir:   "state/overlays",
		WWChrootdir:    "state/chroots",
		WWProvisiondir: "state/provision",
	}
	c.TFTP.TftpRoot = "tftp"
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return "", err
	}
	data, err := c.Marshal()
	if err != nil {
		return "", err
	}
	if err := safefile.WriteFile(file, data, 0o644); err != nil {
		return "", err
	}
	return file, nil
}
