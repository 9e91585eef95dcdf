// Package overlay renders overlays (directory trees with Go templates) per
// node and builds them into compressed cpio archives.
//
// A node's overlay image of one kind is up to three gzip-compressed newc
// archives sent one after the other (the kernel unpacks concatenated
// archives as one): the plain files of its overlay set, shared by every
// node with that set; the templates that render alike for every node
// (hosts), also shared; and the templates rendered for this node alone.
package overlay

import (
	"reflect"
	"sync"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// The two kinds of overlay image a node has.
const (
	System  = "system"
	Runtime = "runtime"
)

var (
	buildersMu sync.Mutex
	builders   = map[string]*builderEntry{} // by provision directory
)

// builderEntry is the Builder of one provision tree and the last
// configuration seen equal to the one it was made with.
type builderEntry struct {
	b    *Builder
	seen *config.Config
}

// builderFor keeps one Builder per provision tree, so repeated BuildNode
// calls reuse the merged nodes and parsed templates. warewulfd loads a new
// *config.Config on every reload: an equal one reuses the Builder, a
// changed one replaces it, so reloads never pile Builders up.
func builderFor(cfg *config.Config) *Builder {
	buildersMu.Lock()
	defer buildersMu.Unlock()
	key := cfg.ProvisionDir()
	e := builders[key]
	switch {
	case e != nil && (e.seen == cfg || e.b.cfg == cfg):
	case e != nil && reflect.DeepEqual(*e.b.cfg, *cfg):
		e.seen = cfg
	default:
		e = &builderEntry{b: NewBuilder(cfg, Options{RescanAfter: time.Second}), seen: cfg}
		builders[key] = e
	}
	return e.b
}

// Parts returns the built archive files which, sent one after the other,
// make node's overlay image of kind (System or Runtime). The kernel unpacks
// concatenated compressed cpio archives as one. It fails if the overlay is
// not built; BuildNode brings it up to date with its inputs.
func Parts(cfg *config.Config, nodeName, kind string) ([]string, error) {
	return builderFor(cfg).Parts(nodeName, kind)
}

// BuildNode builds one node's overlay image of kind, if its inputs changed.
// It is safe to call concurrently, also for the same node: builds are
// serialized and the second finds the image up to date. warewulfd calls it
// on first request when `autobuild overlays` is on. db is only read; the
// merged nodes of the last db seen are reused while the same *node.DB is
// passed, so pass the new one node.Load returns after nodes.conf changed.
func BuildNode(cfg *config.Config, db *node.DB, nodeName, kind string) error {
	_, err := builderFor(cfg).Build(db, []string{nodeName}, kind)
	return err
}

// Ranges is Parts without copying: the byte ranges (of the shared archives
// and of the pack holding the node's own archive) to send one after the
// other, e.g. with sendfile at an offset.
func Ranges(cfg *config.Config, nodeName, kind string) ([]Part, error) {
	return builderFor(cfg).Ranges(nodeName, kind)
}
