package warewulfd

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/overlay"
)

// TestUpstreamURLForms: every URL form upstream's routes document reaches
// the same files; the node comes from the path, else wwid=, else the ARP
// entry of the source address.
func TestUpstreamURLForms(t *testing.T) {
	arp := filepath.Join(t.TempDir(), "arp")
	os.WriteFile(arp, []byte("IP address       HW type     Flags       HW address            Mask     Device\n"+
		"127.0.0.1        0x1         0x2         52:54:00:00:00:01     *        lo\n"), 0o644)
	old := arpFile
	arpFile = arp
	defer func() { arpFile = old }()
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	sys := e.nodeOverlay("n1", overlay.System, 100)
	kernel := e.imageFile("vmlinuz")
	for path, want := range map[string][]byte{
		"/system/52:54:00:00:00:01":                      sys,
		"/system?wwid=52:54:00:00:00:01":                 sys,
		"/system":                                        sys, // ARP
		"/overlay-system/52:54:00:00:00:01":              sys,
		"/provision/52:54:00:00:00:01?stage=system":      sys,
		"/provision?wwid=52-54-00-00-00-01&stage=system": sys,
		"/provision?stage=system":                        sys,
		"/provision?stage=kernel":                        kernel,
		"/kernel?wwid=52:54:00:00:00:01":                 kernel,
	} {
		resp, body := e.get(path)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Errorf("%s: %s, %d bytes (want %d)", path, resp.Status, len(body), len(want))
		}
	}
	for _, path := range []string{"/provision/52:54:00:00:00:01", "/provision?wwid=52:54:00:00:00:01", "/ipxe"} {
		resp, body := e.get(path)
		if resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte("#!ipxe")) {
			t.Errorf("%s: %s %q", path, resp.Status, body)
		}
	}
	for _, path := range []string{"/provision?stage=bogus", "/system?wwid=nonsense", "/efiboot"} {
		if resp, _ := e.get(path); resp.StatusCode != 404 {
			t.Errorf("%s: %s, want 404", path, resp.Status)
		}
	}
	arpFile = filepath.Join(t.TempDir(), "none")
	if resp, _ := e.get("/system"); resp.StatusCode != 404 {
		t.Errorf("/system without an ARP entry: %s", resp.Status)
	}
}

// TestUpstreamOverlayImage: a node for which this project has built no
// overlay gets the image upstream built (overlays/NODE/__SYSTEM__.img),
// as a site moving from upstream has them; discovering a node removes
// those images, as upstream does, so autobuild makes fresh ones.
func TestUpstreamOverlayImage(t *testing.T) {
	e := newEnv(t, envOptions{built: true, nodesConf: `nodeprofiles:
  default: {}
nodes:
  n1:
    network devices:
      default: {hwaddr: "52:54:00:00:00:01"}
  n2:
    discoverable: true
`})
	dir := filepath.Join(e.cfg.ProvisionDir(), "overlays")
	writeFile(t, filepath.Join(dir, "n1", "__SYSTEM__.img"), []byte("upstream system overlay"))
	writeFile(t, filepath.Join(dir, "n2", "__RUNTIME__.img.gz"), []byte("stale"))
	resp, body := e.get("/system/52:54:00:00:00:01")
	if resp.StatusCode != 200 || string(body) != "upstream system overlay" {
		t.Fatalf("%s %q", resp.Status, body)
	}
	if resp, _ := e.get("/ipxe/52:54:00:00:00:02"); resp.StatusCode != 200 {
		t.Fatalf("discovery: %s", resp.Status)
	}
	if _, err := os.Stat(filepath.Join(dir, "n2", "__RUNTIME__.img.gz")); err == nil {
		t.Error("the discovered node's upstream overlay image is still there")
	}
}
