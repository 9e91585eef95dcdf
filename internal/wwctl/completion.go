package wwctl

import (
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/internal/image"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

// Shell completion of node, profile, image and overlay names; a broken
// configuration completes nothing rather than printing errors into the
// shell.

type completeFunc func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective)

func namesFrom(list func() []string) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		var out []string
		for _, n := range list() {
			if strings.HasPrefix(n, toComplete) {
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func dbNames(profiles bool) func() []string {
	return func() []string {
		db, err := readDB()
		if err != nil {
			return nil
		}
		if profiles {
			return db.ProfileNames()
		}
		return db.NodeNames()
	}
}

func imageNames() []string {
	cfg, err := loadConfig()
	if err != nil {
		return nil
	}
	list, _ := image.List(cfg)
	return list
}

func overlayNames() []string {
	cfg, err := loadConfig()
	if err != nil {
		return nil
	}
	list, _ := overlay.List(cfg)
	var out []string
	for _, o := range list {
		out = append(out, o.Name)
	}
	return out
}

var (
	completeNodes    = namesFrom(dbNames(false))
	completeProfiles = namesFrom(dbNames(true))
	completeImages   = namesFrom(imageNames)
	completeOverlays = namesFrom(overlayNames)
)

// completeFirst completes only the first argument.
func completeFirst(f completeFunc) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return f(cmd, args, toComplete)
	}
}

// addCompletions walks the command tree once and sets the completions of
// the commands and flags that take names.
func addCompletions(root *cobra.Command) {
	flagFuncs := map[string]completeFunc{
		"profile": completeProfiles, "image": completeImages, "container": completeImages,
		"system-overlays": completeOverlays, "runtime-overlays": completeOverlays,
		"wwinit": completeOverlays, "runtime": completeOverlays,
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		parent := ""
		if c.Parent() != nil {
			parent = c.Parent().Name()
		}
		if c.ValidArgsFunction == nil && c.Runnable() {
			switch parent {
			case "node":
				if c.Name() != "add" && c.Name() != "import" {
					c.ValidArgsFunction = completeNodes
				}
			case "profile":
				if c.Name() != "add" {
					c.ValidArgsFunction = completeProfiles
				}
			case "image":
				if c.Name() != "import" {
					c.ValidArgsFunction = completeFirst(completeImages)
				}
			case "overlay":
				if c.Name() == "build" {
					c.ValidArgsFunction = completeNodes
				} else if c.Name() != "create" {
					c.ValidArgsFunction = completeFirst(completeOverlays)
				}
			case "power", "console", "sensors", "ssh":
				c.ValidArgsFunction = completeNodes
			}
		}
		for name, f := range flagFuncs {
			if c.Flags().Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, f)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
