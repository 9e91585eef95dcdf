package warewulfd

import (
	"net/http"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/overlay"
)

// nodeRoutes are every route that answers for one node.
var nodeRoutes = []string{"/ipxe/", "/kernel/", "/image/", "/kmods/", "/system/", "/runtime/"}

// TestAssetKeyOnEveryRoute: a node with an asset key gets nothing from any
// of its routes without the key (401) or with a wrong one (403), each
// logged with why and never with the key; with the key it boots as before.
func TestAssetKeyOnEveryRoute(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("s3cret-tag"), secure: false})
	e.nodeOverlay("n1", overlay.System, 100)
	e.nodeOverlay("n1", overlay.Runtime, 100)
	const mac = "52:54:00:00:00:01"
	for _, route := range nodeRoutes {
		for query, want := range map[string]int{
			"":                                 http.StatusUnauthorized,
			"?assetkey=":                       http.StatusUnauthorized,
			"?assetkey=wrong":                  http.StatusForbidden,
			"?assetkey=s3cret":                 http.StatusForbidden, // a prefix
			"?assetkey=S3CRET-TAG":             http.StatusForbidden,
			"?assetkey=s3cret-tag":             http.StatusOK,
			"?compress=gz&assetkey=s3cret-tag": http.StatusOK,
		} {
			resp, body := e.get(route + mac + query)
			if resp.StatusCode != want {
				t.Errorf("%s%s: %s, want %d", route, query, resp.Status, want)
			}
			if want != http.StatusOK && len(body) > 64 {
				t.Errorf("%s%s: refused with %d bytes of body", route, query, len(body))
			}
		}
	}
	e.awaitLog(t, "refused", "node=n1", "stage=system", "asset key missing")
	e.awaitLog(t, "refused", "node=n1", "stage=kernel", "asset key does not match")
	if strings.Contains(e.logs.String(), "s3cret-tag") {
		t.Errorf("the asset key is in the log:\n%s", e.logs.String())
	}
	// The status output names the node, never its key.
	_, status := e.get(StatusPath)
	if strings.Contains(string(status), "s3cret") {
		t.Errorf("the asset key is in %s: %s", StatusPath, status)
	}
}

// TestNoAssetKeyNoCheck: a node without a key boots as it always did,
// whatever its firmware sends.
func TestNoAssetKeyNoCheck(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), secure: false})
	e.nodeOverlay("n1", overlay.System, 100)
	e.nodeOverlay("n1", overlay.Runtime, 100)
	for _, route := range nodeRoutes {
		for _, q := range []string{"", "?assetkey=", "?assetkey=To+Be+Filled+By+O.E.M."} {
			if resp, _ := e.get(route + "52:54:00:00:00:01" + q); resp.StatusCode != http.StatusOK {
				t.Errorf("%s%s: %s", route, q, resp.Status)
			}
		}
	}
}
