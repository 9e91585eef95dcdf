// Command wwclient runs on nodes and keeps the runtime overlay fresh.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "wwclient: not yet built")
	os.Exit(1)
}
