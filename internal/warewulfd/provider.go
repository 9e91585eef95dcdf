package warewulfd

import (
	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/image"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

// Provider finds the built files warewulfd serves. Production uses the
// image and overlay packages; tests point it at files in a temp dir.
type Provider interface {
	// Image returns the kernel, image and kmods of an image.
	Image(cfg *config.Config, imageName, kernelVersion string) (*image.Artifacts, error)
	// Overlay returns the files that, sent in order, are a node's overlay
	// image of kind (overlay.System or overlay.Runtime).
	Overlay(cfg *config.Config, nodeName, kind string) ([]string, error)
	// BuildOverlay builds a node's overlay image of kind.
	BuildOverlay(cfg *config.Config, db *node.DB, nodeName, kind string) error
}

// Built is the Provider backed by the image and overlay packages.
type Built struct{}

// Image implements Provider.
func (Built) Image(cfg *config.Config, name, kver string) (*image.Artifacts, error) {
	return image.BuiltArtifacts(cfg, name, kver)
}

// Overlay implements Provider.
func (Built) Overlay(cfg *config.Config, nodeName, kind string) ([]string, error) {
	parts, err := overlay.Parts(cfg, nodeName, kind)
	if err != nil || len(parts) == 0 {
		// Nothing built here: the image upstream built, if there is one.
		if up := overlay.UpstreamImages(cfg.ProvisionDir(), nodeName, kind); len(up) > 0 {
			return up[:1], nil
		}
	}
	return parts, err
}

// BuildOverlay implements Provider.
func (Built) BuildOverlay(cfg *config.Config, db *node.DB, nodeName, kind string) error {
	return overlay.BuildNode(cfg, db, nodeName, kind)
}
