package wwctl

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

func newOverlayCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "overlay", Short: "Manage overlays: the per-node files laid over an image"}
	cmd.AddCommand(
		newOverlayListCmd(),
		newOverlayShowCmd(),
		newOverlayInfoCmd(),
		&cobra.Command{
			Use:   "create NAME",
			Short: "Create an empty site overlay",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, err := loadConfig()
				if err != nil {
					return err
				}
				o, err := overlay.Create(cfg, args[0])
				if err == nil {
					fmt.Fprintln(cmd.OutOrStdout(), o.Dir)
				}
				return err
			},
		},
		newOverlayDeleteCmd(),
		newOverlayEditCmd(),
		&cobra.Command{
			Use:   "import NAME SRC [DEST]",
			Short: "Copy a file of this host into an overlay (DEST defaults to SRC's path)",
			Args:  cobra.RangeArgs(2, 3),
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, err := loadConfig()
				if err != nil {
					return err
				}
				dest := ""
				if len(args) == 3 {
					dest = args[2]
				}
				rel, err := overlay.Import(cfg, args[0], args[1], dest)
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: /%s\n", args[0], rel)
				}
				return err
			},
		},
		newOverlayMkdirCmd(),
		&cobra.Command{
			Use:   "chmod NAME FILE MODE",
			Short: "Set the mode (octal) a file has on the nodes",
			Args:  cobra.ExactArgs(3),
			RunE: func(cmd *cobra.Command, args []string) error {
				mode, err := strconv.ParseUint(args[2], 8, 32)
				if err != nil || mode > 0o7777 {
					return fmt.Errorf("mode %q is not an octal file mode", args[2])
				}
				cfg, err := loadConfig()
				if err != nil {
					return err
				}
				return overlay.Chmod(cfg, args[0], args[1], uint32(mode))
			},
		},
		&cobra.Command{
			Use:   "chown NAME FILE UID[:GID]",
			Short: "Set the owner a file has on the nodes (numeric; GID defaults to UID)",
			Args:  cobra.ExactArgs(3),
			RunE: func(cmd *cobra.Command, args []string) error {
				u, g, hasG := strings.Cut(args[2], ":")
				if !hasG {
					g = u
				}
				uid, err1 := strconv.ParseUint(u, 10, 32)
				gid, err2 := strconv.ParseUint(g, 10, 32)
				if err1 != nil || err2 != nil {
					return fmt.Errorf("owner %q is not UID[:GID] (numbers: the node's users need not exist here)", args[2])
				}
				cfg, err := loadConfig()
				if err != nil {
					return err
				}
				return overlay.Chown(cfg, args[0], args[1], uint32(uid), uint32(gid))
			},
		},
		newOverlayBuildCmd(),
	)
	return cmd
}

