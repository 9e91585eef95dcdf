package config

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/etc"
)

func TestShippedConfigLoads(t *testing.T) {
	data, err := etc.FS.ReadFile("warewulf.conf")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Warewulf.Port != 9873 || !c.Warewulf.Secure || c.NodesConf() != "/etc/warewulf/nodes.conf" ||
		c.ImageRootfs("rocky") != "/var/lib/warewulf/chroots/rocky/rootfs" || len(c.NFS.ExportPaths) != 2 {
		t.Errorf("unexpected values: %+v", c)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Warewulf.Port != 9873 || c.Warewulf.UpdateInterval != 60 || c.Network != "192.168.200.0" || c.IpxeSourceDir() != "/usr/lib/ipxe" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestAnswerRouterSolicitations(t *testing.T) {
	for doc, want := range map[string]bool{
		"": true,
		"warewulf:\n  answer router solicitations: true\n":  true,
		"warewulf:\n  answer router solicitations: false\n": false,
	} {
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Warewulf.AnswersRouterSolicitations(); got != want {
			t.Errorf("%q: answers router solicitations %v, want %v", doc, got, want)
		}
		// A written config keeps the choice.
		data, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if c2, err := Parse(data); err != nil || c2.Warewulf.AnswersRouterSolicitations() != want {
			t.Errorf("%q: after Marshal: %v, %v", doc, c2.Warewulf.AnswersRouterSolicitations(), err)
		}
	}
	if _, err := Parse([]byte("warewulf:\n  answer router solicitations: maybe\n")); err == nil || !strings.Contains(err.Error(), "maybe") {
		t.Errorf("a non-boolean value: error %v does not name it", err)
	}
}

func TestValidationNamesTheKey(t *testing.T) {
	cases := map[string]string{
		"ipaddr: 10.0.0.999\n":                          "ipaddr",
		"netmask: 255.0.255.0\n":                        "netmask",
		"warewulf: {port: 70000}\n":                     "port",
		"warewulf: {image compression: lz4}\n":          "lz4",
		"dhcp: {range start: nope}\n":                   "range start",
		"dhcp: {server: kea}\n":                         "kea",
		"tftp: {ipxe: {\"00:00\": ../../etc/shadow}}\n": "../../etc/shadow",
		"nfs: {export paths: [{path: home}]}\n":         "home",
		"ssh: {key types: [dss]}\n":                     "dss",
		"warewulf: [\n":                                 "invalid YAML",
	}
	for doc, want := range cases {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v does not name %q", doc, err, want)
		}
	}
}

func TestRelocatedConfigKeepsStateBesideIt(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "warewulf.conf")
	os.WriteFile(file, []byte("ipaddr: 10.0.0.1\npaths:\n  wwprovisiondir: /srv/provision\n"), 0o644)
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.NodesConf() != filepath.Join(dir, "nodes.conf") || c.ImageStoreDir() != filepath.Join(dir, "state/warewulf/chroots") ||
		c.ProvisionDir() != "/srv/provision" || c.DataDir() != "/usr/share/warewulf" {
		t.Errorf("paths: nodes %s images %s provision %s data %s", c.NodesConf(), c.ImageStoreDir(), c.ProvisionDir(), c.DataDir())
	}
}

