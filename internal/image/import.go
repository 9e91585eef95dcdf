package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containers/storage/pkg/archive"
	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// ImportOptions tune Import. The registry fields apply to OCI sources only.
type ImportOptions struct {
	Force bool // replace an existing image of that name
	// Update writes the source over an existing image of that name: files
	// the source lacks stay (upstream's --update).
	Update bool

	Platform      string // os/arch[/variant] of a multi-arch image; default the controller's
	PlainHTTP     bool   // talk plain HTTP to a docker:// registry (and skip TLS checks)
	TLSSkipVerify bool   // accept any TLS certificate from a docker:// registry
	AuthFile      string // auth.json to read credentials from (default: the usual places)
	Username      string
	Password      string

	// Progress receives progress bars when it is a terminal, log lines
	// otherwise; nil is silent.
	Progress io.Writer
}

// IsOCISource reports whether source names a containers/image reference.
func IsOCISource(source string) bool {
	for _, tr := range transports {
		if strings.HasPrefix(source, tr.prefix) {
			return true
		}
	}
	return false
}

// Import brings source into the store as image name. Source is a
// containers/image reference (docker://, oci-archive:, docker-archive:,
// oci:, containers-storage:), a directory holding a root filesystem, or a
// tar archive of one (gzip, zstd, xz or bzip2 compressed, or not). The
// image appears only when the import is complete.
func Import(ctx context.Context, cfg *config.Config, source, name string, o ImportOptions) (*Meta, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	exists := Exists(cfg, name)
	if !o.Force && !o.Update && exists {
		return nil, existsError(name)
	}
	// Upstream's file://PATH is a docker save archive.
	if rest, ok := strings.CutPrefix(source, "file://"); ok {
		source = "docker-archive:" + rest
	}
	// So is a plain file upstream imports; here a plain file may also be a
	// tar of a root filesystem: what it holds decides.
	if st, err := os.Stat(source); err == nil && st.Mode().IsRegular() {
		if kind := archiveKind(source); kind != "" {
			note(o.Progress, "%s: %s", source, map[string]string{"docker-archive:": "a docker save archive", "oci-archive:": "an OCI archive"}[kind])
			source = kind + source
		}
	}
	var fill func(rootfs string) (*Meta, error)
	switch {
	case IsOCISource(source):
		// Bad references and options fail here, before the store is touched.
		if _, err := parseReference(source); err != nil {
			return nil, err
		}
		if _, err := o.systemContext(); err != nil {
			return nil, fmt.Errorf("importing %s: %w", source, err)
		}
		fill = func(rootfs string) (*Meta, error) { return importOCI(ctx, source, rootfs, o) }
	default:
		st, err := os.Stat(source)
		if err != nil {
			if strings.Contains(source, ":") && !strings.HasPrefix(source, "/") && !strings.HasPrefix(source, ".") {
				return nil, fmt.Errorf("source %q is neither a file, a directory nor a known transport (%s)", source, transportNames())
			}
			return nil, fmt.Errorf("source %q: %w", source, err)
		}
		abs, err := filepath.Abs(source)
		if err != nil {
			return nil, err
		}
		switch {
		case st.IsDir():
			if store, _ := filepath.Abs(cfg.ImageStoreDir()); store == abs || strings.HasPrefix(store, strings.TrimSuffix(abs, "/")+"/") {
				return nil, fmt.Errorf("source %q holds the image store %s: import a chroot directory, not a parent of the store", source, store)
			}
			fill = func(rootfs string) (*Meta, error) {
				note(o.Progress, "copying %s", abs)
				return importDir(ctx, abs, rootfs)
			}
		case st.Mode().IsRegular():
			fill = func(rootfs string) (*Meta, error) {
				note(o.Progress, "unpacking %s (%s)", abs, sizeString(st.Size()))
				return importTar(ctx, abs, rootfs)
			}
		default:
			return nil, fmt.Errorf("source %q is neither a directory nor a regular file", source)
		}
	}
	if o.Update && exists {
		inner := fill
		fill = func(rootfs string) (*Meta, error) {
			note(o.Progress, "updating image %s: its files first, then the source's over them", name)
			if err := copyTree(ctx, cfg.ImageRootfs(name), rootfs); err != nil {
				return nil, err
			}
			return inner(rootfs)
		}
	}
	var meta *Meta
	err := stage(cfg, name, o.Force || o.Update, func(rootfs string) (*Meta, error) {
		m, err := fill(rootfs)
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m.Imported = time.Now().UTC().Truncate(time.Second)
		meta = m
		return m, nil
	})
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", source, err)
	}
	logrus.Infof("imported %s as image %s", source, name)
	return meta, nil
}

func existsError(name string) error {
	return fmt.Errorf("image %q exists: specify --force (replace it), --update (write over it), or choose a different name", name)
}

// archiveKind tells a docker save archive ("docker-archive:") or an OCI
// archive ("oci-archive:") from other files (""): an uncompressed tar with
// manifest.json or oci-layout at its top. Only the headers are read.
func archiveKind(file string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	tr := tar.NewReader(f)
	oci := false
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "manifest.json":
			return "docker-archive:"
		case "oci-layout":
			oci = true
		}
	}
	if oci {
		return "oci-archive:"
	}
	return ""
}

// importDir copies a chroot directory.
func importDir(ctx context.Context, src, rootfs string) (*Meta, error) {
	if err := copyTree(ctx, src, rootfs); err != nil {
		return nil, err
	}
	return &Meta{Source: "dir:" + src}, ctx.Err()
}

// importTar unpacks a (compressed) tar of a root filesystem.
func importTar(ctx context.Context, src, rootfs string) (*Meta, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := io.Reader(f)
	if ctx.Done() != nil {
		r = ctxReader{ctx, f}
	}
	if err := archive.Untar(r, rootfs, &archive.TarOptions{}); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return &Meta{Source: "tar:" + src}, nil
}

// ctxReader stops a long read (an unpack) when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func note(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