func newOverlayListCmd() *cobra.Command {
	var all, long, path bool
	cmd := &cobra.Command{
		Use:   "list [NAME...]",
		Short: "List overlays; --all lists their files",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			list, err := overlay.List(cfg)
			if err != nil {
				return err
			}
			if len(args) > 0 {
				var picked []*overlay.Overlay
				for _, name := range args {
					o, err := overlay.Find(cfg, name)
					if err != nil {
						return err
					}
					picked = append(picked, o)
				}
				list = picked
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			defer w.Flush()
			long = long || (path && !all)
			if !all {
				fmt.Fprintln(w, "OVERLAY\tFILES\tTEMPLATES\tSOURCE")
			} else if long {
				fmt.Fprintln(w, "MODE\tUID\tGID\tSIZE\tOVERLAY\tPATH")
			} else {
				fmt.Fprintln(w, "OVERLAY\tPATH")
			}
			for _, o := range list {
				entries, err := overlay.Scan(o)
				if err != nil {
					return err
				}
				if !all {
					files, tmpls := 0, 0
					for _, e := range entries {
						if e.Type != 0o040000 {
							files++
						}
						if e.Template {
							tmpls++
						}
					}
					src := "shipped"
					if o.Site && o.Shadows {
						src = "site (shadows shipped)"
					} else if o.Site {
						src = "site"
					}
					if long {
						src += "\t" + o.Dir
					}
					fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", o.Name, files, tmpls, src)
					continue
				}
				for _, e := range entries {
					p := "/" + e.Path
					if e.Target != "" {
						p += " -> " + e.Target
					}
					if long {
						fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\n", modeString(e.Type, e.Mode), e.UID, e.GID, e.Size, o.Name, p)
					} else {
						fmt.Fprintf(w, "%s\t%s\n", o.Name, p)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "list every file of each overlay")
	cmd.Flags().BoolVarP(&long, "long", "l", false, "with modes, owners and sizes (with --all), or where each overlay lives")
	cmd.Flags().BoolVarP(&path, "path", "p", false, "where each overlay lives")
	return cmd
}

func modeString(typ, mode uint32) string {
	fm := os.FileMode(mode & 0o777)
	switch typ {
	case 0o040000:
		fm |= os.ModeDir
	case 0o120000:
		fm |= os.ModeSymlink
	}
	return fm.String() + fmt.Sprintf(" (%04o)", mode)
}

func newOverlayShowCmd() *cobra.Command {
	var render string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "show NAME FILE",
		Short: "Print a file of an overlay, or with --render NODE what a template makes for that node",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if render == "" {
				data, err := overlay.ReadFile(cfg, args[0], args[1])
				if err == nil {
					_, err = out.Write(data)
				}
				return err
			}
			db, err := node.Load(cfg.NodesConf())
			if err != nil {
				return err
			}
			files, err := overlay.NewBuilder(cfg, overlay.Options{}).Render(db, args[0], args[1], render)
			var ab *overlay.AbortedError
			if errors.As(err, &ab) {
				// Nothing is written: say so, and show what it wrote before.
				fmt.Fprintf(cmd.ErrOrStderr(), "%s %s called abort: it writes no file for node %s\n", args[0], args[1], render)
				cmd.ErrOrStderr().Write(ab.Text)
				return nil
			}
			if err != nil {
				return err
			}
			rel, _ := overlay.CleanPath(args[1])
			rel = strings.TrimSuffix(rel, overlay.TemplateSuffix)
			for _, f := range files {
				// A header names each file when there are several, or another
				// path than the template's own, so a script can split them.
				if !quiet && (len(files) > 1 || f.Path != rel) {
					fmt.Fprintf(out, "==> /%s (%04o %d:%d) <==\n", f.Path, f.Mode, f.UID, f.GID)
				}
				if f.Link != "" {
					fmt.Fprintf(out, "symlink to %s\n", f.Link)
					continue
				}
				out.Write(f.Data)
			}
			if len(files) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s %s writes no file for node %s\n", args[0], args[1], render)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&render, "render", "r", "", "render the template for this node (one not in nodes.conf: the controller's host name)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the files' text only, without a header per file")
	return cmd
}

func newOverlayDeleteCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete NAME [FILE]",
		Short: "Delete a site overlay, or one file of it",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if len(args) == 1 && !force {
				db, err := node.Load(cfg.NodesConf())
				if err != nil {
					return err
				}
				if users := overlayUsers(db, args[0]); len(users) > 0 {
					return fmt.Errorf("overlay %s is used by %s (use --force to delete it anyway)", args[0], strings.Join(users, ", "))
				}
			}
			file := ""
			if len(args) == 2 {
				file = args[1]
			}
			return overlay.Delete(cfg, args[0], file)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete an overlay that nodes or profiles still list")
	return cmd
}

// overlayUsers names the profiles and nodes that list an overlay.
func overlayUsers(db *node.DB, name string) []string {
	var out []string
	check := func(kind, n string, c *node.Conf) {
		for _, l := range []node.List{c.SystemOverlay, c.RuntimeOverlay} {
			for _, o := range l {
				if o == name {
					out = append(out, kind+" "+n)
					return
				}
			}
		}
	}
	for _, n := range db.ProfileNames() {
		check("profile", n, db.Profiles[n])
	}
	for _, n := range db.NodeNames() {
		check("node", n, db.Nodes[n])
	}
	return out
}

func newOverlayEditCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "edit NAME FILE",
		Short: "Edit a file of an overlay in $EDITOR (the first edit of a shipped overlay makes the site copy)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			editor := os.Getenv("EDITOR")
			if editor == "" {
				editor = "vi"
			}
			p, err := overlay.EditPath(cfg, args[0], args[1])
			if err != nil {
				return err
			}
			c := exec.Command("sh", "-c", editor+` "$1"`, "sh", p)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
			if err := c.Run(); err != nil {
				return fmt.Errorf("editor %q: %w", editor, err)
			}
			rel, _ := overlay.CleanPath(args[1])
			return overlay.CheckTemplate(args[0], rel, p)
		},
	}
}

func newOverlayMkdirCmd() *cobra.Command {
	var mode string
	cmd := &cobra.Command{
		Use:   "mkdir NAME DIR",
		Short: "Make a directory in an overlay",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := strconv.ParseUint(mode, 8, 32)
			if err != nil || m > 0o777 {
				return fmt.Errorf("mode %q is not an octal directory mode", mode)
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			return overlay.Mkdir(cfg, args[0], args[1], os.FileMode(m))
		},
	}
	cmd.Flags().StringVarP(&mode, "mode", "m", "0755", "mode of the new directory")
	return cmd
}

func newOverlayBuildCmd() *cobra.Command {
	var kind string
	var workers int
	cmd := &cobra.Command{
		Use:   "build [NODES...]",
		Short: "Build the overlay images of nodes (all by default; ranges such as n[001-100])",
		RunE: func(cmd *cobra.Command, args []string) error {
			var kinds []string
			switch kind {
			case "", "all":
			case overlay.System, overlay.Runtime:
				kinds = []string{kind}
			default:
				return fmt.Errorf("--kind %q is not system, runtime or all", kind)
			}
			names, err := node.ExpandNames(args)
			if err != nil {
				return err
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			db, err := node.Load(cfg.NodesConf())
			if err != nil {
				return err
			}
			start := time.Now()
			st, err := overlay.NewBuilder(cfg, overlay.Options{Workers: workers}).Build(db, names, kinds...)
			fmt.Fprintf(cmd.OutOrStdout(), "%d node images: %d built, %d unchanged, %d failed; %d shared archives written; %d ssh host keys made; %s\n",
				st.Nodes, st.Built, st.Unchanged, st.Failed, st.Shared, st.HostKeys, time.Since(start).Round(time.Millisecond))
			if st.Withheld > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %d secret files left out of system overlays, which anyone who knows a MAC can fetch; list %s as runtime overlays (docs/security.md)\n",
					st.Withheld, strings.Join(slices.Sorted(slices.Values(st.WithheldFrom)), ", "))
			}
			if unsent := overlay.BMCPasswordUnsent(db, names); len(unsent) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: ipmi write is on but %s is not a runtime overlay of %s: their BMC password is not set at boot (docs/operations.md)\n",
					overlay.BMCPasswordOverlay, strings.Join(unsent, ", "))
			}
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "in %s\n", filepath.Join(cfg.ProvisionDir(), "overlays"))
			}
			return err
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "all", "system, runtime or all")
	cmd.Flags().IntVar(&workers, "workers", 0, "nodes rendered in parallel (0: one per CPU)")
	return cmd
}

func newOverlayInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "info NAME FILE",
		Aliases: []string{"variables", "vars"},
		Short:   "Show a template's documentation and the variables it reads, with the node flag that sets each",
		Long: "Show a template's {{/* wwdoc: ... */}} comments, then the variables it reads:\n" +
			"the node flag that sets each, its type, and its help (a {{/* .VAR: help */}}\n" +
			"comment in the template, else the flag's).",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			data, err := overlay.ReadFile(cfg, args[0], args[1])
			if err != nil {
				return err
			}
			// As upstream: only a template has variables.
			if !strings.HasSuffix(args[1], overlay.TemplateSuffix) {
				return fmt.Errorf("%s %s: not a template (no %s suffix)", args[0], args[1], overlay.TemplateSuffix)
			}
			info, err := overlay.Describe(args[1], data)
			if err != nil {
				return fmt.Errorf("%s %s: %w", args[0], args[1], err)
			}
			out := cmd.OutOrStdout()
			for _, d := range info.Doc {
				fmt.Fprintln(out, d)
			}
			if len(info.Doc) > 0 {
				fmt.Fprintln(out)
			}
			// Empty cells stay empty, as upstream prints them.
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "VARIABLE\tOPTION\tTYPE\tHELP")
			fmt.Fprintln(tw, "--------\t------\t----\t----")
			for _, v := range info.Vars {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.Option, v.Type, v.Help)
			}
			return tw.Flush()
		},
	}
}
