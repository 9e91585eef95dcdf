package wwctl

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/controller"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
	"github.com/warewulf-ng/warewulf/internal/warewulfd"
)

type configureFlags struct {
	all         bool
	dryRun      bool
	noReload    bool
	hostsFile   string
	exportsFile string
	knownHosts  string
	keyTypes    []string // configure ssh --keytypes: the cluster key's types this run
}

func newConfigureCmd() *cobra.Command {
	var f configureFlags
	cmd := &cobra.Command{
		Use:   "configure [--all]",
		Short: "Configure the controller's services for the cluster (dhcp, hostfile, nfs, ssh, tftp)",
		Long: "Writes the controller-side configuration the cluster needs. With --all, runs every " +
			"service that warewulf.conf enables: dhcp (when dhcp: server is dnsmasq or dhcpd), hostfile, " +
			"nfs (when nfs: enabled), ssh, and tftp (when tftp: enabled).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !f.all {
				return cmd.Help()
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			steps := []func(*cobra.Command, *config.Config, *configureFlags) error{}
			if cfg.DHCP.Enabled && cfg.DHCP.Server != "builtin" {
				steps = append(steps, configureDHCP)
			}
			steps = append(steps, configureHostfile)
			if cfg.NFS.Enabled {
				steps = append(steps, configureNFS)
			}
			steps = append(steps, configureSSH)
			if cfg.TFTP.Enabled {
				steps = append(steps, configureTFTP)
			}
			for _, step := range steps {
				if err := step(cmd, cfg, &f); err != nil {
					return err
				}
			}
			return nil
		},
	}
	pf := cmd.PersistentFlags()
	cmd.Flags().BoolVarP(&f.all, "all", "a", false, "configure every enabled service")
	pf.BoolVar(&f.dryRun, "dry-run", false, "print what would be written, change nothing")
	pf.BoolVar(&f.noReload, "no-reload", false, "write the config but do not restart the service")
	pf.StringVar(&f.hostsFile, "hosts-file", "/etc/hosts", "hosts file that `configure hostfile` writes (the host overlay's etc/hosts.ww keeps its lines above \"# Do not edit after this line\")")
	pf.StringVar(&f.exportsFile, "exports-file", "/etc/exports", "exports file that `configure nfs` updates")
	pf.StringVar(&f.knownHosts, "known-hosts-file", controller.KnownHostsFile, "known_hosts file where `configure ssh` lists the nodes' host keys (\"\": none)")

	for _, sub := range []struct {
		use, short string
		run        func(*cobra.Command, *config.Config, *configureFlags) error
	}{
		{"dhcp", "Write the dnsmasq or ISC dhcpd config (dhcp: server) from the host overlay and restart it", configureDHCP},
		{"hostfile", "Write the controller's /etc/hosts from the host overlay (etc/hosts.ww)", configureHostfile},
		{"nfs", "Export the nfs: export paths from the host overlay's etc/exports.ww (in a marked block of /etc/exports)", configureNFS},
		{"ssh", "Create the cluster's root login key if missing; list the nodes' host keys in the controller's ssh_known_hosts (between markers)", configureSSH},
		{"tftp", "Copy the iPXE binaries (tftp: ipxe) into the TFTP root for an external TFTP server", configureTFTP},
		{"warewulfd", "Start warewulfd (restart it if it runs), as upstream's configure enables its service", configureWarewulfd},
	} {
		sub := sub
		c := &cobra.Command{
			Use:   sub.use,
			Short: sub.short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, err := loadConfig()
				if err != nil {
					return err
				}
				return sub.run(cmd, cfg, &f)
			},
		}
		// Upstream's per-service flags.
		switch sub.use {
		case "ssh":
			c.Flags().StringArrayVarP(&f.keyTypes, "keytypes", "t", nil, "key types of the cluster key, if it is made now (default: warewulf.conf's ssh: key types; the first is used)")
		case "tftp":
			c.Flags().BoolVarP(&f.dryRun, "show", "s", false, "upstream's name of --dry-run")
		}
		cmd.AddCommand(c)
	}
	cmd.AddCommand(newConfigureTLSCmd())
	return cmd
}

func loadNodes(cfg *config.Config) (*node.DB, error) { return node.Load(cfg.NodesConf()) }

