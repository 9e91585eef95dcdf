package wwctl

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/internal/controller"
	"github.com/warewulf-ng/warewulf/internal/pssh"
)

func newSSHCmd() *cobra.Command {
	var o pssh.Options
	var sleep int
	cmd := &cobra.Command{
		Use:   "ssh [OPTIONS] NODE... -- COMMAND...",
		Short: "Run a command on nodes over ssh, in parallel",
		Long: "Run a non-interactive command on every node named (ranges: n[001-100]) through its primary\n" +
			"address, as root with the cluster key `wwctl configure ssh` made. Each line of output is\n" +
			"prefixed with its node; a summary of exit codes follows on stderr.\n" +
			"Without --, the first argument names the nodes and the rest is the command, as upstream.",
		Example: "  wwctl ssh 'n[001-004]' -- uptime\n  wwctl ssh n001,n002 -- 'systemctl is-active slurmd'\n  wwctl ssh --dryrun n001 -- hostname",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Fanout < 1 {
				return fmt.Errorf("--fanout %d is below 1", o.Fanout)
			}
			if sleep < 0 {
				return fmt.Errorf("--sleep %d is negative", sleep)
			}
			o.Sleep = time.Duration(sleep) * time.Second
			nodeArgs, command := args[:1], args[1:]
			if at := cmd.ArgsLenAtDash(); at > 0 {
				nodeArgs, command = args[:at], args[at:]
			}
			if len(command) == 0 {
				return errors.New("no command given after --")
			}
			o.Command = command
			list, err := names(nodeArgs)
			if err != nil {
				return err
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			db, err := readDB()
			if err != nil {
				return err
			}
			var hosts []pssh.Host
			var bad []pssh.Exit
			for _, name := range list {
				n, err := db.Merged(name)
				if err != nil {
					bad = append(bad, pssh.Exit{Node: name, Code: -1, Err: err})
					continue
				}
				_, dev := n.Primary()
				if dev == nil || dev.Ipaddr == "" {
					bad = append(bad, pssh.Exit{Node: name, Code: -1, Err: errors.New("no primary network address")})
					continue
				}
				hosts = append(hosts, pssh.Host{Node: name, Addr: dev.Ipaddr})
			}
			o.Args = []string{"-o", "BatchMode=yes"}
			if key := controller.ClusterKeyFile(cfg); fileExists(key) {
				o.Args = append(o.Args, "-i", key)
			}
			errOut := cmd.ErrOrStderr()
			for _, b := range bad {
				fmt.Fprintf(errOut, "%s: %v\n", b.Node, b.Err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			exits := pssh.Run(ctx, hosts, o, cmd.OutOrStdout(), errOut)
			if o.DryRun {
				exits = nil
			}
			exits = append(exits, bad...)
			failed := 0
			for _, e := range exits {
				if e.Err != nil && e.Code == -1 && e.Node != "" {
					fmt.Fprintf(errOut, "%s: %v\n", e.Node, e.Err)
				}
				if e.Code != 0 {
					failed++
				}
			}
			if o.DryRun {
				return nil
			}
			for _, line := range pssh.Summary(exits) {
				fmt.Fprintln(errOut, "ssh: "+line)
			}
			if failed > 0 {
				return fmt.Errorf("ssh: %d of %d nodes failed", failed, len(exits))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.DryRun, "dryrun", "n", false, "show the commands instead of running them")
	f.IntVarP(&o.Fanout, "fanout", "f", 32, "how many nodes to run on at once")
	f.IntVarP(&sleep, "sleep", "s", 0, "seconds each connection slot waits between nodes")
	f.StringVar(&o.Rsh, "rsh", "/usr/bin/ssh", "the ssh (or rsh) program")
	return cmd
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
