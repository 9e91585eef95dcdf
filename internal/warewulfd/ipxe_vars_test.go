package warewulfd

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/etc"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

// TestIpxeUpstreamVariables: a site's iPXE template written with upstream
// Warewulf's variables renders, and so does every shipped template.
func TestIpxeUpstreamVariables(t *testing.T) {
	n := &node.Node{Name: "n1"}
	n.ClusterName = "c1"
	n.NetDevs = map[string]*node.NetDev{"default": {Device: "eth0", Hwaddr: "52:54:00:00:00:ff", Ipaddr: "10.10.0.5"}, "ib": {Device: "ib0"}}
	n.Tags = map[string]string{"console": "ttyS0"}
	d := &IpxeData{Name: "n1", Hwaddr: "52:54:00:00:00:ff", BaseURL: "http://10.10.0.1:9873", KernelVersion: "6.1.0",
		KernelArgs: "quiet", Compression: "gz", Message: "m", Retry: 5, Id: "n1", Hostname: "n1", Fqdn: "n1", Cluster: "c1",
		Ipaddr: "10.10.0.1", Ipaddr6: "fd00:10::1", Port: "9873", Authority: "10.10.0.1:9873", WaitTime: "5",
		Tags: n.Tags, NetDevs: overlay.NetDevsOf(n), Node: n}
	dir := t.TempDir()
	site := `{{.KernelVersion}}{{range $devname, $netdev := .NetDevs}}{{if and $netdev.Hwaddr $netdev.Device}} ifname={{$netdev.Device}}:{{$netdev.Hwaddr}} {{end}}{{end}} {{.Ipaddr}} {{.Ipaddr6}} {{.Authority}} {{.Tags.console | upper}} {{.Cluster}}`
	if err := os.WriteFile(filepath.Join(dir, "site.ipxe"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	var c templateCache
	out, err := c.render(dir, "site", nil, d)
	if want := "6.1.0 ifname=eth0:52:54:00:00:00:ff  10.10.0.1 fd00:10::1 10.10.0.1:9873 TTYS0 c1"; err != nil || string(out) != want {
		t.Fatalf("site template: %q %v, want %q", out, err, want)
	}
	names, _ := fs.Glob(etc.FS, "ipxe/*.ipxe")
	for _, name := range names {
		base := strings.TrimSuffix(filepath.Base(name), ".ipxe")
		out, err := c.render(dir, base, nil, d)
		if err != nil || !strings.HasPrefix(string(out), "#!ipxe\n") || strings.Contains(string(out), "<no value>") {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
	for _, want := range []string{"default", "localdisk", "unconfigured", "unknown"} {
		if _, err := fs.Stat(etc.FS, "ipxe/"+want+".ipxe"); err != nil {
			t.Errorf("no shipped iPXE template %s", want)
		}
	}
}