// configureDHCP writes the host overlay's config of the DHCP server that
// `dhcp: server` names (etc/dnsmasq.d/ww4-hosts.conf.ww or
// etc/dhcp/dhcpd.conf.ww) and restarts it, as upstream does.
func configureDHCP(cmd *cobra.Command, cfg *config.Config, f *configureFlags) error {
	out := cmd.OutOrStdout()
	if !cfg.DHCP.Enabled {
		fmt.Fprintln(out, "dhcp: skipped: dhcp: enabled is false")
		return nil
	}
	tmpl, err := controller.DHCPTemplate(cfg)
	if err != nil {
		return err
	}
	db, err := loadNodes(cfg)
	if err != nil {
		return err
	}
	for _, w := range controller.RetiredDHCPFiles(cfg) {
		logrus.Warn(w)
	}
	data, err := controller.RenderHost(cfg, db, tmpl, nil)
	switch {
	case errors.Is(err, controller.ErrHostOverlayOff):
		// Upstream restarts the service all the same: the site writes
		// its config itself.
		fmt.Fprintf(out, "dhcp: %v: not writing %s\n", err, cfg.DHCPConfigFile())
	case err != nil:
		return err
	case data == nil:
		fmt.Fprintf(out, "dhcp: overlay %s, file %s called abort: nothing to write\n", controller.HostOverlay, tmpl)
		return nil
	default:
		if err := writeFile(out, f, "dhcp", cfg.DHCPConfigFile(), data); err != nil {
			return err
		}
		if cfg.DHCP.Server == "dnsmasq" {
			if err := writeDnsmasqListen(out, f, cfg, db); err != nil {
				return err
			}
		}
	}
	if f.dryRun {
		return nil
	}
	return reload(out, f, dhcpService(cfg))
}

// writeDnsmasqListen writes the host overlay's ww4-listen.conf (the
// addresses dnsmasq listens on) beside the dnsmasq config. A site host
// overlay without that file, or whose template aborts, writes none.
func writeDnsmasqListen(out io.Writer, f *configureFlags, cfg *config.Config, db *node.DB) error {
	o, err := overlay.Find(cfg, controller.HostOverlay)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(filepath.Join(o.Rootfs(), controller.DnsmasqListenTemplate)); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(out, "dhcp: overlay %s has no %s: not writing it\n", controller.HostOverlay, controller.DnsmasqListenTemplate)
		return nil
	}
	data, err := controller.RenderHost(cfg, db, controller.DnsmasqListenTemplate, nil)
	switch {
	case err != nil:
		return err
	case data == nil:
		return nil
	}
	file := filepath.Join(filepath.Dir(cfg.DHCPConfigFile()), strings.TrimSuffix(filepath.Base(controller.DnsmasqListenTemplate), overlay.TemplateSuffix))
	return writeFile(out, f, "dhcp", file, data)
}

// dhcpService is the service `configure dhcp` restarts: `dhcp: systemd
// name`, unless it is upstream's default dhcpd while dnsmasq answers.
func dhcpService(cfg *config.Config) string {
	service := cfg.DHCP.SystemdName
	if cfg.DHCP.Server == "dnsmasq" && (service == "" || service == "dhcpd") {
		return "dnsmasq"
	}
	if service == "" {
		return "isc-dhcp-server"
	}
	return service
}

func reload(out io.Writer, f *configureFlags, service string) error {
	if f.noReload {
		return nil
	}
	msg, err := controller.Reload(service)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, msg)
	return nil
}

// configureHostfile writes the host overlay's /etc/hosts: the lines
// above its "Do not edit after this line" are the file's own and are kept.
func configureHostfile(cmd *cobra.Command, cfg *config.Config, f *configureFlags) error {
	db, err := loadNodes(cfg)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	redirect := map[string]string{"/etc/hosts": f.hostsFile}
	data, err := renderHost(out, cfg, db, "hostfile", controller.HostsTemplate, redirect)
	if err != nil || data == nil {
		return err
	}
	return writeFile(out, f, "hostfile", f.hostsFile, controller.RemoveBlock(data))
}

// renderHost renders a template of the host overlay for the controller;
// nil data (and a line saying why) when there is nothing to write.
func renderHost(out io.Writer, cfg *config.Config, db *node.DB, what, tmpl string, redirect map[string]string) ([]byte, error) {
	data, err := controller.RenderHost(cfg, db, tmpl, redirect)
	if errors.Is(err, controller.ErrHostOverlayOff) {
		fmt.Fprintf(out, "%s: skipped: %v\n", what, err)
		return nil, nil
	}
	if err == nil && data == nil {
		fmt.Fprintf(out, "%s: overlay %s, file %s called abort: nothing to write\n", what, controller.HostOverlay, tmpl)
	}
	return data, err
}

func writeFile(out io.Writer, f *configureFlags, what, file string, data []byte) error {
	if f.dryRun {
		_, err := out.Write(data)
		return err
	}
	changed, err := controller.WriteFile(file, data)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(out, "%s: wrote %s\n", what, file)
	} else {
		fmt.Fprintf(out, "%s: %s is up to date\n", what, file)
	}
	return nil
}

func writeBlock(out io.Writer, f *configureFlags, what, file, block string) error {
	if f.dryRun {
		_, err := fmt.Fprintf(out, "%s\n%s%s\n", controller.BeginMarker, block, controller.EndMarker)
		return err
	}
	changed, err := controller.UpdateBlock(file, block)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(out, "%s: updated %s\n", what, file)
	} else {
		fmt.Fprintf(out, "%s: %s is up to date\n", what, file)
	}
	return nil
}

