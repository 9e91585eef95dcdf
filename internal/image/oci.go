package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"

	"github.com/containers/image/v5/docker"
	dockerarchive "github.com/containers/image/v5/docker/archive"
	ciimage "github.com/containers/image/v5/image"
	"github.com/containers/image/v5/manifest"
	ociarchive "github.com/containers/image/v5/oci/archive"
	ocilayout "github.com/containers/image/v5/oci/layout"
	"github.com/containers/image/v5/pkg/blobinfocache/none"
	cistorage "github.com/containers/image/v5/storage"
	"github.com/containers/image/v5/types"
	"github.com/containers/storage/pkg/archive"
	godigest "github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
)

// transports maps the source prefixes Import accepts to containers/image
// transports; what follows the prefix is that transport's reference.
var transports = []struct {
	prefix string
	t      types.ImageTransport
}{
	{"docker://", docker.Transport},
	{"oci-archive:", ociarchive.Transport},
	{"docker-archive:", dockerarchive.Transport},
	{"oci:", ocilayout.Transport},
	{"containers-storage:", cistorage.Transport},
}

func transportNames() string {
	var names []string
	for _, tr := range transports {
		names = append(names, tr.prefix)
	}
	return strings.Join(names, ", ")
}

func parseReference(source string) (types.ImageReference, error) {
	for _, tr := range transports {
		if rest, ok := strings.CutPrefix(source, tr.prefix); ok {
			if tr.t == docker.Transport {
				rest = "//" + rest // the docker transport wants its "//"
			}
			ref, err := tr.t.ParseReference(rest)
			if err != nil {
				return nil, fmt.Errorf("source %q: %w", source, err)
			}
			return ref, nil
		}
	}
	return nil, fmt.Errorf("source %q: unknown transport", source)
}

// knownArch are the OCI architecture names a bare --platform may be.
var knownArch = map[string]bool{"386": true, "amd64": true, "arm": true, "arm64": true, "loong64": true,
	"mips": true, "mipsle": true, "mips64": true, "mips64le": true, "ppc64": true, "ppc64le": true,
	"riscv64": true, "s390x": true}

func knownArchList() string {
	l := make([]string, 0, len(knownArch))
	for a := range knownArch {
		l = append(l, a)
	}
	sort.Strings(l)
	return strings.Join(l, ", ")
}

func (o ImportOptions) systemContext() (*types.SystemContext, error) {
	sys := &types.SystemContext{AuthFilePath: o.AuthFile}
	if o.PlainHTTP || o.TLSSkipVerify {
		// containers/image falls back to plain HTTP only when TLS checks
		// are off.
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
		sys.OCIInsecureSkipTLSVerify = true
	}
	if o.Username != "" || o.Password != "" {
		if o.Username == "" || o.Password == "" {
			return nil, errors.New("--username and --password go together")
		}
		sys.DockerAuthConfig = &types.DockerAuthConfig{Username: o.Username, Password: o.Password}
	}
	if o.AuthFile != "" {
		if _, err := os.Stat(o.AuthFile); err != nil {
			return nil, fmt.Errorf("--authfile: %w", err)
		}
	}
	if o.Platform != "" && !strings.Contains(o.Platform, "/") {
		// Upstream's --platform and --arch name an architecture alone.
		if !knownArch[o.Platform] {
			return nil, fmt.Errorf("platform %q is neither OS/ARCH[/VARIANT] nor an architecture (%s)", o.Platform, knownArchList())
		}
		sys.OSChoice, sys.ArchitectureChoice = "linux", o.Platform
	} else if o.Platform != "" {
		parts := strings.Split(o.Platform, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("platform %q is not OS/ARCH[/VARIANT]", o.Platform)
		}
		sys.OSChoice, sys.ArchitectureChoice = parts[0], parts[1]
		if len(parts) == 3 {
			sys.VariantChoice = parts[2]
		}
	}
	return sys, nil
}

