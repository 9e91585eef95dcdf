package overlay

import (
	"errors"
	"io"
	"os"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/wwclient"
)

// NodeView writes into dir what a node's system and runtime overlays put
// on its root filesystem (for `wwctl image exec --node`): each overlay
// image is brought up to date, then unpacked as the node unpacks it.
func NodeView(cfg *config.Config, db *node.DB, name, dir string) error {
	for _, kind := range []string{System, Runtime} {
		if err := BuildNode(cfg, db, name, kind); err != nil {
			return err
		}
		parts, err := Parts(cfg, name, kind)
		if err != nil {
			return err
		}
		var readers []io.Reader
		for _, p := range parts {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			readers = append(readers, f)
		}
		entries, err := wwclient.Decode(io.MultiReader(readers...))
		if err != nil {
			return err
		}
		if _, err := wwclient.Apply(dir, entries); err != nil {
			return errors.Join(errors.New(kind+" overlay of "+name), err)
		}
	}
	return nil
}
