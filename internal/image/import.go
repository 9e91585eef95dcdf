package image

import (
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
	if !o.Force && Exists(cfg, name) {
		return nil, fmt.Errorf("image %q already exists; use --force to replace it", name)
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
	var meta *Meta
	err := stage(cfg, name, o.Force, func(rootfs string) (*Meta, error) {
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
