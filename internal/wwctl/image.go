package wwctl

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/image"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Aliases: []string{"container", "vnfs"}, Short: "Import, build and manage node images"}
	cmd.AddCommand(newImageImportCmd(), newImageBuildCmd(), newImageListCmd(), newImageShowCmd(),
		newImageDeleteCmd(), newImageCopyCmd(), newImageRenameCmd(), newImageExecCmd(),
		newImageShellCmd(), newImageSyncuserCmd(), newImageKernelsCmd())
	return cmd
}

// imgSignalContext is cancelled by SIGINT or SIGTERM, so a long import or
// build stops cleanly and removes its temporaries.
func imgSignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newImageImportCmd() *cobra.Command {
	var o image.ImportOptions
	var build, update, syncuser bool
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "import SOURCE NAME",
		Short: "Import an image from a registry, an OCI/docker archive, a directory or a tarball",
		Long: `Import SOURCE into the image store as NAME. SOURCE is one of
  docker://REGISTRY/REPO:TAG       a registry
  oci-archive:FILE[:REF]           an OCI archive (podman save --format oci-archive)
  docker-archive:FILE[:REF]        a docker save archive
  oci:DIR[:REF]                    an OCI layout directory
  containers-storage:REF           an image of podman/buildah on this host
  DIR                              a root filesystem (chroot) directory
  FILE.tar[.gz|.zst|.xz|.bz2]      a tar of a root filesystem`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if passwordStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("reading the password from stdin: %w", err)
				}
				o.Password = strings.TrimRight(line, "\r\n")
			}
			ctx, stop := imgSignalContext()
			defer stop()
			o.Progress = cmd.ErrOrStderr()
			if update {
				o.Force = true
			}
			if _, err := image.Import(ctx, cfg, args[0], args[1], o); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %s as %s\n", args[0], args[1])
			if syncuser {
				if err := syncUsers(cmd, cfg, args[1]); err != nil {
					return err
				}
			}
			if build {
				return imgBuild(ctx, cmd, cfg, []string{args[1]}, image.BuildOptions{Force: true})
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.Force, "force", "f", false, "replace an existing image of that name")
	f.BoolVarP(&update, "update", "u", false, "update an existing image of that name (as --force)")
	f.BoolVar(&syncuser, "syncuser", false, "make the image's user and group IDs match the controller's")
	f.BoolVar(&o.PlainHTTP, "nohttps", false, "talk plain HTTP to the registry (upstream's name of --plain-http)")
	f.BoolVarP(&build, "build", "b", false, "build the image after importing it")
	f.StringVar(&o.Platform, "platform", "", "OS/ARCH[/VARIANT] to pick from a multi-arch image (default: this host's)")
	f.BoolVar(&o.PlainHTTP, "plain-http", false, "talk plain HTTP to the registry (implies --tls-skip-verify)")
	f.Lookup("nohttps").Hidden = true
	f.BoolVar(&o.TLSSkipVerify, "tls-skip-verify", false, "do not verify the registry's TLS certificate")
	f.StringVar(&o.AuthFile, "authfile", "", "auth.json with registry credentials (default: the containers/image search path)")
	f.StringVar(&o.Username, "username", "", "registry user name")
	f.StringVar(&o.Password, "password", "", "registry password (prefer --password-stdin)")
	f.StringVar(&o.Password, "passwd", "", "upstream's name of --password")
	f.Lookup("passwd").Hidden = true
	f.StringVar(&o.Platform, "arch", "", "upstream's name of --platform")
	f.Lookup("arch").Hidden = true
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the registry password from stdin")
	return cmd
}

func newImageBuildCmd() *cobra.Command {
	var all, syncuser bool
	var o image.BuildOptions
	var comp string
	cmd := &cobra.Command{
		Use:   "build NAME... | --all",
		Short: "Build images into bootable compressed cpio archives",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if all == (len(args) > 0) {
				return fmt.Errorf("name the images to build, or give --all")
			}
			if comp != "" {
				c, err := archive.ParseCompression(comp)
				if err != nil || c == archive.None {
					return fmt.Errorf("--compression: %q is not gz or zstd", comp)
				}
				o.Compression = c
			}
			if all {
				if args, err = image.List(cfg); err != nil {
					return err
				}
			}
			if syncuser {
				for _, n := range args {
					if err := syncUsers(cmd, cfg, n); err != nil {
						return err
					}
				}
			}
			ctx, stop := imgSignalContext()
			defer stop()
			return imgBuild(ctx, cmd, cfg, args, o)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "build every image")
	cmd.Flags().BoolVar(&syncuser, "syncuser", false, "first make the image's user and group IDs match the controller's")
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "rebuild even if the image did not change")
	cmd.Flags().StringVarP(&comp, "compression", "z", "", "gz or zstd (default: warewulf.conf 'image compression')")
	return cmd
}

