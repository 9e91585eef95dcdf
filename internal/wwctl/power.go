package wwctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/warewulf-ng/warewulf/internal/bmc"
)

// bmcFlags are the flags power and sensors share with upstream.
type bmcFlags struct {
	show   bool
	fanout int
	output string
}

func (f *bmcFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&f.show, "show", "s", false, "only show the command for each node's BMC, prefixed with its address")
	cmd.Flags().IntVar(&f.fanout, "fanout", 50, "how many BMCs to talk to at once")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "text or json")
}

func (f *bmcFlags) check() error {
	if f.fanout < 1 {
		return fmt.Errorf("--fanout %d is below 1", f.fanout)
	}
	if f.output != "text" && f.output != "json" {
		return fmt.Errorf("--output %q is not text or json", f.output)
	}
	return nil
}

func newPowerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "power COMMAND",
		Short: "Control and query the power of nodes through their BMCs",
		Long: "Power nodes on, off, cycle, reset, soft (an orderly shutdown) or show their status, through\n" +
			"each node's BMC: IPMI lanplus from wwctl itself, Redfish for `ipmi interface: redfish`, or the\n" +
			"node's own `ipmi template` command. Node names take ranges: n[001-100].",
		Args: cobra.NoArgs,
	}
	help := map[bmc.Action]string{
		bmc.On: "Power nodes on", bmc.Off: "Power nodes off (hard)", bmc.Cycle: "Power nodes off, then on",
		bmc.Reset: "Reset nodes (hard reboot)", bmc.Soft: "Ask nodes' operating systems to shut down",
		bmc.Status: "Show nodes' power status",
	}
	for _, a := range bmc.Actions {
		var f bmcFlags
		sub := &cobra.Command{
			Use:     string(a) + " [OPTIONS] NODE...",
			Short:   help[a],
			Example: fmt.Sprintf("  wwctl power %s 'n[001-100]'\n  wwctl power %s n001 --show", a, a),
			Args:    cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := f.check(); err != nil {
					return err
				}
				return runBMC(cmd, args, f, "power "+string(a),
					func(t bmc.Target) (string, error) { return bmc.PowerCommand(t, a) },
					func(ctx context.Context, t bmc.Target) (bmc.Reply, error) { return bmc.Power(ctx, t, a) })
			},
		}
		f.add(sub)
		cmd.AddCommand(sub)
	}
	return cmd
}

func newNodeSensorsCmd() *cobra.Command {
	var f bmcFlags
	var full bool
	cmd := &cobra.Command{
		Use:     "sensors [OPTIONS] NODE...",
		Short:   "Show the sensors of nodes' BMCs",
		Example: "  wwctl node sensors n001\n  wwctl node sensors 'n[001-004]' --full -o json",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			return runBMC(cmd, args, f, "sensors",
				func(t bmc.Target) (string, error) { return bmc.SensorsCommand(t, full) },
				func(ctx context.Context, t bmc.Target) (bmc.Reply, error) { return bmc.Sensors(ctx, t, full) })
		},
	}
	cmd.Flags().BoolVarP(&full, "full", "F", false, "show sensor types and thresholds too")
	f.add(cmd)
	return cmd
}

// bmcTargets resolves node names to their BMCs. Nodes that cannot be
// reached (unknown, no BMC address) come back as failed results.
func bmcTargets(args []string) ([]bmc.Target, []bmc.Result, error) {
	list, err := names(args)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := loadConfig()
	if err != nil {
		return nil, nil, err
	}
	db, err := readDB()
	if err != nil {
		return nil, nil, err
	}
	var targets []bmc.Target
	var failed []bmc.Result
	for _, name := range list {
		n, err := db.Merged(name)
		if err == nil {
			var t bmc.Target
			if t, err = bmc.NewTarget(n, cfg.BMCTemplateDir()); err == nil {
				targets = append(targets, t)
				continue
			}
		}
		failed = append(failed, bmc.Result{Node: name, Err: err, Error: bmc.OneLine(err)})
	}
	for _, t := range targets {
		if strings.EqualFold(t.Tags["insecure"], "true") && t.Interface == bmc.Redfish {
			logrus.Warnf("%s: ipmi tag insecure: the BMC's TLS certificate is not checked", t.Node)
		}
	}
	return targets, failed, nil
}

