// Package overlay renders overlays (directory trees with Go templates) per
// node and builds them into compressed cpio archives.
package overlay

import (
	"errors"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// The two kinds of overlay image a node has.
const (
	System  = "system"
	Runtime = "runtime"
)

// Parts returns the built archive files which, sent one after the other,
// make node's overlay image of kind (System or Runtime). The kernel unpacks
// concatenated compressed cpio archives as one. It fails if the overlay is
// not built or is older than its inputs; BuildNode builds it.
func Parts(cfg *config.Config, nodeName, kind string) ([]string, error) {
	return nil, errors.New("overlay: not implemented yet")
}

// BuildNode builds one node's overlay image of kind, if its inputs changed.
// It is safe to call concurrently; warewulfd calls it on first request when
// `autobuild overlays` is on.
func BuildNode(cfg *config.Config, db *node.DB, nodeName, kind string) error {
	return errors.New("overlay: not implemented yet")
}
