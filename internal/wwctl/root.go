// Package wwctl is the command tree of the admin CLI. Commands parse flags
// and call into the domain packages; they hold no business logic.
package wwctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/controller"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// Version is set at build time with -ldflags.
var Version = "dev"

type globalFlags struct {
	config    string
	verbose   bool
	debug     bool
	logLevel  int  // upstream's numeric --loglevel (10 debug ... 50 critical)
	emptyConf bool // upstream's --emptyconf: built-in defaults when warewulf.conf is missing
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
			setupLogging(global.verbose, global.debug, global.logLevel)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&global.config, "config", "", "warewulf.conf to use (default $"+config.EnvVar+", $"+config.UpstreamEnvVar+" or "+config.DefaultFile+")")
	pf.StringVar(&global.config, "warewulfconf", "", "upstream's name of --config")
	pf.BoolVarP(&global.verbose, "verbose", "v", false, "log more")
	pf.BoolVarP(&global.debug, "debug", "d", false, "log everything")
	pf.IntVar(&global.logLevel, "loglevel", 0, "upstream's numeric log level: 10 debug, 15 verbose, 20 info, 30 warnings, 40 errors")
	pf.BoolVar(&global.emptyConf, "emptyconf", false, "run with the built-in defaults when warewulf.conf does not exist")
	pf.MarkHidden("loglevel")
	pf.MarkHidden("emptyconf")
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
		newUpgradeCmd(),
		newCleanCmd(),
	)
	addCompletions(root)
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

func setupLogging(verbose, debug bool, level int) {
	logrus.SetOutput(os.Stderr)
	logrus.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	switch {
	case debug || level > 0 && level <= 10:
		logrus.SetLevel(logrus.DebugLevel)
	case verbose || level > 0 && level <= 15:
		logrus.SetLevel(logrus.InfoLevel)
	case level > 30:
		// Upstream's INFO (20) is what wwctl prints anyway: warnings on.
		logrus.SetLevel(logrus.ErrorLevel)
	default:
		logrus.SetLevel(logrus.WarnLevel)
	}
}

// loadConfig loads warewulf.conf from --config, $WW_CONFIG or the default.
func loadConfig() (*config.Config, error) {
	path := config.Path(global.config)
	if global.emptyConf {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			logrus.Warnf("%s does not exist: using the built-in defaults (--emptyconf)", path)
			return config.Parse(nil)
		}
	}
	return config.Load(path)
}

func newVersionCmd() *cobra.Command {
	var full bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version (--full: and the paths and settings in use)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "wwctl", Version)
			if !full {
				return nil
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			for _, kv := range [][2]string{
				{"VERSION", Version}, {"GOVERSION", runtime.Version()},
				{"WAREWULFCONF", cfg.File()}, {"SYSCONFDIR", cfg.SysconfDir()}, {"NODESCONF", cfg.NodesConf()},
				{"DATADIR", cfg.DataDir()}, {"DISTOVERLAYDIR", cfg.DistOverlayDir()}, {"SITEOVERLAYDIR", cfg.SiteOverlayDir()},
				{"LOCALSTATEDIR", cfg.StateDir()}, {"CHROOTDIR", cfg.ImageStoreDir()}, {"PROVISIONDIR", cfg.ProvisionDir()},
				{"CACHEDIR", cfg.CacheDir()}, {"IPXESOURCE", cfg.IpxeSourceDir()}, {"TFTPDIR", cfg.TftpRoot()},
				{"WWCLIENTDIR", cfg.Paths.WWClientdir},
			} {
				fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&full, "full", "f", false, "also the paths in use")
	return cmd
}

func newCleanCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "clean",
		Short: "Remove built overlays of deleted nodes, artifacts of deleted images, and the image cache's contents",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			db, err := node.Load(cfg.NodesConf())
			if err != nil {
				return err
			}
			removed, err := controller.Clean(cfg, db)
			for _, p := range removed {
				fmt.Fprintln(cmd.OutOrStdout(), "removed "+p)
			}
			return err
		},
	}
}
