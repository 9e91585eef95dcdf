// Command warewulfd serves nodes: DHCP, TFTP and HTTP.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "warewulfd: not yet built")
	os.Exit(1)
}