func imgBuild(ctx context.Context, cmd *cobra.Command, cfg *config.Config, names []string, o image.BuildOptions) error {
	for _, n := range names {
		if !image.Exists(cfg, n) {
			return fmt.Errorf("image %q does not exist", n)
		}
	}
	// One broken image does not keep the others from building.
	var failed []string
	var first error
	for _, n := range names {
		start := time.Now()
		r, err := image.Build(ctx, cfg, n, o)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			if len(names) > 1 { // one image: its error is the command's
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", n, err)
			}
			failed = append(failed, n)
			if first == nil {
				first = err
			}
			continue
		}
		if !r.Rebuilt {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: up to date\n", n)
			continue
		}
		kv := "no kernel"
		if len(r.Info.Kernels) > 0 {
			kv = "kernel " + r.Info.Kernels[0].Version
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: built %s (%s, %s), %d files, %s in %s\n", n, r.Info.Image,
			r.Info.Compression, imgHumanSize(r.Info.ImageSize), r.Info.Files, kv, time.Since(start).Round(10*time.Millisecond))
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return first
	}
	return fmt.Errorf("%d images failed to build: %s", len(failed), strings.Join(failed, ", "))
}

func imgHumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newImageListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List images: size, kernel, nodes using each, built or stale",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			names, err := image.List(cfg)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tSIZE\tKERNEL\tNODES\tSTATE")
			for _, n := range names {
				size, kernel, state := "-", "-", "not built"
				if bi, err := image.ReadBuildInfo(cfg, n); err == nil {
					size = imgHumanSize(bi.ImageSize)
					if len(bi.Kernels) > 0 {
						kernel = bi.Kernels[0].Version
					}
					state = "built"
					if stale, _ := image.Stale(cfg, n); stale {
						state = "stale"
					}
				} else if ks, _ := image.FindKernels(cfg.ImageRootfs(n)); len(ks) > 0 {
					kernel = ks[0].Version
				}
				_, _, nodes, err := image.Users(cfg, n)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", n, size, kernel, nodes, state)
			}
			return tw.Flush()
		},
	}
}

func newImageShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show an image's source, kernels, build and users",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			name := args[0]
			m, err := image.ReadMeta(cfg, name)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Name:      %s\n", name)
			fmt.Fprintf(out, "Rootfs:    %s\n", cfg.ImageRootfs(name))
			fmt.Fprintf(out, "Source:    %s\n", dash(m.Source))
			fmt.Fprintf(out, "Digest:    %s\n", dash(m.Digest))
			if m.Platform != "" {
				fmt.Fprintf(out, "Platform:  %s\n", m.Platform)
			}
			if !m.Imported.IsZero() {
				fmt.Fprintf(out, "Imported:  %s\n", m.Imported.Format(time.RFC3339))
			}
			ks, _ := image.FindKernels(cfg.ImageRootfs(name))
			var vs []string
			for _, k := range ks {
				vs = append(vs, k.Version)
			}
			fmt.Fprintf(out, "Kernels:   %s\n", dash(strings.Join(vs, ", ")))
			if bi, err := image.ReadBuildInfo(cfg, name); err == nil {
				stale, _ := image.Stale(cfg, name)
				state := "up to date"
				if stale {
					state = "stale (run wwctl image build)"
				}
				fmt.Fprintf(out, "Built:     %s, %s\n", bi.Built.Format(time.RFC3339), state)
				fmt.Fprintf(out, "Archive:   %s/%s (%s, %s, %d files)\n", cfg.ImageProvisionDir(name), bi.Image, bi.Compression, imgHumanSize(bi.ImageSize), bi.Files)
			} else {
				fmt.Fprintf(out, "Built:     no\n")
			}
			nodes, profiles, n, err := image.Users(cfg, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Nodes:     %d booting; named by nodes: %s; profiles: %s\n", n,
				dash(strings.Join(nodes, ",")), dash(strings.Join(profiles, ",")))
			return nil
		},
	}
}

func newImageDeleteCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm", "del", "remove"},
		Short:   "Delete images (refused while nodes use them, unless --force)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			for _, n := range args {
				if !image.Exists(cfg, n) {
					return fmt.Errorf("image %q does not exist", n)
				}
			}
			for _, n := range args {
				if err := image.Delete(cfg, n, force); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", n)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete even if nodes use the image")
	cmd.Flags().BoolP("yes", "y", false, "do not ask (upstream's flag: delete never asks; nodes using the image stop it unless --force)")
	return cmd
}

func newImageCopyCmd() *cobra.Command {
	var build bool
	cmd := &cobra.Command{
		Use:     "copy SOURCE NEW",
		Aliases: []string{"cp"},
		Short:   "Copy an image",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if err := image.Copy(cfg, args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "copied %s to %s\n", args[0], args[1])
			if build {
				ctx, stop := imgSignalContext()
				defer stop()
				return imgBuild(ctx, cmd, cfg, args[1:], image.BuildOptions{})
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&build, "build", "b", false, "build the copy")
	return cmd
}

func newImageRenameCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rename OLD NEW",
		Aliases: []string{"mv"},
		Short:   "Rename an image and the nodes' and profiles' references to it",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if err := image.Rename(cfg, args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "renamed %s to %s\n", args[0], args[1])
			return nil
		},
	}
}

// execFlags are the flags exec and shell share.
type execFlags struct {
	nobuild, build, syncuser bool
	binds                    []string
	node                     string
}

func (f *execFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.nobuild, "nobuild", false, "do not rebuild the image afterwards (as --build=false)")
	cmd.Flags().BoolVar(&f.build, "build", true, "rebuild the image afterwards if it changed")
	cmd.Flags().BoolVar(&f.syncuser, "syncuser", false, "afterwards, make the image's user and group IDs match the controller's")
	cmd.Flags().StringArrayVarP(&f.binds, "bind", "b", nil, "bind SRC[:DST[:ro|copy]] into the image for the command (copy: copy the file in, then put the image's own back)")
	cmd.Flags().StringVarP(&f.node, "node", "n", "", "run in a read-only view of the image with this node's system and runtime overlays on it")
}

// parseBinds reads --bind values.
func parseBinds(list []string) ([]config.MountConf, error) {
	var out []config.MountConf
	for _, b := range list {
		parts := strings.Split(b, ":")
		m := config.MountConf{Source: parts[0]}
		if len(parts) > 1 {
			m.Dest = parts[1]
		}
		if len(parts) > 2 {
			switch parts[2] {
			case "ro":
				m.ReadOnly = true
			case "copy":
				m.Copy = true
			case "rw", "":
			default:
				return nil, fmt.Errorf("--bind %q: %q is not ro or copy", b, parts[2])
			}
		}
		if len(parts) > 3 || m.Source == "" || !filepath.IsAbs(m.Source) || (m.Dest != "" && !filepath.IsAbs(m.Dest)) {
			return nil, fmt.Errorf("--bind %q: want SRC[:DST[:ro|copy]] with absolute paths", b)
		}
		out = append(out, m)
	}
	return out, nil
}

