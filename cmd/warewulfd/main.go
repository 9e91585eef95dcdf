// Command warewulfd serves nodes: DHCP, TFTP and HTTP.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/warewulfd"
)

func main() {
	fs := pflag.NewFlagSet("warewulfd", pflag.ContinueOnError)
	cfgFlag := fs.String("config", "", "warewulf.conf to use (default $"+config.EnvVar+" or "+config.DefaultFile+")")
	pidfile := fs.String("pidfile", "", "write the process ID to this file while running")
	verbose := fs.BoolP("verbose", "v", false, "log more (debug level)")
	debug := fs.BoolP("debug", "d", false, "log everything")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "warewulfd:", err)
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "warewulfd: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	logs := warewulfd.NewLogWriter(os.Stderr, 100*time.Millisecond)
	logrus.SetOutput(logs)
	logrus.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	switch {
	case *debug:
		logrus.SetLevel(logrus.TraceLevel)
	case *verbose:
		logrus.SetLevel(logrus.DebugLevel)
	default:
		logrus.SetLevel(logrus.InfoLevel) // one line per request
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := warewulfd.Main(ctx, config.Path(*cfgFlag), *pidfile)
	if err != nil {
		logrus.Error(err)
	}
	logs.Close()
	if err != nil {
		os.Exit(1)
	}
}
