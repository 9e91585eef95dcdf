package wwctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/warewulfd"
)

// newNodeStatusCmd is `wwctl node status`: what warewulfd last saw of each node.
func newNodeStatusCmd() *cobra.Command {
	var output string
	var watch, unknown, byLast, reverse bool
	var interval, stale time.Duration
	var within int64
	var updateMS int
	cmd := &cobra.Command{
		Use:     "status [NODE PATTERN...]",
		Short:   "Show each node's last provisioning stage, as warewulfd saw it",
		Example: "  wwctl node status\n  wwctl node status 'n[001-100]' --watch\n  wwctl node status --stale 5m\n  wwctl node status --unknown\n  wwctl node status --last --time 600\n  wwctl node status -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q is not table or json", output)
			}
			if cmd.Flags().Changed("update") {
				if cmd.Flags().Changed("interval") {
					return errors.New("--update and --interval both set the refresh interval: give one")
				}
				interval = time.Duration(updateMS) * time.Millisecond
			}
			if within < 0 {
				return fmt.Errorf("--time %d is negative", within)
			}
			if interval < 100*time.Millisecond {
				return fmt.Errorf("--interval %s is below 100ms", interval)
			}
			if stale < 0 || (stale == 0 && cmd.Flags().Changed("stale")) {
				return fmt.Errorf("--stale %s is not a positive duration", stale)
			}
			names, err := node.ExpandNames(args)
			if err != nil {
				return err
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			url := warewulfd.StatusURL(cfg)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			for {
				r, saved, err := nodeStatus(ctx, cfg, url)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				r.Nodes = filterNodes(r.Nodes, names)
				total := len(r.Nodes)
				r.Nodes = selectNodes(r, nodeFilter{stale: stale, within: time.Duration(within) * time.Second, unknown: unknown})
				sortNodes(r.Nodes, byLast, reverse)
				out := cmd.OutOrStdout()
				if watch && output == "table" {
					fmt.Fprint(out, "\033[H\033[2J") // clear the terminal
				}
				if output == "json" {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					if err := enc.Encode(r); err != nil {
						return err
					}
				} else {
					printStatus(out, r)
					if stale > 0 {
						fmt.Fprintf(out, "%d of %d nodes not heard from for more than %s\n", len(r.Nodes), total, stale)
					}
				}
				if saved != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), saved)
				}
				if !watch {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "refresh until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "refresh interval with --watch")
	cmd.Flags().DurationVar(&stale, "stale", 0, "only nodes not heard from for longer than this (or never), e.g. 5m")
	// Upstream's flags.
	cmd.Flags().IntVarP(&updateMS, "update", "U", 2000, "refresh interval with --watch, in milliseconds (upstream's name of --interval)")
	cmd.Flags().Int64VarP(&within, "time", "t", 0, "only nodes heard from in the last this many seconds")
	cmd.Flags().BoolVarP(&unknown, "unknown", "u", false, "only nodes never heard from")
	cmd.Flags().BoolVarP(&byLast, "last", "l", false, "sort by when a node was last heard from, latest first")
	cmd.Flags().BoolVarP(&reverse, "reverse", "r", false, "reverse the order")
	return cmd
}

// nodeFilter is what --stale, --time and --unknown keep; zero keeps all.
type nodeFilter struct {
	stale   time.Duration // silent for longer than this, or never seen
	within  time.Duration // heard from within this
	unknown bool          // never heard from
}

// selectNodes keeps the nodes f asks for, ages by the server's clock.
func selectNodes(r *warewulfd.StatusReport, f nodeFilter) []warewulfd.NodeStatus {
	if f == (nodeFilter{}) {
		return r.Nodes
	}
	out := []warewulfd.NodeStatus{}
	for _, n := range r.Nodes {
		seen := n.Stage != ""
		age := r.Time.Sub(n.Time)
		if f.stale > 0 && seen && age <= f.stale ||
			f.within > 0 && (!seen || age > f.within) ||
			f.unknown && seen {
			continue
		}
		out = append(out, n)
	}
	return out
}

// sortNodes orders by name, or with byLast by the last request, latest
// first (ties by name, never-seen nodes last); reverse turns either round.
func sortNodes(nodes []warewulfd.NodeStatus, byLast, reverse bool) {
	less := func(a, b warewulfd.NodeStatus) int {
		if byLast && !a.Time.Equal(b.Time) {
			return b.Time.Compare(a.Time)
		}
		return strings.Compare(a.Node, b.Node)
	}
	slices.SortStableFunc(nodes, func(a, b warewulfd.NodeStatus) int {
		if reverse {
			return less(b, a)
		}
		return less(a, b)
	})
}

// nodeStatus asks the running warewulfd for its status report. When none
// answers it reads what warewulfd last saved, and says so in note.
func nodeStatus(ctx context.Context, cfg *config.Config, url string) (r *warewulfd.StatusReport, note string, err error) {
	r, err = warewulfd.FetchStatus(ctx, url)
	if !errors.Is(err, warewulfd.ErrNotAnswering) {
		return r, "", err
	}
	db, dbErr := node.Load(cfg.NodesConf())
	if dbErr != nil {
		return nil, "", fmt.Errorf("%w; nor can its status file be read: %w", err, dbErr)
	}
	r, saved, fileErr := warewulfd.SavedStatus(cfg, db)
	if errors.Is(fileErr, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%w; and it has saved no node status (no %s)", err, cfg.StatusFile())
	}
	if fileErr != nil {
		return nil, "", fmt.Errorf("%w; nor can its status file be read: %w", err, fileErr)
	}
	return r, fmt.Sprintf("warewulfd is not answering at %s: this is what it saved to %s %s ago", url, cfg.StatusFile(), ago(time.Since(saved))), nil
}

func filterNodes(all []warewulfd.NodeStatus, names []string) []warewulfd.NodeStatus {
	if len(names) == 0 {
		return all
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := []warewulfd.NodeStatus{} // an empty list in JSON, not null
	for _, s := range all {
		if want[s.Node] {
			out = append(out, s)
		}
	}
	return out
}

// printStatus writes the table; "ago" is measured on the server's clock so
// a skewed controller clock does not matter.
func printStatus(w io.Writer, r *warewulfd.StatusReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTAGE\tLAST SEEN\tFROM")
	for _, n := range r.Nodes {
		stage, seen, from := "-", "never", "-"
		if n.Stage != "" {
			stage, from = n.Stage, n.IP
			seen = ago(r.Time.Sub(n.Time)) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Node, stage, seen, from)
	}
	tw.Flush()
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
