package wwctl

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/safefile"
	"github.com/warewulf-ng/warewulf/internal/upgrade"
)

func newUpgradeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Rewrite a nodes.conf or warewulf.conf of an earlier Warewulf 4 in the current shape",
	}
	cmd.AddCommand(newUpgradeNodesCmd(), newUpgradeConfigCmd())
	return cmd
}

func newUpgradeNodesCmd() *cobra.Command {
	var o upgrade.NodesOptions
	var in, out, conf string
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "Upgrade a nodes.conf (4.2-4.6) to the current shape",
		Long: "Reads --input-path (default: the nodes.conf in use), writes --output-path (default: the same; " +
			"- prints it; an existing file is kept as FILE-old). NFS exports the legacy warewulf.conf had nodes " +
			"mount become fstab resources of the default profile.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, cfgErr := loadConfig()
			if cfg != nil {
				o.ImageRootfs = cfg.ImageRootfs
				o.ProvisionDir = cfg.ProvisionDir()
			}
			if in == "" || out == "" {
				if cfgErr != nil {
					return cfgErr
				}
				if in == "" {
					in = cfg.NodesConf()
				}
				if out == "" {
					out = cfg.NodesConf()
				}
			}
			if conf == "" {
				conf = config.Path(global.config)
			}
			confData, err := os.ReadFile(conf)
			if err != nil {
				return fmt.Errorf("--with-warewulfconf: %w", err)
			}
			if o.Exports, err = upgrade.Exports(confData); err != nil {
				return fmt.Errorf("%s: %w", conf, err)
			}
			data, err := os.ReadFile(in)
			if err != nil {
				return err
			}
			upgraded, notes, err := upgrade.Nodes(data, o)
			if err != nil {
				return fmt.Errorf("%s: %w", in, err)
			}
			return writeUpgraded(cmd, out, upgraded, notes, 0o640)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.AddDefaults, "add-defaults", false, "give the default profile upstream's defaults and every node the default profile")
	f.BoolVar(&o.ReplaceOverlays, "replace-overlays", false, "replace the wwinit and generic overlays with the overlays they were split into")
	f.StringVarP(&in, "input-path", "i", "", "the legacy nodes.conf")
	f.StringVarP(&out, "output-path", "o", "", "where to write the upgraded nodes.conf (- for standard output)")
	f.StringVar(&conf, "with-warewulfconf", "", "the legacy warewulf.conf whose NFS mounts become fstab resources (default: the one in use)")
	_ = cmd.MarkFlagRequired("add-defaults")
	_ = cmd.MarkFlagRequired("replace-overlays")
	return cmd
}

func newUpgradeConfigCmd() *cobra.Command {
	var in, out string
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Upgrade a warewulf.conf (4.2-4.6) to the current shape",
		Long:  "Reads --input-path (default: the warewulf.conf in use), writes --output-path (default: the same; - prints it; an existing file is kept as FILE-old).",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if in == "" {
				in = config.Path(global.config)
			}
			if out == "" {
				out = config.Path(global.config)
			}
			data, err := os.ReadFile(in)
			if err != nil {
				return err
			}
			upgraded, notes, err := upgrade.Config(data)
			if err != nil {
				return fmt.Errorf("%s: %w", in, err)
			}
			if _, err := config.Parse(upgraded); err != nil {
				return fmt.Errorf("%s: upgraded, it does not load: %w", in, err)
			}
			return writeUpgraded(cmd, out, upgraded, notes, 0o644)
		},
	}
	cmd.Flags().StringVarP(&in, "input-path", "i", "", "the legacy warewulf.conf")
	cmd.Flags().StringVarP(&out, "output-path", "o", "", "where to write the upgraded warewulf.conf (- for standard output)")
	return cmd
}

// writeUpgraded prints what changed, keeps the file it replaces as
// FILE-old, and replaces it atomically.
func writeUpgraded(cmd *cobra.Command, out string, data []byte, notes []string, perm os.FileMode) error {
	for _, n := range notes {
		fmt.Fprintln(cmd.ErrOrStderr(), "wwctl: upgrade: "+n)
	}
	if out == "-" {
		_, err := cmd.OutOrStdout().Write(data)
		return err
	}
	if old, err := os.ReadFile(out); err == nil {
		if string(old) == string(data) {
			return nil
		}
		if st, err := os.Stat(out); err == nil {
			perm = st.Mode().Perm()
		}
		if err := safefile.WriteFile(out+"-old", old, perm); err != nil {
			return err
		}
	}
	return safefile.WriteFile(out, data, perm)
}
