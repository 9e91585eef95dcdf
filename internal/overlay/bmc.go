package overlay

import (
	"slices"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// BMCPasswordOverlay is the runtime overlay that carries the BMC password
// wwinit's 50-ipmi sets: the system overlay, which anyone naming the
// node's MAC may fetch, holds none (docs/security.md).
const BMCPasswordOverlay = "ipmi.password"

// BMCPasswordUnsent names the nodes (of names; none: all) whose wwinit
// would set their BMC's password (wwinit a system overlay, ipmi write, a
// password) but whose runtime overlays lack BMCPasswordOverlay, so the
// password never reaches them.
func BMCPasswordUnsent(db *node.DB, names []string) []string {
	if len(names) == 0 {
		names = db.NodeNames()
	}
	var out []string
	for _, name := range names {
		n, err := db.Merged(name)
		if err != nil || n.Ipmi == nil || !n.Ipmi.Write.Bool() || n.Ipmi.Password == "" {
			continue
		}
		if slices.Contains(n.SystemOverlay, "wwinit") && !slices.Contains(n.RuntimeOverlay, BMCPasswordOverlay) {
			out = append(out, name)
		}
	}
	return out
}
