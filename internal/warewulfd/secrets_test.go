package warewulfd

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/wwclient"
)

// secretNodes: n1 has an asset key, n2 none; the profile lists the overlays
// as upstream's default does, ssh.host_keys in the system overlay too.
const secretNodes = `nodeprofiles:
  default:
    image name: img
    system overlay: [wwinit, wwclient, hostname, ssh.host_keys, ssh.known_hosts]
    runtime overlay: [hosts, ssh.authorized_keys, ssh.host_keys, syncuser]
nodes:
  n1:
    profiles: [default]
    asset key: n1-tag-XYZZY
    network devices:
      default: {hwaddr: "52:54:00:00:00:01", ipaddr: 127.0.0.11, netmask: 255.0.0.0}
  n2:
    profiles: [default]
    network devices:
      default: {hwaddr: "52:54:00:00:00:02", ipaddr: 127.0.0.12, netmask: 255.0.0.0}
`

// overlayEntries decodes an overlay image: gzip members, each a cpio archive.
func overlayEntries(t *testing.T, body []byte) []wwclient.Entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil // not an overlay image
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	entries, err := wwclient.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	return entries
}

// secretsIn names the secrets a response carries: private keys, shadow
// files, the asset key.
func secretsIn(t *testing.T, body []byte) []string {
	var found []string
	check := func(where string, data []byte) {
		if bytes.Contains(data, []byte("PRIVATE KEY")) {
			found = append(found, where+": a private key")
		}
		if bytes.Contains(data, []byte("n1-tag-XYZZY")) {
			found = append(found, where+": n1's asset key")
		}
	}
	check("body", body)
	for _, e := range overlayEntries(t, body) {
		check(e.Name, e.Data)
		if e.Name == "etc/shadow" || strings.HasPrefix(e.Name, "etc/ssh/ssh_host_") && !strings.HasSuffix(e.Name, ".pub") {
			found = append(found, e.Name)
		}
	}
	return found
}

// TestStrangerGetsNoSecret is H1 of the December 2026 audit: from a
// stranger's address and an unprivileged port, no route of either node,
// the one with an asset key or the one without, hands out a private key,
// a shadow file or an asset key, whatever query it tries; the node itself
// (its address, a privileged port, its tag) gets its secrets.
func TestStrangerGetsNoSecret(t *testing.T) {
	needRoot(t) // privileged source ports; syncuser reads /etc/shadow
	e := newEnv(t, envOptions{nodesConf: secretNodes, secure: true, built: true})
	stranger := clientFrom("127.0.0.66", 0)
	get := func(c *http.Client, path string) (int, []byte) {
		resp, err := c.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	served := 0
	for _, mac := range []string{"52:54:00:00:00:01", "52-54-00-00-00-02"} {
		for _, route := range append(nodeRoutes, "/status", "/metrics", "/efi/") {
			for _, q := range []string{"", "?compress=gz", "?assetkey=", "?assetkey=guess"} {
				path := route + mac + q
				if !strings.HasSuffix(route, "/") {
					path = route
				}
				// A privileged port too: a stranger may be root on its machine.
				for _, c := range []*http.Client{stranger, clientFrom("127.0.0.66", privilegedPort(t, "127.0.0.66"))} {
					code, body := get(c, path)
					if code == http.StatusOK {
						served++
					}
					if s := secretsIn(t, body); len(s) > 0 {
						t.Errorf("%s from a stranger (%d): %s", path, code, strings.Join(s, ", "))
					}
				}
			}
		}
	}
	// n2's system overlay is public (no asset key): it was served, and
	// holds the public host keys and the wwclient config, no secret.
	code, sys := get(stranger, "/system/52:54:00:00:00:02")
	names := map[string]bool{}
	for _, en := range overlayEntries(t, sys) {
		names[en.Name] = true
	}
	if code != 200 || !names["etc/ssh/ssh_host_ed25519_key.pub"] || !names["warewulf/config"] {
		t.Fatalf("n2's system overlay: %d, entries %v", code, names)
	}
	// The node itself gets its secrets in the runtime overlay.
	port := privilegedPort(t, "127.0.0.11")
	resp, err := clientFrom("127.0.0.11", port).Get(e.base + "/runtime/52:54:00:00:00:01?assetkey=n1-tag-XYZZY")
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := secretsIn(t, rt)
	if resp.StatusCode != 200 || !strings.Contains(strings.Join(got, " "), "etc/ssh/ssh_host_ed25519_key") || !strings.Contains(strings.Join(got, " "), "etc/shadow") {
		t.Fatalf("n1's runtime overlay from n1: %s, secrets %v", resp.Status, got)
	}
	for _, en := range overlayEntries(t, rt) {
		if (en.Name == "etc/shadow" || strings.HasSuffix(en.Name, "_key")) && en.Mode&0o077&^0o040 != 0 {
			t.Errorf("%s: mode %o, want root-only (a group may read shadow)", en.Name, en.Mode&0o7777)
		}
	}
	if strings.Contains(e.logs.String(), "n1-tag-XYZZY") {
		t.Errorf("the asset key is in the log")
	}
	t.Logf("%d stranger requests answered 200, none with a secret", served)
}
