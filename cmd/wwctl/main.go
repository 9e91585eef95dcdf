// Command wwctl is the admin CLI: it keeps the node database and builds
// images and overlays.
package main

import (
	"os"
	"runtime/debug"

	"github.com/warewulf-ng/warewulf/internal/wwctl"
)

func main() {
	// A short-lived process: trade memory for less garbage collection when
	// it loads a 10,000-node nodes.conf.
	debug.SetGCPercent(400)
	os.Exit(wwctl.Execute())
}
