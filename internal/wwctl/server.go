package wwctl

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/internal/warewulfd"
)

func newServerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Start, stop, reload or query warewulfd",
		Long: "Controls warewulfd through systemd where systemd runs, else as a background\n" +
			"process tracked by its pidfile (paths: rundir in warewulf.conf).",
	}
	verb := func(use, short string, run func(*warewulfd.Service) error) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, err := loadConfig()
				if err != nil {
					return err
				}
				return run(&warewulfd.Service{Cfg: cfg})
			},
		}
	}
	cmd.AddCommand(
		verb("start", "Start warewulfd", (*warewulfd.Service).Start),
		verb("stop", "Stop warewulfd, letting transfers in flight finish", (*warewulfd.Service).Stop),
		verb("restart", "Stop warewulfd if it runs, then start it", (*warewulfd.Service).Restart),
		verb("reload", "Make warewulfd reread warewulf.conf and nodes.conf", (*warewulfd.Service).Reload),
		&cobra.Command{
			Use:   "status",
			Short: "Say whether warewulfd runs (exit code 3 if not)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, err := loadConfig()
				if err != nil {
					return err
				}
				out, err := (&warewulfd.Service{Cfg: cfg}).Status()
				if out != "" {
					fmt.Fprintln(cmd.OutOrStdout(), out)
				}
				if errors.Is(err, warewulfd.ErrNotRunning) {
					return exitError{err, 3}
				}
				return err
			},
		},
	)
	return cmd
}

// exitError carries a specific exit code (LSB: 3 = not running).
type exitError struct {
	error
	code int
}

func (e exitError) ExitCode() int { return e.code }
