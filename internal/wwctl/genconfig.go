package wwctl

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/etc"
	"github.com/warewulf-ng/warewulf/internal/config"
)

func newGenconfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "genconfig",
		Short: "Print default configuration files, or write a self-contained sandbox",
	}
	for _, name := range []string{"warewulf.conf", "nodes.conf"} {
		name := name
		cmd.AddCommand(&cobra.Command{
			Use:   name,
			Short: "Print the default " + name,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				data, err := etc.FS.ReadFile(name)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(data)
				return err
			},
		})
	}
	var ipaddr, netmask string
	var port int
	var datadir string
	sandbox := &cobra.Command{
		Use:   "sandbox DIR",
		Short: "Write a warewulf.conf whose every path lives under DIR, for a user without root",
		Long: "Writes DIR/warewulf.conf with relative paths, DIR/etc/warewulf/nodes.conf and the iPXE templates. " +
			"Point the tools at it with --config DIR/warewulf.conf or WW_CONFIG.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if datadir == "" {
				datadir = defaultDatadir()
			}
			file, err := config.WriteSandbox(args[0], config.SandboxOptions{Ipaddr: ipaddr, Netmask: netmask, Port: port, Datadir: datadir})
			if err != nil {
				return err
			}
			if err := copyEtc(filepath.Join(args[0], "etc", "warewulf")); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), file)
			return nil
		},
	}
	sandbox.Flags().StringVar(&ipaddr, "ipaddr", "", "controller address (default 192.168.200.1)")
	sandbox.Flags().StringVar(&netmask, "netmask", "", "controller netmask (default 255.255.255.0)")
	sandbox.Flags().IntVar(&port, "port", 0, "warewulfd HTTP port (default 9873)")
	sandbox.Flags().StringVar(&datadir, "datadir", "", "directory holding the shipped overlays/ (default: the source checkout wwctl was built in, else /usr/share/warewulf)")
	cmd.AddCommand(sandbox)
	return cmd
}

// copyEtc writes the shipped nodes.conf and templates under dir, keeping
// any file already there.
func copyEtc(dir string) error {
	return fs.WalkDir(etc.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." || strings.HasSuffix(p, ".go") || p == "warewulf.conf" {
			return err
		}
		dst := filepath.Join(dir, p)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if _, err := os.Stat(dst); err == nil {
			return nil
		}
		data, err := etc.FS.ReadFile(p)
		if err != nil {
			return err
		}
		perm := fs.FileMode(0o644)
		if p == "nodes.conf" { // asset keys and BMC passwords
			perm = 0o640
		}
		return os.WriteFile(dst, data, perm)
	})
}

// defaultDatadir finds the shipped overlays: beside a wwctl run from a
// source checkout (bin/wwctl next to overlays/), else the installed ones.
func defaultDatadir() string {
	exe, err := os.Executable()
	if err == nil {
		root := filepath.Dir(filepath.Dir(exe))
		if st, err := os.Stat(filepath.Join(root, "overlays")); err == nil && st.IsDir() {
			return root
		}
	}
	return config.Default().DataDir()
}
