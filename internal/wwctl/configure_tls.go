package wwctl

import (
	"fmt"
	"net"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/tlskeys"
)

// newConfigureTLSCmd is upstream's `wwctl configure tls`: make the keys,
// or import or export them.
func newConfigureTLSCmd() *cobra.Command {
	var importDir, exportDir string
	var force bool
	cmd := &cobra.Command{
		Use:     "tls [--import DIR | --export DIR] [--force]",
		Aliases: []string{"keys", "key", "cert", "crt"},
		Short:   "Make warewulfd's TLS keys (a CA and a server certificate), or import or export them",
		Long: "Makes a CA and a server certificate for warewulf.conf's ipaddr, ipaddr6 and the host's " +
			"names in SYSCONFDIR/warewulf/tls (warewulf.key, warewulf.crt, ca.crt), unless they exist " +
			"(--force replaces them). --import DIR takes a site's own warewulf.key and warewulf.crt " +
			"(and ca.crt) from DIR; --export DIR copies them to DIR. Nodes trust ca.crt, which the " +
			"wwclient overlay carries: rebuild the overlays after a change.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			dir := cfg.TLSDir()
			out := cmd.OutOrStdout()
			switch {
			case importDir != "" && exportDir != "":
				return fmt.Errorf("--import and --export: choose one")
			case importDir != "":
				if err := tlskeys.Import(dir, importDir); err != nil {
					return err
				}
				fmt.Fprintf(out, "Imported keys from %s\n", importDir)
			case exportDir != "":
				if err := tlskeys.Export(dir, exportDir); err != nil {
					return err
				}
				fmt.Fprintf(out, "Exported keys to %s\n", exportDir)
				return nil
			default:
				if !cfg.Warewulf.TLS {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning: warewulf: tls is off in warewulf.conf: the keys are made, but warewulfd serves no HTTPS until it is on")
				}
				ips, names := tlsSubjects(cfg)
				made, err := tlskeys.Make(dir, ips, names, force)
				if err != nil {
					return err
				}
				if !made {
					fmt.Fprintf(out, "Keys already exist in %s (--force replaces them)\n", dir)
				}
			}
			desc, err := tlskeys.Describe(dir)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprint(w, desc)
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&importDir, "import", "", "import warewulf.key, warewulf.crt (and ca.crt) from this directory")
	cmd.Flags().StringVar(&exportDir, "export", "", "export the keys to this directory")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "make new keys even if they exist")
	return cmd
}

// tlsSubjects are the names nodes reach the controller by.
func tlsSubjects(cfg *config.Config) ([]net.IP, []string) {
	var ips []net.IP
	for _, s := range []string{cfg.Ipaddr, cfg.Ipaddr6, "127.0.0.1", "::1"} {
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		} else if ip, _, err := net.ParseCIDR(s); err == nil {
			ips = append(ips, ip)
		}
	}
	names := []string{}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	if cfg.Fqdn != "" {
		names = append(names, cfg.Fqdn)
	}
	return ips, append(names, "localhost")
}