// configureNFS puts the host overlay's /etc/exports in the marked block of
// the exports file: upstream's template owns the whole file, but a site's
// own exports are kept.
func configureNFS(cmd *cobra.Command, cfg *config.Config, f *configureFlags) error {
	out := cmd.OutOrStdout()
	db, err := loadNodes(cfg)
	if err != nil {
		return err
	}
	data, err := renderHost(out, cfg, db, "nfs", controller.ExportsTemplate, nil)
	if err != nil || data == nil {
		return err
	}
	if err := writeBlock(out, f, "nfs", f.exportsFile, strings.TrimRight(string(data), "\n")+"\n"); err != nil || f.dryRun || f.noReload {
		return err
	}
	if _, err := exec.LookPath("exportfs"); err != nil {
		fmt.Fprintln(out, "nfs: exportfs not found: install an NFS server and run `exportfs -ra`")
		return nil
	}
	if msg, err := exec.Command("exportfs", "-ra").CombinedOutput(); err != nil {
		return fmt.Errorf("exportfs -ra: %v: %s", err, msg)
	}
	fmt.Fprintln(out, "nfs: exportfs -ra")
	return nil
}

func configureSSH(cmd *cobra.Command, cfg *config.Config, f *configureFlags) error {
	out := cmd.OutOrStdout()
	if f.dryRun {
		types := cfg.SSH.KeyTypes
		if len(f.keyTypes) > 0 {
			types = f.keyTypes
		}
		fmt.Fprintf(out, "ssh: would create %s if missing (type %s)\n", controller.ClusterKeyFile(cfg), types[0])
	} else {
		keyCfg := cfg
		if len(f.keyTypes) > 0 {
			c := *cfg
			c.SSH.KeyTypes = f.keyTypes
			keyCfg = &c
		}
		created, err := controller.EnsureSSHKeys(keyCfg)
		for _, c := range created {
			fmt.Fprintf(out, "ssh: created %s\n", c)
		}
		if err != nil {
			return err
		}
		if len(created) == 0 {
			fmt.Fprintf(out, "ssh: %s already exists\n", controller.ClusterKeyFile(cfg))
		}
	}
	if f.knownHosts == "" {
		return nil
	}
	db, err := loadNodes(cfg)
	if err != nil {
		return err
	}
	if f.dryRun {
		// Listing the keys makes those missing: not under --dry-run.
		fmt.Fprintf(out, "ssh: would list the host keys of %d nodes in %s\n", len(db.Nodes), f.knownHosts)
		return nil
	}
	block, err := controller.KnownHostsBlock(cfg, db)
	if err != nil {
		return err
	}
	return writeBlock(out, f, "ssh", f.knownHosts, block)
}

func configureTFTP(cmd *cobra.Command, cfg *config.Config, f *configureFlags) error {
	out := cmd.OutOrStdout()
	if f.dryRun {
		arches := make([]string, 0, len(cfg.TFTP.IPXE))
		for arch := range cfg.TFTP.IPXE {
			arches = append(arches, arch)
		}
		sort.Strings(arches)
		for _, arch := range arches {
			name := cfg.TFTP.IPXE[arch]
			found, _ := cfg.IpxeBinary(name)
			fmt.Fprintf(out, "tftp: would copy %s to %s (client arch %s)\n", filepath.Join(cfg.IpxeSourceDir(), found), filepath.Join(cfg.TftpRoot(), name), arch)
		}
		if cfg.Warewulf.GrubBoot {
			fmt.Fprintf(out, "tftp: would copy this controller's shim and GRUB to %s/warewulf and write grub.cfg there and in %s/grub (grubboot)\n", cfg.TftpRoot(), cfg.TftpRoot())
		}
		return nil
	}
	files, missing, err := controller.CopyIPXE(cfg)
	for _, file := range files {
		fmt.Fprintf(out, "tftp: wrote %s\n", file)
	}
	for _, file := range missing {
		logrus.Warnf("tftp: %s is missing: clients of that architecture cannot boot", file)
	}
	if err != nil || !cfg.Warewulf.GrubBoot {
		return err
	}
	files, missing, err = controller.CopyLoaders(cfg, warewulfd.GrubChain(cfg))
	for _, file := range files {
		fmt.Fprintf(out, "tftp: wrote %s\n", file)
	}
	for _, l := range missing {
		logrus.Warnf("tftp: this controller has no %s: such nodes get it from their image only through warewulfd's TFTP", l)
	}
	return err
}

// configureWarewulfd (re)starts the daemon so that it serves the
// configuration just written.
func configureWarewulfd(cmd *cobra.Command, cfg *config.Config, f *configureFlags) error {
	if f.dryRun {
		fmt.Fprintln(cmd.OutOrStdout(), "warewulfd: would (re)start")
		return nil
	}
	if err := (&warewulfd.Service{Cfg: cfg}).Restart(); err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), "warewulfd: started")
	return nil
}
