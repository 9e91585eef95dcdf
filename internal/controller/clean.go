package controller

import (
	"os"
	"path/filepath"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// Clean removes what the controller no longer needs, as upstream's `wwctl
// clean`: the built overlays of nodes no longer in nodes.conf, the built
// artifacts of images no longer in the image store, and the image cache.
// It returns what it removed.
func Clean(cfg *config.Config, db *node.DB) ([]string, error) {
	var removed []string
	rm := func(p string) error {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		removed = append(removed, p)
		return nil
	}
	shared := filepath.Base(cfg.OverlaySharedDir())
	overlays := filepath.Dir(cfg.OverlayProvisionDir("x"))
	ents, _ := os.ReadDir(overlays)
	for _, e := range ents {
		if _, ok := db.Nodes[e.Name()]; ok || e.Name() == shared {
			continue
		}
		if err := rm(filepath.Join(overlays, e.Name())); err != nil {
			return removed, err
		}
	}
	images := filepath.Dir(cfg.ImageProvisionDir("x"))
	ents, _ = os.ReadDir(images)
	for _, e := range ents {
		if _, err := os.Stat(cfg.ImageDir(e.Name())); err == nil {
			continue
		}
		if err := rm(filepath.Join(images, e.Name())); err != nil {
			return removed, err
		}
	}
	// The cache's contents, not the directory: it may be a mount point or
	// carry the site's permissions.
	ents, _ = os.ReadDir(cfg.CacheDir())
	for _, e := range ents {
		if err := rm(filepath.Join(cfg.CacheDir(), e.Name())); err != nil {
			return removed, err
		}
	}
	return removed, nil
}
