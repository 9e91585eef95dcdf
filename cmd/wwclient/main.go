// Command wwclient runs on nodes and keeps the runtime overlay fresh.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/wwclient"
)

func main() {
	cfgFile := flag.String("config", wwclient.DefaultConfigFile, "wwclient configuration file")
	once := flag.Bool("once", false, "fetch and apply the runtime overlay once, then exit")
	root := flag.String("root", "", "apply the overlay under this directory instead of the configured root")
	source := flag.String("source", "", "local address to send requests from (default: chosen by route)")
	debug := flag.Bool("debug", false, "log everything")
	flag.Parse()

	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: os.Getenv("INVOCATION_ID") != "", FullTimestamp: true})
	if *debug {
		log.SetLevel(logrus.DebugLevel)
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	cfg, err := wwclient.LoadConfig(*cfgFile, string(cmdline))
	if err != nil {
		fmt.Fprintln(os.Stderr, "wwclient:", err)
		os.Exit(2)
	}
	for _, k := range cfg.Ignored {
		log.Warnf("wwclient: %s: key %q is not used", *cfgFile, k)
	}
	if *root != "" {
		cfg.Root = *root
	}
	if *source != "" {
		cfg.Source = *source
		if err := cfg.Validate(); err != nil {
			fmt.Fprintln(os.Stderr, "wwclient:", err)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	c := wwclient.New(cfg, log)
	if *once {
		changed, err := c.Update(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wwclient:", err)
			os.Exit(1)
		}
		log.Infof("runtime overlay applied, %s", wwclient.Summary(changed))
		return
	}
	log.Infof("wwclient: fetching the runtime overlay from %s:%d every %v", cfg.Controller, cfg.Port, cfg.Every())
	if err := c.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "wwclient:", err)
		os.Exit(1)
	}
	log.Info("wwclient: stopped")
}