func TestSandbox(t *testing.T) {
	dir := t.TempDir()
	file, err := WriteSandbox(dir, SandboxOptions{Ipaddr: "10.99.0.1", Port: 9999, Datadir: "/src/ww"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	link, _ := os.Readlink(c.DistOverlayDir())
	if c.Ipaddr != "10.99.0.1" || c.Warewulf.Port != 9999 || link != "/src/ww/overlays" ||
		c.SiteOverlayDir() != filepath.Join(dir, "state/overlays") || c.NodesConf() != filepath.Join(dir, "etc/warewulf/nodes.conf") {
		t.Errorf("sandbox: %+v", c)
	}
	if _, err := WriteSandbox(dir, SandboxOptions{}); err == nil {
		t.Error("a second sandbox overwrote the first")
	}
	// network is derived, not written: moving ipaddr moves it (the
	// overlay corpus runner merges a case's ipaddr into the sandbox's).
	data, _ := os.ReadFile(file)
	moved, err := Parse(bytes.Replace(data, []byte("ipaddr: 10.99.0.1\n"), []byte("ipaddr: 192.168.0.1/24\n"), 1))
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != "10.99.0.0" || moved.Network != "192.168.0.0" {
		t.Errorf("network %q, after moving ipaddr %q (want 10.99.0.0, 192.168.0.0)", c.Network, moved.Network)
	}
}

func TestEnvAndFlag(t *testing.T) {
	t.Setenv(EnvVar, "/from/env.conf")
	if Path("") != "/from/env.conf" || Path("/flag.conf") != "/flag.conf" {
		t.Error("flag must beat $WW_CONFIG, which must beat the default")
	}
	t.Setenv(EnvVar, "")
	if Path("") != DefaultFile {
		t.Error("default")
	}
}

func TestUpstreamPathsAreParents(t *testing.T) {
	c, err := Parse([]byte("paths:\n  sysconfdir: /opt/etc\n  datadir: /opt/share\n  localstatedir: /opt/var\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.NodesConf() != "/opt/etc/warewulf/nodes.conf" || c.DistOverlayDir() != "/opt/share/warewulf/overlays" ||
		c.StateDir() != "/opt/var/warewulf" || c.ImageStoreDir() != "/opt/var/warewulf/chroots" ||
		c.SiteOverlayDir() != "/opt/var/warewulf/overlays" || c.ProvisionDir() != "/srv/warewulf" {
		t.Errorf("nodes %s overlays %s state %s chroots %s site %s provision %s", c.NodesConf(), c.DistOverlayDir(),
			c.StateDir(), c.ImageStoreDir(), c.SiteOverlayDir(), c.ProvisionDir())
	}
}

func TestIpaddrWithPrefix(t *testing.T) {
	c, err := Parse([]byte("ipaddr: 10.0.0.1/24\nipaddr6: fd00::1/64\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Ipaddr != "10.0.0.1" || c.Netmask != "255.255.255.0" || c.Network != "10.0.0.0" ||
		c.Ipaddr6 != "fd00::1" || c.PrefixLen6 != "64" || c.IpCIDR() != "10.0.0.1/24" || c.NetworkCIDR() != "10.0.0.0/24" {
		t.Errorf("got %s %s %s %s/%s", c.Ipaddr, c.Netmask, c.Network, c.Ipaddr6, c.PrefixLen6)
	}
	// An explicit netmask wins over the prefix, as upstream has it.
	if c, err = Parse([]byte("ipaddr: 10.0.0.1/24\nnetmask: 255.255.0.0\n")); err != nil || c.Netmask != "255.255.0.0" {
		t.Errorf("netmask %s, %v", c.Netmask, err)
	}
	if _, err := Parse([]byte("ipaddr: 10.0.0.1/33\n")); err == nil || !strings.Contains(err.Error(), "10.0.0.1/33") {
		t.Errorf("bad prefix: %v", err)
	}
}

func TestUpstreamDefaultsAndWarnings(t *testing.T) {
	// Upstream's own warewulf.conf (4.7) says nothing of secure or ports.
	doc := `ipaddr: 10.0.0.1
netmask: 255.255.252.0
warewulf:
  update interval: 60
  tls: true
  grubboot: false
  systemd name: warewulfd
dhcp:
  range6 start: fd00::10
  range6 end: fd00::ff
wwclient:
  port: 987
api:
  enabled: false
frobnicate: 1
image mounts:
  - source: /etc/resolv.conf
    copy: true
`
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Warewulf.Secure || !c.DHCP.Enabled || !c.NFS.Enabled || !c.Warewulf.AutobuildOverlays || c.Warewulf.TLSPort != 9874 || c.WWClient.Port != 987 {
		t.Errorf("upstream defaults: %+v", c.Warewulf)
	}
	got := strings.Join(c.Warnings(), "\n")
	for _, key := range []string{"wwclient: port:", "frobnicate: unknown"} {
		if !strings.Contains(got, key) {
			t.Errorf("no warning names %q:\n%s", key, got)
		}
	}
	if strings.Contains(got, "grubboot") || strings.Contains(got, "api") || strings.Contains(got, "tls") {
		t.Errorf("a key left at its default warns:\n%s", got)
	}
	// Only a dnsmasq config serves TFTP itself.
	for server, warns := range map[string]bool{"dhcpd": true, "dnsmasq": false} {
		c, err := Parse([]byte("ipaddr: 10.0.0.1\nnetmask: 255.255.255.0\ndhcp:\n  server: " + server + "\n  tftp: true\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.Warnings(), "\n"); strings.Contains(got, "dhcp: tftp: read but not acted on") != warns {
			t.Errorf("server %s, dhcp: tftp: warnings %q", server, got)
		}
	}
}

func TestUpstreamEnvVar(t *testing.T) {
	t.Setenv(EnvVar, "")
	t.Setenv(UpstreamEnvVar, "/up.conf")
	if Path("") != "/up.conf" {
		t.Error("WAREWULFCONF not read")
	}
}

// TestAddressesFromInterfaces: a warewulf.conf without ipaddr and netmask
// takes them from the machine's interfaces, as upstream does.
func TestAddressesFromInterfaces(t *testing.T) {
	file := filepath.Join(t.TempDir(), "warewulf.conf")
	os.WriteFile(file, []byte("warewulf:\n  port: 9873\n"), 0o644)
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.String() == c.Ipaddr {
			if net.IP(n.Mask).String() != c.Netmask {
				t.Errorf("netmask %s, the interface has %s", c.Netmask, net.IP(n.Mask))
			}
			return
		}
	}
	if outboundIP() != nil {
		t.Errorf("ipaddr %s is no address of this machine", c.Ipaddr)
	} else if c.Ipaddr != "192.168.200.1" {
		t.Errorf("no address to find, yet ipaddr %s", c.Ipaddr)
	}
}

// TestRelocatedDirsApart: a relocated warewulf.conf without paths keeps
// site overlays, built overlays and images in separate directories.
func TestRelocatedDirsApart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "warewulf.conf")
	os.WriteFile(file, []byte("ipaddr: 10.0.0.1\n"), 0o644)
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for name, p := range map[string]string{"site overlays": c.SiteOverlayDir(), "built overlays": filepath.Dir(c.OverlayProvisionDir("n1")),
		"images": c.ImageStoreDir(), "built images": filepath.Dir(c.ImageProvisionDir("x")), "state": c.StateDir()} {
		if other, dup := seen[p]; dup {
			t.Errorf("%s and %s are both %s", name, other, p)
		}
		seen[p] = name
	}
}
