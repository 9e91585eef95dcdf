package wwctl

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
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
		newOverlayImportCmd(),
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
			Short: "Set the owner a file has on the nodes (numeric: UID, UID:GID, UID: or :GID; the other one stays)",
			Args:  cobra.ExactArgs(3),
			RunE: func(cmd *cobra.Command, args []string) error {
				uid, gid, err := parseOwner(args[2])
				if err != nil {
					return err
				}
				cfg, err := loadConfig()
				if err != nil {
					return err
				}
				return overlay.Chown(cfg, args[0], args[1], uid, gid)
			},
		},
		newOverlayBuildCmd(),
	)
	return cmd
}

func newOverlayListCmd() *cobra.Command {
	var all, long, showPath bool
	cmd := &cobra.Command{
		Use:     "list [NAME...]",
		Aliases: []string{"ls"},
		Short:   "List overlays; --all or --long lists their files",
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
			// As upstream, --long lists every file with its mode and owner
			// (with or without --all), then the overlay's site flag, or
			// with --path its directory. Modes and owners are those the
			// nodes get: the attributes file's, root by default.
			where := func(o *overlay.Overlay) string {
				if showPath {
					return o.Dir
				}
				return strconv.FormatBool(o.Site)
			}
			loc := "SITE"
			if showPath {
				loc = "PATH"
			}
			switch {
			case long:
				fmt.Fprintf(w, "PERM MODE\tUID\tGID\tOVERLAY\tFILE PATH\t%s\tSIZE\n", loc)
			case all:
				fmt.Fprintf(w, "OVERLAY\tFILE PATH\t%s\n", loc)
			case showPath:
				fmt.Fprintln(w, "OVERLAY\tFILES\tTEMPLATES\tSOURCE\tPATH")
			default:
				fmt.Fprintln(w, "OVERLAY\tFILES\tTEMPLATES\tSOURCE")
			}
			for _, o := range list {
				entries, err := overlay.Scan(o)
				if err != nil {
					return err
				}
				if !all && !long {
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
					if showPath {
						src += "\t" + o.Dir
					}
					fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", o.Name, files, tmpls, src)
					continue
				}
				if len(entries) == 0 && !long {
					fmt.Fprintf(w, "%s\t0\t%s\n", o.Name, where(o)) // as upstream
				}
				for _, e := range entries {
					// Upstream's form: relative, a directory with a slash.
					p := e.Path
					switch {
					case e.Type == 0o040000:
						p += "/"
					case e.Target != "":
						p += " -> " + e.Target
					}
					if long {
						fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%d\n", modeString(e.Type, e.Mode), e.UID, e.GID, o.Name, p, where(o), e.Size)
					} else {
						fmt.Fprintf(w, "%s\t%s\t%s\n", o.Name, p, where(o))
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "list every file of each overlay")
	cmd.Flags().BoolVarP(&long, "long", "l", false, "list every file with the mode, owner and size it has on the nodes")
	cmd.Flags().BoolVarP(&showPath, "path", "p", false, "show each overlay's directory")
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
	var force, parents bool
	cmd := &cobra.Command{
		Use:     "delete NAME [FILE]",
		Aliases: []string{"rm", "del", "remove"},
		Short:   "Delete a site overlay, or one file of an overlay (of a shipped one: in its site copy, made first)",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if len(args) == 2 {
				return overlay.DeleteFile(cfg, args[0], args[1], overlay.DeleteOptions{Parents: parents, Force: force})
			}
			if parents {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: --parents is not acted on: it applies to deleting a FILE")
			}
			if !force {
				db, err := node.Load(cfg.NodesConf())
				if err != nil {
					return err
				}
				profiles, nodes := db.OverlayUsers(args[0])
				var users []string
				for _, p := range profiles {
					users = append(users, "profile "+p)
				}
				for _, n := range nodes {
					users = append(users, "node "+n)
				}
				if len(users) > 0 {
					return fmt.Errorf("overlay %s is used by %s (use --force to delete it anyway)", args[0], strings.Join(users, ", "))
				}
				// As upstream: only an empty overlay goes without --force.
				if o, err := overlay.Find(cfg, args[0]); err == nil && o.Site {
					if entries, err := overlay.Scan(o); err != nil || len(entries) > 0 {
						return fmt.Errorf("overlay %s is not empty (use --force to delete it anyway)", args[0])
					}
				}
			}
			return overlay.Delete(cfg, args[0], "")
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete an overlay that nodes or profiles still list, or a directory FILE with its files")
	cmd.Flags().BoolVarP(&parents, "parents", "p", false, "also remove the directories deleting FILE leaves empty")
	return cmd
}

func newOverlayEditCmd() *cobra.Command {
	var parents bool
	var mode string
	cmd := &cobra.Command{
		Use:   "edit NAME FILE",
		Short: "Edit a file of an overlay in $EDITOR (saving a change to a shipped overlay makes its site copy)",
		Long: "Edit a file of an overlay in $EDITOR. A new file starts empty, a new template (.ww) with " +
			"a commented example. Nothing is written unless the text changed.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := strconv.ParseUint(mode, 8, 32)
			if err != nil || m > 0o777 {
				return fmt.Errorf("--mode %q is not an octal directory mode", mode)
			}
			if cmd.Flags().Changed("mode") && !parents {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: --mode is not acted on without --parents: it is the mode of the directories --parents makes")
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			ed, err := overlay.StartEdit(cfg, args[0], args[1], overlay.EditOptions{Parents: parents, DirMode: os.FileMode(m)})
			if err != nil {
				return err
			}
			// The editor works on a copy, named as the file (for the
			// editor's syntax colouring), so an abandoned edit writes nothing.
			dir, err := os.MkdirTemp("", "wwctl-overlay-edit-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			tmp := filepath.Join(dir, path.Base(ed.Rel))
			if err := os.WriteFile(tmp, ed.Text, 0o600); err != nil {
				return err
			}
			c, editor := editorCmd(tmp)
			if err := c.Run(); err != nil {
				return fmt.Errorf("editor %q: %w (overlay %s unchanged)", editor, err, args[0])
			}
			text, err := os.ReadFile(tmp)
			if err != nil {
				return err
			}
			if bytes.Equal(text, ed.Text) {
				fmt.Fprintf(cmd.ErrOrStderr(), "overlay %s: /%s: no change, nothing written\n", args[0], ed.Rel)
				return nil
			}
			p, err := ed.Save(text)
			if err != nil {
				return err
			}
			return overlay.CheckTemplate(args[0], ed.Rel, p)
		},
	}
	cmd.Flags().BoolVarP(&parents, "parents", "p", false, "make the file's missing directories")
	cmd.Flags().StringVarP(&mode, "mode", "m", "0755", "mode of the directories --parents makes")
	return cmd
}

func newOverlayImportCmd() *cobra.Command {
	var overwrite, parents bool
	var workers int
	cmd := &cobra.Command{
		Use:     "import NAME SRC [DEST]",
		Aliases: []string{"cp"},
		Short:   "Copy a file of this host into an overlay (DEST defaults to SRC's path as given)",
		Args:    cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("workers") {
				// Upstream has the flag and does nothing with it either.
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: --workers is not acted on: import builds no overlay images (wwctl overlay build --workers does)")
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			dest := ""
			if len(args) == 3 {
				dest = args[2]
			}
			rel, err := overlay.Import(cfg, args[0], args[1], dest, overlay.ImportOptions{Overwrite: overwrite, Parents: parents})
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: /%s\n", args[0], rel)
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&overwrite, "overwrite", "o", false, "replace a file already at the destination")
	cmd.Flags().BoolVarP(&parents, "parents", "p", false, "make the destination's missing directories")
	cmd.Flags().IntVar(&workers, "workers", 0, "accepted for upstream's scripts; not acted on")
	return cmd
}

// parseOwner reads chown's UID[:GID] as upstream does: "UID" and "UID:"
// set the owner, ":GID" the group, "UID:GID" both; -1 is the one left as
// it is. Numbers only: the node's users need not exist on this host.
func parseOwner(spec string) (uid, gid int64, err error) {
	num := func(what, s string) (int64, error) {
		if s == "" {
			return -1, nil
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("owner %q: %s %q is not a number (numbers only: the node's users need not exist here)", spec, what, s)
		}
		return int64(n), nil
	}
	u, g, _ := strings.Cut(spec, ":")
	if uid, err = num("UID", u); err != nil {
		return 0, 0, err
	}
	if gid, err = num("GID", g); err != nil {
		return 0, 0, err
	}
	if uid < 0 && gid < 0 {
		return 0, 0, fmt.Errorf("owner %q names neither a UID nor a GID", spec)
	}
	return uid, gid, nil
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