// importOCI unpacks the layers of an image, in order, into rootfs. Each
// layer streams from the source through a digest check into
// containers/storage's ApplyLayer, which applies whiteouts and opaque
// directories, hard links, devices, owners, modes and xattrs.
func importOCI(ctx context.Context, source, rootfs string, o ImportOptions) (*Meta, error) {
	ref, err := parseReference(source)
	if err != nil {
		return nil, err
	}
	sys, err := o.systemContext()
	if err != nil {
		return nil, err
	}
	src, err := ref.NewImageSource(ctx, sys)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	unparsed := ciimage.UnparsedInstance(src, nil)
	topManifest, topType, err := unparsed.Manifest(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the manifest: %w", err)
	}
	digest, err := manifest.Digest(topManifest)
	if err != nil {
		return nil, err
	}
	// A multi-arch image: pick the instance for --platform (or this host).
	var instance *godigest.Digest
	if manifest.MIMETypeIsMultiImage(topType) {
		list, err := manifest.ListFromBlob(topManifest, topType)
		if err != nil {
			return nil, err
		}
		d, err := list.ChooseInstance(sys)
		if err != nil {
			return nil, err
		}
		instance = &d
		unparsed = ciimage.UnparsedInstance(src, instance)
	}
	img, err := ciimage.FromUnparsedImage(ctx, sys, unparsed)
	if err != nil {
		return nil, err
	}
	inspect, err := img.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	if o.Platform != "" && (inspect.Os != sys.OSChoice || inspect.Architecture != sys.ArchitectureChoice ||
		(sys.VariantChoice != "" && inspect.Variant != sys.VariantChoice)) {
		return nil, fmt.Errorf("the image is for %s/%s, not --platform %s", inspect.Os, inspect.Architecture, o.Platform)
	}
	if o.Platform == "" && inspect.Architecture != "" && inspect.Architecture != runtime.GOARCH {
		logrus.Warnf("%s is for %s/%s, not this controller's %s", source, inspect.Os, inspect.Architecture, runtime.GOARCH)
	}
	// Some sources (containers-storage) serve their layers under other
	// digests than the manifest's.
	layers, err := src.LayerInfosForCopy(ctx, instance)
	if err != nil {
		return nil, err
	}
	if layers == nil {
		layers = img.LayerInfos()
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("%s has no layers", source)
	}
	prog := newProgress(o.Progress)
	defer prog.wait()
	cache := none.NoCache
	for i, layer := range layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := applyLayer(ctx, src, cache, layer, rootfs, prog, i, len(layers)); err != nil {
			prog.abort()
			return nil, fmt.Errorf("layer %d/%d (%s): %w", i+1, len(layers), layer.Digest, err)
		}
	}
	platform := inspect.Os + "/" + inspect.Architecture
	if inspect.Variant != "" {
		platform += "/" + inspect.Variant
	}
	return &Meta{Source: source, Digest: digest.String(), Platform: platform}, nil
}

func applyLayer(ctx context.Context, src types.ImageSource, cache types.BlobInfoCache, layer types.BlobInfo,
	rootfs string, prog *progress, i, n int) error {
	rc, size, err := src.GetBlob(ctx, layer, cache)
	if err != nil {
		return err
	}
	defer rc.Close()
	if size < 0 {
		size = layer.Size
	}
	if err := layer.Digest.Validate(); err != nil {
		return err
	}
	verifier := layer.Digest.Verifier()
	r := io.Reader(ctxReader{ctx, io.TeeReader(rc, verifier)})
	r = prog.layer(r, layer.Digest.Encoded(), size, i, n)
	if _, err := archive.ApplyLayer(rootfs, r); err != nil {
		return err
	}
	// The tar may end before the compressed stream does: read the rest so
	// the whole blob is checked.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	if !verifier.Verified() {
		return errors.New("digest mismatch: the blob is corrupt")
	}
	return nil
}