// runBMC is the body of power and sensors: one BMC exchange per node, at
// most --fanout at once, each node's result or error on its own line.
func runBMC(cmd *cobra.Command, args []string, f bmcFlags, what string,
	show func(bmc.Target) (string, error), do func(context.Context, bmc.Target) (bmc.Reply, error)) error {
	targets, failed, err := bmcTargets(args)
	if err != nil {
		return err
	}
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	total := len(targets) + len(failed)
	if f.show {
		for _, t := range targets {
			line, err := show(t)
			if err != nil {
				failed = append(failed, bmc.Result{Node: t.Node, Err: err, Error: bmc.OneLine(err)})
				continue
			}
			// Prefixed with the BMC's address, as upstream's --show is.
			fmt.Fprintf(out, "%s: %s\n", t.Ipaddr, line)
		}
		return reportFailed(errOut, failed, total, what)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	results := append(failed, bmc.Each(ctx, targets, f.fanout, do)...)
	if f.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		printResults(out, results)
	}
	var bad []bmc.Result
	for _, r := range results {
		if r.Err != nil {
			bad = append(bad, r)
		}
	}
	return reportFailed(errOut, bad, total, what)
}

func printResults(w io.Writer, results []bmc.Result) {
	for _, r := range results {
		if r.Err != nil {
			continue // on stderr, from reportFailed
		}
		switch {
		case r.Power != "":
			fmt.Fprintf(w, "%s: %s\n", r.Node, r.Power)
		case len(r.Sensors) > 0:
			for _, s := range r.Sensors {
				line := fmt.Sprintf("%s: %-16s | %s %s | %s", r.Node, s.Name, s.Reading, s.Unit, s.Status)
				if s.Type != "" {
					line += " | " + s.Type
					for _, k := range []string{"lnr", "lcr", "lnc", "unc", "ucr", "unr"} {
						if v, ok := s.Thresholds[k]; ok {
							line += fmt.Sprintf(" %s=%s", k, v)
						}
					}
				}
				fmt.Fprintln(w, line)
			}
		default:
			for _, line := range strings.Split(r.Output, "\n") {
				fmt.Fprintf(w, "%s: %s\n", r.Node, line)
			}
		}
	}
}

// reportFailed prints each failed node's one-line error and makes the
// command fail when any did.
func reportFailed(w io.Writer, failed []bmc.Result, total int, what string) error {
	for _, r := range failed {
		fmt.Fprintf(w, "%s: %s\n", r.Node, r.Error)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s: %d of %d nodes failed", what, len(failed), total)
	}
	return nil
}

func newNodeConsoleCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "console NODE",
		Short:   "Connect to a node's serial console over LAN (SOL); the node's ipmi escapechar (default ~) then . quits",
		Example: "  wwctl node console n001",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, failed, err := bmcTargets(args)
			if err != nil {
				return err
			}
			if len(failed) > 0 {
				return fmt.Errorf("%s: %s", failed[0].Node, failed[0].Error)
			}
			if len(targets) != 1 {
				return fmt.Errorf("console: %q names %d nodes; name one", args[0], len(targets))
			}
			in := cmd.InOrStdin()
			if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				// Raw, so keystrokes (Ctrl-C included) go to the node.
				old, err := term.MakeRaw(int(f.Fd()))
				if err != nil {
					return err
				}
				defer term.Restore(int(f.Fd()), old) //nolint:errcheck
			}
			return bmc.Console(cmd.Context(), targets[0], in, cmd.OutOrStdout())
		},
	}
}
