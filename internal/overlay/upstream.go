package overlay

import (
	"os"
	"path/filepath"
)

// UpstreamImages are a node's overlay images of kind where upstream
// Warewulf builds them (wwprovisiondir/overlays/NODE/__SYSTEM__.img,
// __RUNTIME__.img, and their .gz), those that exist. warewulfd serves the
// first when this project has built nothing for the node, so the nodes of
// a site moving from upstream boot from what upstream built until the
// first build here.
func UpstreamImages(provisionDir, nodeName, kind string) []string {
	name := map[string]string{System: "__SYSTEM__", Runtime: "__RUNTIME__"}[kind]
	if name == "" || ValidName(nodeName) != nil {
		return nil
	}
	var out []string
	for _, suffix := range []string{".img", ".img.gz"} {
		p := filepath.Join(provisionDir, "overlays", nodeName, name+suffix)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	return out
}
