// Command wwctl is the admin CLI: it keeps the node database and builds
// images and overlays.
package main

import (
	"os"
	"runtime/debug"

	"github.com/containers/storage/pkg/reexec"

	"github.com/warewulf-ng/warewulf/internal/wwctl"
)

func main() {
	// containers/storage (image import from containers-storage:) re-executes
	// this binary for some layer operations.
	if reexec.Init() {
		return
	}
	// A short-lived process: trade memory for less garbage collection when
	// it loads a 10,000-node nodes.conf.
	debug.SetGCPercent(400)
	os.Exit(wwctl.Execute())
}
