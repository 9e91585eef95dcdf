// Command wwctl is the admin CLI: it keeps the node database and builds
// images and overlays.
package main

import (
	"os"

	"github.com/warewulf-ng/warewulf/internal/wwctl"
)

func main() { os.Exit(wwctl.Execute()) }