func newImageExecCmd() *cobra.Command {
	var f execFlags
	cmd := &cobra.Command{
		Use:   "exec NAME -- CMD [ARG...]",
		Short: "Run a command inside an image, then rebuild it if it changed",
		Long: `Run CMD chrooted into the image in a private mount namespace, with /proc,
/sys and /dev mounted, the controller's /etc/resolv.conf and warewulf.conf's
'image mounts' bound in. Afterwards the image is rebuilt if its rootfs
changed, unless --nobuild. The exit status is the command's.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return imgExec(cmd, args[0], args[1:], nil, f)
		},
	}
	f.add(cmd)
	return cmd
}

func newImageShellCmd() *cobra.Command {
	var f execFlags
	cmd := &cobra.Command{
		Use:   "shell NAME",
		Short: "Open a shell inside an image, then rebuild it if it changed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			sh := "/bin/sh"
			if image.Exists(cfg, args[0]) {
				if _, err := os.Stat(cfg.ImageRootfs(args[0]) + "/bin/bash"); err == nil {
					sh = "/bin/bash"
				}
			}
			return imgExec(cmd, args[0], []string{sh}, []string{"PS1=[image " + args[0] + "] \\w# "}, f)
		},
	}
	f.add(cmd)
	return cmd
}

// imgExitError carries a command's exit status out of wwctl.
type imgExitError int

func (e imgExitError) Error() string { return fmt.Sprintf("the command exited with status %d", int(e)) }
func (e imgExitError) ExitCode() int { return int(e) }

func imgExec(cmd *cobra.Command, name string, argv, env []string, f execFlags) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	binds, err := parseBinds(f.binds)
	if err != nil {
		return err
	}
	layer := ""
	if f.node != "" {
		// A read-only view of the image as the node sees it: nothing to
		// rebuild or sync afterwards.
		if layer, err = nodeLayer(cfg, f.node); err != nil {
			return err
		}
		defer os.RemoveAll(layer)
		f.nobuild, f.syncuser = true, false
	}
	if !f.build {
		f.nobuild = true
	}
	// Ctrl-C and Ctrl-\ at the terminal are for the command (a shell keeps
	// running); wwctl catches them so as not to die, without ignoring them,
	// which the command would inherit. SIGTERM is passed on.
	swallow := make(chan os.Signal, 1)
	signal.Notify(swallow, os.Interrupt, syscall.SIGQUIT)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	code, err := image.Exec(ctx, cfg, name, argv, image.ExecOptions{
		Stdin: cmd.InOrStdin(), Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(), Env: env, Binds: binds, Layer: layer})
	stop()
	signal.Stop(swallow)
	if err != nil {
		return err
	}
	if f.syncuser {
		if err := syncUsers(cmd, cfg, name); err != nil {
			return err
		}
	}
	if !f.nobuild {
		bctx, bstop := imgSignalContext()
		defer bstop()
		if err := imgBuild(bctx, cmd, cfg, []string{name}, image.BuildOptions{}); err != nil {
			return err
		}
	}
	if code != 0 {
		return imgExitError(code)
	}
	return nil
}

func newImageSyncuserCmd() *cobra.Command {
	var o image.SyncUserOptions
	var build bool
	cmd := &cobra.Command{
		Use:   "syncuser NAME",
		Short: "Give the image's users and groups the controller's UIDs and GIDs",
		Long: `For every user and group name that both the image and the controller know,
give it the controller's ID in the image's /etc/passwd and /etc/group, and
move the files it owns. Without --write, only show what would change.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			report, err := image.SyncUser(cfg, args[0], o)
			for _, l := range report {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			if err != nil {
				return err
			}
			if len(report) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "users and groups already match the controller")
			} else if !o.Write {
				fmt.Fprintln(cmd.OutOrStdout(), "(not changed: run again with --write)")
			}
			if build && o.Write {
				ctx, stop := imgSignalContext()
				defer stop()
				return imgBuild(ctx, cmd, cfg, args, image.BuildOptions{})
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&o.Write, "write", "w", false, "apply the changes")
	cmd.Flags().BoolVarP(&build, "build", "b", false, "rebuild the image afterwards")
	return cmd
}

func newImageKernelsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "kernels [NAME...]",
		Short: "List the kernels found in images (the newest is each image's default)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			names := args
			if len(names) == 0 {
				if names, err = image.List(cfg); err != nil {
					return err
				}
			}
			for _, n := range names {
				if !image.Exists(cfg, n) {
					return fmt.Errorf("image %q does not exist", n)
				}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tKERNEL\tDEFAULT\tPATH")
			for _, n := range names {
				ks, err := image.FindKernels(cfg.ImageRootfs(n))
				if err != nil {
					return err
				}
				for i, k := range ks {
					rel := strings.TrimPrefix(k.Path, cfg.ImageRootfs(n))
					fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", n, k.Version, i == 0, rel)
				}
			}
			return tw.Flush()
		},
	}
}

// syncUsers makes an image's user and group IDs match the controller's
// (the --syncuser of import, build, exec and shell).
func syncUsers(cmd *cobra.Command, cfg *config.Config, name string) error {
	changes, err := image.SyncUser(cfg, name, image.SyncUserOptions{Write: true})
	if err != nil {
		return fmt.Errorf("syncuser: %w", err)
	}
	for _, c := range changes {
		fmt.Fprintln(cmd.ErrOrStderr(), "syncuser: "+c)
	}
	return nil
}

// nodeLayer writes a node's overlays into a temporary directory, for a
// read-only view of its image.
func nodeLayer(cfg *config.Config, name string) (string, error) {
	db, err := node.Load(cfg.NodesConf())
	if err != nil {
		return "", err
	}
	if _, ok := db.Nodes[name]; !ok {
		return "", fmt.Errorf("--node %s: no such node", name)
	}
	dir, err := os.MkdirTemp("", "wwctl-node-")
	if err != nil {
		return "", err
	}
	if err := overlay.NodeView(cfg, db, name, dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("--node %s: %w", name, err)
	}
	return dir, nil
}
