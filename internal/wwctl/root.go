// Package wwctl is the command tree of the admin CLI. Commands parse flags
// and call into the domain packages; they hold no business logic.
package wwctl

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// Version is set at build time with -ldflags.
var Version = "dev"

type globalFlags struct {
	config  string
	verbose bool
	debug   bool
}

var global globalFlags

// NewRoot builds the wwctl command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "wwctl",
		Short:         "Provision stateless Linux cluster nodes",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			setupLogging(global.verbose, global.debug)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&global.config, "config", "", "warewulf.conf to use (default $"+config.EnvVar+" or "+config.DefaultFile+")")
	pf.BoolVarP(&global.verbose, "verbose", "v", false, "log more")
	pf.BoolVarP(&global.debug, "debug", "d", false, "log everything")
	root.AddCommand(
		newNodeCmd(),
		newProfileCmd(),
		newImageCmd(),
		newOverlayCmd(),
		newServerCmd(),
		newPowerCmd(),
		newSSHCmd(),
		newConfigureCmd(),
		newGenconfigCmd(),
		newVersionCmd(),
	)
	return root
}

// Execute runs wwctl and returns the process exit code.
func Execute() int {
	root := NewRoot()
	if err := root.Execute(); err != nil {
		// One line, whatever the library said: scripts grep it, admins read it.
		fmt.Fprintln(os.Stderr, "wwctl: "+strings.Join(strings.Fields(err.Error()), " "))
		var ec exitCoder
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

type exitCoder interface{ ExitCode() int }

func setupLogging(verbose, debug bool) {
	logrus.SetOutput(os.Stderr)
	logrus.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	switch {
	case debug:
		logrus.SetLevel(logrus.DebugLevel)
	case verbose:
		logrus.SetLevel(logrus.InfoLevel)
	default:
		logrus.SetLevel(logrus.WarnLevel)
	}
}

// loadConfig loads warewulf.conf from --config, $WW_CONFIG or the default.
func loadConfig() (*config.Config, error) {
	return config.Load(config.Path(global.config))
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "wwctl", Version)
		},
	}
}
