// Command wwctl is the admin CLI: it keeps the node database and builds
// images and overlays.
package main

import (
	"os"

	"github.com/containers/storage/pkg/reexec"

	"github.com/warewulf-ng/warewulf/internal/wwctl"
)

func main() {
	// containers/storage (image import from containers-storage:) re-executes
	// this binary for some layer operations.
	if reexec.Init() {
		return
	}
	os.Exit(wwctl.Execute())
}
