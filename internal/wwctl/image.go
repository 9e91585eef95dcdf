package wwctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"sort"
	"strconv"
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
		Use:     "import SOURCE [NAME]",
		Aliases: []string{"pull"},
		Short:   "Import an image from a registry, an OCI/docker archive, a directory or a tarball",
		Long: `Import SOURCE into the image store as NAME (default: SOURCE's last path
element, as upstream). SOURCE is one of
  docker://REGISTRY/REPO:TAG       a registry
  oci-archive:FILE[:REF]           an OCI archive (podman save --format oci-archive)
  docker-archive:FILE[:REF]        a docker save archive
  oci:DIR[:REF]                    an OCI layout directory
  containers-storage:REF           an image of podman/buildah on this host
  DIR                              a root filesystem (chroot) directory
  FILE.tar[.gz|.zst|.xz|.bz2]      a tar of a root filesystem
As upstream, WAREWULF_OCI_USERNAME, WAREWULF_OCI_PASSWORD, WAREWULF_OCI_PLATFORM
and WAREWULF_OCI_NOHTTPS stand in for flags not given.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
			} else {
				name = path.Base(strings.TrimRight(args[0], "/"))
				if err := image.ValidName(name); err != nil {
					return fmt.Errorf("no NAME given and %s's last element is not an image name: %w", args[0], err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "image name: %s\n", name)
			}
			if err := importEnv(cmd, &o); err != nil {
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
			o.Update = update
			if update && o.Force {
				return errors.New("--force replaces the image and --update writes over it: give one")
			}
			if _, err := image.Import(ctx, cfg, args[0], name, o); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %s as %s\n", args[0], name)
			if syncuser {
				if err := syncUsers(cmd, cfg, name); err != nil {
					return err
				}
			}
			if build {
				return imgBuild(ctx, cmd, cfg, []string{name}, image.BuildOptions{Force: true})
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.Force, "force", "f", false, "replace an existing image of that name")
	f.BoolVarP(&update, "update", "u", false, "write the source over an existing image of that name, keeping the files the source lacks")
	f.BoolVar(&syncuser, "syncuser", false, "make the image's user and group IDs match the controller's")
	f.BoolVar(&o.PlainHTTP, "nohttps", false, "accept any TLS certificate and plain HTTP from the registry (as --plain-http)")
	f.BoolVarP(&build, "build", "b", false, "build the image after importing it")
	f.StringVar(&o.Platform, "platform", "", "ARCH or OS/ARCH[/VARIANT] to pick from a multi-arch image (default: this host's)")
	f.BoolVar(&o.PlainHTTP, "plain-http", false, "talk plain HTTP to the registry (implies --tls-skip-verify)")
	f.BoolVar(&o.TLSSkipVerify, "tls-skip-verify", false, "do not verify the registry's TLS certificate")
	f.StringVar(&o.AuthFile, "authfile", "", "auth.json with registry credentials (default: the containers/image search path)")
	f.StringVar(&o.Username, "username", "", "registry user name")
	f.StringVar(&o.Password, "password", "", "registry password (prefer --password-stdin)")
	f.StringVar(&o.Password, "passwd", "", "upstream's other name of --password")
	f.Lookup("passwd").Hidden = true
	f.StringVar(&o.Platform, "arch", "", "upstream's other name of --platform")
	f.Lookup("arch").Hidden = true
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the registry password from stdin")
	return cmd
}

// importEnv fills the registry options no flag gave from upstream's
// WAREWULF_OCI_* variables.
func importEnv(cmd *cobra.Command, o *image.ImportOptions) error {
	fl := cmd.Flags()
	set := func(names ...string) bool {
		for _, n := range names {
			if fl.Changed(n) {
				return true
			}
		}
		return false
	}
	if v, ok := os.LookupEnv("WAREWULF_OCI_NOHTTPS"); ok && !set("nohttps", "plain-http") {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("WAREWULF_OCI_NOHTTPS=%q: not a boolean", v)
		}
		o.PlainHTTP = b
	}
	if v := os.Getenv("WAREWULF_OCI_USERNAME"); v != "" && o.Username == "" {
		o.Username = v
	}
	if v := os.Getenv("WAREWULF_OCI_PASSWORD"); v != "" && o.Password == "" && !set("password-stdin") {
		o.Password = v
	}
	if v := os.Getenv("WAREWULF_OCI_PLATFORM"); v != "" && o.Platform == "" {
		o.Platform = v
	}
	return nil
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
		if k, ok := r.Info.DefaultKernel(); ok {
			kv = "kernel " + k.Version
		} else if len(r.Info.Kernels) > 0 {
			kv = "only debug kernels"
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

// imgListFlags are upstream's `image list` columns.
type imgListFlags struct {
	long, kernel, size, chroot, compressed bool
}

func newImageListCmd() *cobra.Command {
	var f imgListFlags
	cmd := &cobra.Command{
		Use:     "list [NAME...]",
		Aliases: []string{"ls"},
		Short:   "List images: size, kernel, nodes using each, built or stale",
		Long: `List the images (or those named). Without options: size of the built archive,
