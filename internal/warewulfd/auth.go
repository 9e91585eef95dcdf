package warewulfd

import (
	"crypto/subtle"
	"net/http"
	"strconv"
)

// The checks a node-specific request passes before it gets a byte.
// docs/security.md lists every route with the checks it applies.

// checkAssetKey applies the node's asset key, the SMBIOS chassis asset tag
// that iPXE (${asset}), wwinit and wwclient send as ?assetkey=. It applies
// on every node-specific route, in secure mode or not, as upstream does: a
// node without a key is not checked. It returns the status and why a
// request is refused, or 0. The key itself never goes into the reason.
func checkAssetKey(n *nodeEntry, r *http.Request) (int, string) {
	key := n.AssetKey
	if key == "" {
		return 0, ""
	}
	got := r.URL.Query().Get("assetkey")
	if got == "" {
		return http.StatusUnauthorized, "asset key missing (the node has one; its firmware sent no asset tag)"
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(key)) != 1 {
		return http.StatusForbidden, "asset key does not match the node's"
	}
	return 0, ""
}

// checkRuntime applies the secure-mode rules for runtime overlays, which
// carry secrets; it returns why a request is refused, or "".
func checkRuntime(st *state, q *request) string {
	if st.cfg.Warewulf.TLS && q.r.TLS == nil {
		// As upstream: with TLS on, the runtime overlay goes by HTTPS only.
		return "tls is on: the runtime overlay is served over HTTPS only"
	}
	if !st.cfg.Warewulf.Secure {
		return ""
	}
	if !q.remote.IsValid() {
		return "unknown source address"
	}
	if p := q.remote.Port(); p >= 1024 {
		return "source port " + strconv.Itoa(int(p)) + " is not privileged (secure mode wants < 1024)"
	}
	if !q.node.hasAddr(q.remote.Addr()) {
		return "source address " + q.remote.Addr().Unmap().String() + " is not one of the node's addresses"
	}
	return ""
}