default kernel, nodes booting each, and whether it is built, stale or not.
Upstream's tables: -s the built image's size (uncompressed; --compressed the
archive's, -c the rootfs's), -k the default kernel's version, -l all of these
with the rootfs's and the build's times.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			names, err := image.List(cfg)
			if err != nil {
				return err
			}
			if len(args) > 0 {
				for _, a := range args {
					if !image.Exists(cfg, a) {
						return fmt.Errorf("image %q does not exist", a)
					}
				}
				names = filterNames(names, args)
			}
			if f.long || f.kernel || f.size || f.chroot || f.compressed {
				return imgListTable(cmd.OutOrStdout(), cfg, names, f)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tSIZE\tKERNEL\tNODES\tSTATE")
			for _, n := range names {
				size, kernel, state := "-", "-", "not built"
				if bi, err := image.ReadBuildInfo(cfg, n); err == nil {
					size = imgHumanSize(bi.ImageSize)
					if k, ok := bi.DefaultKernel(); ok {
						kernel = k.Version
					}
					state = "built"
					if stale, _ := image.Stale(cfg, n); stale {
						state = "stale"
					}
				} else if ks, _ := image.FindKernels(cfg.ImageRootfs(n)); len(ks) > 0 {
					if k, ok := image.DefaultKernel(ks); ok {
						kernel = k.Version
					}
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
	fl := cmd.Flags()
	fl.BoolVarP(&f.long, "long", "l", false, "show nodes, kernel version, creation and build times and size")
	fl.BoolVarP(&f.kernel, "kernel", "k", false, "show nodes and the default kernel's version")
	fl.BoolVarP(&f.size, "size", "s", false, "show nodes and the built image's size (uncompressed)")
	fl.BoolVarP(&f.chroot, "chroot", "c", false, "show nodes and the rootfs's size")
	fl.BoolVar(&f.compressed, "compressed", false, "show nodes and the built (compressed) archive's size")
	return cmd
}

// filterNames keeps the names in list that want names, in list's order.
func filterNames(list, want []string) []string {
	keep := map[string]bool{}
	for _, w := range want {
		keep[w] = true
	}
	var out []string
	for _, n := range list {
		if keep[n] {
			out = append(out, n)
		}
	}
	return out
}

// mergedNodes is every node of nodes.conf with its profiles merged in.
func mergedNodes(cfg *config.Config) ([]*node.Node, error) {
	db, err := node.Load(cfg.NodesConf())
	if err != nil {
		return nil, err
	}
	return db.AllMerged()
}

// imgListTable prints upstream's `image list -l/-k/-s/-c/--compressed`
// tables.
func imgListTable(w io.Writer, cfg *config.Config, names []string, f imgListFlags) error {
	all, err := mergedNodes(cfg)
	if err != nil {
		return err
	}
	nodes := map[string]int{}
	for _, n := range all {
		nodes[n.ImageName]++
	}
	var rows [][]string
	for _, name := range names {
		bi, _ := image.ReadBuildInfo(cfg, name) // nil: not built, size 0 as upstream
		row := []string{name, strconv.Itoa(nodes[name])}
		if f.long || f.kernel {
			kv := ""
			if ks, _ := image.FindKernels(cfg.ImageRootfs(name)); len(ks) > 0 {
				if k, ok := image.DefaultKernel(ks); ok {
					kv = k.ShortVersion()
				}
			}
			row = append(row, kv)
		}
		if f.long {
			created, built := time.Unix(0, 0), time.Unix(0, 0)
			if st, err := os.Stat(cfg.ImageDir(name)); err == nil {
				created = st.ModTime()
			}
			if bi != nil {
				if st, err := os.Stat(filepath.Join(cfg.ImageProvisionDir(name), bi.Image)); err == nil {
					built = st.ModTime()
				}
			}
			row = append(row, created.Format(time.RFC822), built.Format(time.RFC822))
		}
		if f.long || !f.kernel {
			var size int64
			switch {
			case f.chroot:
				if size, err = treeSize(cfg.ImageRootfs(name)); err != nil {
					return err
				}
			case bi == nil:
			case f.compressed:
				size = bi.ImageSize
			default:
				// Upstream's size is that of its uncompressed NAME.img.
				if size = bi.RawSize; size == 0 {
					size = bi.ImageSize // built before the raw size was recorded
				}
			}
			row = append(row, imgHumanSize(size))
		}
		rows = append(rows, row)
	}
	switch {
	case f.long:
		return table(w, []string{"IMAGE NAME", "NODES", "KERNEL VERSION", "CREATION TIME", "MODIFICATION TIME", "SIZE"}, rows)
	case f.kernel:
		return table(w, []string{"IMAGE NAME", "NODES", "KERNEL VERSION"}, rows)
	}
	return table(w, []string{"IMAGE NAME", "NODES", "SIZE"}, rows)
}

// treeSize is the sum of the sizes of the files under dir (links count
// their own length, as upstream's).
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

func newImageShowCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "show [-a] NAME",
		Short: "Show an image's rootfs; with -a its source, kernels, build and users",
		Long: `Print the image's root filesystem directory (as upstream). With -a, upstream's
Name, KernelVersion, Rootfs, Nr nodes and Nodes lines, then the image's
source, digest, platform, import time, kernels, build state and the nodes and
profiles naming it.`,
		Args: cobra.ExactArgs(1),
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
			if !all {
				fmt.Fprintln(out, cfg.ImageRootfs(name))
				return nil
			}
			ks, _ := image.FindKernels(cfg.ImageRootfs(name))
			kv := "not found"
			if k, ok := image.DefaultKernel(ks); ok {
				kv = k.ShortVersion()
			}
			nodes, profiles, n, err := image.Users(cfg, name)
			if err != nil {
				return err
			}
			booting, err := imgBootingNodes(cfg, name)
			if err != nil {
				return err
			}
			// Upstream's lines first, as it prints them.
			fmt.Fprintf(out, "Name: %s\n", name)
			fmt.Fprintf(out, "KernelVersion: %s\n", kv)
			fmt.Fprintf(out, "Rootfs: %s\n", cfg.ImageRootfs(name))
			fmt.Fprintf(out, "Nr nodes: %d\n", n)
			fmt.Fprintf(out, "Nodes: [%s]\n", strings.Join(booting, " "))
			fmt.Fprintf(out, "Source: %s\n", dash(m.Source))
			fmt.Fprintf(out, "Digest: %s\n", dash(m.Digest))
			if m.Platform != "" {
				fmt.Fprintf(out, "Platform: %s\n", m.Platform)
			}
			if !m.Imported.IsZero() {
				fmt.Fprintf(out, "Imported: %s\n", m.Imported.Format(time.RFC3339))
			}
			var vs []string
			for _, k := range ks {
				vs = append(vs, k.Version)
			}
			fmt.Fprintf(out, "Kernels: %s\n", dash(strings.Join(vs, ", ")))
			if bi, err := image.ReadBuildInfo(cfg, name); err == nil {
				stale, _ := image.Stale(cfg, name)
				state := "up to date"
				if stale {
					state = "stale (run wwctl image build)"
				}
				fmt.Fprintf(out, "Built: %s, %s\n", bi.Built.Format(time.RFC3339), state)
				fmt.Fprintf(out, "Archive: %s/%s (%s, %s, %d files)\n", cfg.ImageProvisionDir(name), bi.Image, bi.Compression, imgHumanSize(bi.ImageSize), bi.Files)
			} else {
				fmt.Fprintf(out, "Built: no\n")
			}
			fmt.Fprintf(out, "Named by: nodes %s; profiles %s\n", dash(strings.Join(nodes, ",")), dash(strings.Join(profiles, ",")))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show everything about the image, not only its rootfs")
	return cmd
}

// imgBootingNodes are the nodes that boot image name, by their own setting
// or a profile's.
func imgBootingNodes(cfg *config.Config, name string) ([]string, error) {
	db, err := node.Load(cfg.NodesConf())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range db.NodeNames() {
		m, err := db.Merged(n)
		if err != nil {
			return nil, err
		}
		if m.ImageName == name {
			out = append(out, n)
		}
	}
	return out, nil
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
	var build bool
	cmd := &cobra.Command{
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
			if build {
				ctx, stop := imgSignalContext()
				defer stop()
				return imgBuild(ctx, cmd, cfg, args[1:], image.BuildOptions{})
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&build, "build", "b", false, "build the image after renaming it")
	return cmd
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
		Use:     "kernels [NAME...]",
		Aliases: []string{"kernel"},
		Short:   "List the kernels found in images, which is each one's default, and how many nodes boot it",
		Long: `List the kernels in the images (all, or those named), by their path in the
image: upstream's short version, whether it is the image's default (the
newest that is neither a +debug nor a rescue kernel) and how many nodes boot
it. Rescue kernels are listed but never built.`,
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
			all, err := mergedNodes(cfg)
			if err != nil {
				return err
			}
			var rows [][]string
			for _, n := range names {
				ks, err := image.ListKernels(cfg.ImageRootfs(n))
				if err != nil {
					return err
				}
				var bootable []image.Kernel
				for _, k := range ks {
					if !k.Rescue {
						bootable = append(bootable, k)
					}
				}
				def, hasDef := image.DefaultKernel(bootable)
				// Each node of the image counts for the kernel it boots.
				count := map[string]int{}
				for _, nd := range all {
					if nd.ImageName != n {
						continue
					}
					want := ""
					if nd.Kernel != nil {
						want = nd.Kernel.Version
					}
					if k, ok := image.ChooseKernel(bootable, want); ok {
						count[k.Version]++
					}
				}
				sort.Slice(ks, func(i, j int) bool { return ks[i].Rel < ks[j].Rel })
				for _, k := range ks {
					isDef := hasDef && !k.Rescue && k.Version == def.Version
					nodes := 0
					if !k.Rescue {
						nodes = count[k.Version]
					}
					rows = append(rows, []string{n, k.Rel, k.ShortVersion(), strconv.FormatBool(isDef), strconv.Itoa(nodes)})
				}
			}
			return table(cmd.OutOrStdout(), []string{"Image", "Kernel", "Version", "Default", "Nodes"}, rows)
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
