package dhcp

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

func renderFor(t *testing.T, server, extra string) (string, []byte) {
	t.Helper()
	cfg := testConfig(t, "  server: "+server+"\n"+extra)
	out, err := RenderConfig(cfg, testDB(t))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), server+".conf")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return file, out
}

func mustContain(t *testing.T, text []byte, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(string(text), l) {
			t.Errorf("missing %q in:\n%s", l, text)
		}
	}
}

func TestDnsmasqConfig(t *testing.T) {
	for _, c := range []struct{ name, extra string }{
		{"static", ""},
		{"range and tftp", withRange + "  tftp: true\n  interfaces: [eth9]\n  domain: cluster.example\n"},
		{"proxy", "  proxy: true\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			file, out := renderFor(t, "dnsmasq", c.extra)
			if !strings.Contains(c.extra, "proxy") {
				mustContain(t, out,
					"dhcp-host=52:54:00:00:00:01,set:ww-1,10.0.0.11,n1,3600",
					"dhcp-host=52:54:00:00:01:01,set:ww-2,10.1.0.11,n1-ib,3600",
					"dhcp-option=tag:ww-1,option:router,10.0.0.254",
					"dhcp-range=10.1.0.0,static,255.255.0.0,3600",
					"dhcp-userclass=set:uc-iPXE,iPXE",
					"dhcp-boot=tag:uc-iPXE,http://10.0.0.1:9873/ipxe/${mac}?assetkey=${asset:uristring}",
					"dhcp-boot=tag:arch-0,tag:!uc-iPXE,undionly.kpxe,,10.0.0.1",
					"dhcp-boot=tag:arch-11,tag:!uc-iPXE,arm64-efi/snponly.efi,,10.0.0.1",
					// warewulfd's /efi/ finds Debian's snponly.efi under upstream's name.
					"dhcp-boot=tag:vc-HTTPClient,tag:arch-16,tag:!uc-iPXE,http://10.0.0.1:9873/efi/ipxe-snponly-x86_64.efi",
					"dhcp-option-force=tag:vc-HTTPClient,tag:arch-16,tag:!uc-iPXE,60,HTTPClient",
				)
			}
			testenv.Need(t, "needs dnsmasq", haveCmd("dnsmasq"))
			cmd := exec.Command("dnsmasq", "--test", "--conf-file="+file)
			if msg, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(msg), "syntax check OK") {
				t.Fatalf("dnsmasq --test rejects the config: %v\n%s\n%s", err, msg, out)
			}
		})
	}
	_, out := renderFor(t, "dnsmasq", withRange+"  tftp: true\n  interfaces: [eth9]\n")
	mustContain(t, out, "interface=eth9", "dhcp-range=10.0.0.100,10.0.0.101,255.255.255.0,3600", "enable-tftp", "tftp-root=/usr/lib/ipxe")
}

// dnsmasq serving ipxesource itself knows no aliases: with `tftp: true`
// the config names the file that is there (Debian's snponly.efi for
// upstream's default ipxe-snponly-x86_64.efi), and keeps upstream's name
// where warewulfd serves it (HTTP boot) or where no file matches.
func TestDnsmasqTFTPNamesPresentFile(t *testing.T) {
	src := t.TempDir()
	for _, f := range []string{"undionly.kpxe", "snponly.efi"} {
		os.WriteFile(filepath.Join(src, f), []byte(f), 0o644)
	}
	cfg := testConfig(t, "  server: dnsmasq\n  tftp: true\n")
	cfg.Paths.IpxeSource = src
	out, err := RenderConfig(cfg, testDB(t))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out,
		"tftp-root="+src,
		"dhcp-boot=tag:arch-7,tag:!uc-iPXE,snponly.efi,,10.0.0.1",
		"dhcp-boot=tag:arch-9,tag:!uc-iPXE,snponly.efi,,10.0.0.1",
		"dhcp-boot=tag:arch-0,tag:!uc-iPXE,undionly.kpxe,,10.0.0.1",
		"dhcp-boot=tag:arch-11,tag:!uc-iPXE,arm64-efi/snponly.efi,,10.0.0.1",
		"http://10.0.0.1:9873/efi/ipxe-snponly-x86_64.efi",
	)
	cfg.DHCP.TFTP = false // another TFTP server serves `configure tftp`'s copies
	out, err = RenderConfig(cfg, testDB(t))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, "dhcp-boot=tag:arch-7,tag:!uc-iPXE,ipxe-snponly-x86_64.efi,,10.0.0.1")
}

func TestDhcpdConfig(t *testing.T) {
	file, out := renderFor(t, "dhcpd", withRange)
	mustContain(t, out,
		"option arch code 93 = unsigned integer 16;",
		"if exists user-class and option user-class = \"iPXE\" {",
		"elsif substring(option vendor-class-identifier, 0, 10) = \"HTTPClient\" and option arch = 00:10 {",
		"elsif option arch = 00:0b {\n  # pxe-11\n  filename \"arm64-efi/snponly.efi\";",
		"host n1 {\n  hardware ethernet 52:54:00:00:00:01;\n  fixed-address 10.0.0.11;",
		"range 10.0.0.100 10.0.0.101;",
		"subnet 10.1.0.0 netmask 255.255.0.0 {",
	)
	testenv.Need(t, "needs dhcpd (isc-dhcp-server)", haveCmd("dhcpd"))
	msg, err := exec.Command("dhcpd", "-t", "-4", "-cf", file).CombinedOutput()
	if err != nil {
		t.Fatalf("dhcpd -t rejects the config: %v\n%s\n%s", err, msg, out)
	}
	cfg := testConfig(t, "  server: dhcpd\n  proxy: true\n")
	if _, err := RenderConfig(cfg, testDB(t)); err == nil || !strings.Contains(err.Error(), "proxy") {
		t.Errorf("dhcpd with proxy: %v", err)
	}
}

func TestRenderErrors(t *testing.T) {
	cfg := testConfig(t, "  server: dnsmasq\n  template: ../evil\n")
	if _, err := RenderConfig(cfg, testDB(t)); err == nil || !strings.Contains(err.Error(), "../evil") {
		t.Errorf("bad template name: %v", err)
	}
	cfg = testConfig(t, "  server: dnsmasq\n  template: site\n")
	if _, err := RenderConfig(cfg, testDB(t)); err == nil || !strings.Contains(err.Error(), "site-dnsmasq.conf.tmpl") {
		t.Errorf("missing site template: %v", err)
	}
	if err := os.MkdirAll(cfg.DHCPTemplateDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(cfg.DHCPTemplateDir(), "site-dnsmasq.conf.tmpl"), []byte("{{range .Hosts}}{{.Hostname}} {{.Address}}\n{{end}}{{.Nope}}"), 0o644)
	if _, err := RenderConfig(cfg, testDB(t)); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Errorf("template error: %v", err)
	}
	os.WriteFile(filepath.Join(cfg.DHCPTemplateDir(), "site-dnsmasq.conf.tmpl"), []byte("{{range .Hosts}}{{.Hostname}} {{.Address}}\n{{end}}"), 0o644)
	out, err := RenderConfig(cfg, testDB(t))
	if err != nil || string(out) != "n1 10.0.0.11\nn1-ib 10.1.0.11\nn2 10.0.0.12\n" {
		t.Errorf("site template: %q %v", out, err)
	}
	cfg = testConfig(t, "")
	if _, err := RenderConfig(cfg, testDB(t)); err == nil || !strings.Contains(err.Error(), "builtin") {
		t.Errorf("builtin: %v", err)
	}
}

// TestDnsmasqServesGeneratedConfig runs dnsmasq with the generated config
// in a namespace, as the VM tests do, and a real client gets the node's
// address and boot file from it.
func TestDnsmasqServesGeneratedConfig(t *testing.T) {
	testenv.Need(t, "needs dnsmasq", haveCmd("dnsmasq"))
	testenv.Need(t, "needs busybox udhcpc", haveCmd("udhcpc"))
	t.Run("interfaces", func(t *testing.T) { dnsmasqServes(t, true) })
	t.Run("listen-address", func(t *testing.T) { dnsmasqServes(t, false) })
}

func dnsmasqServes(t *testing.T, withInterfaces bool) {
	n := newTestNet(t)
	cfg := netnsConfig(t, "  server: dnsmasq\n")
	if !withInterfaces {
		cfg.DHCP.Interfaces = nil
	}
	db, err := node.Parse([]byte(netnsNodes))
	if err != nil {
		t.Fatal(err)
	}
	out, err := RenderConfig(cfg, db)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "dnsmasq.conf")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.srv, "dnsmasq", "--no-daemon", "--conf-file="+file,
		"--pid-file="+filepath.Join(dir, "pid"), "--dhcp-leasefile="+filepath.Join(dir, "leases"))
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(300 * time.Millisecond)

	n.setMAC(t, "52:54:00:99:00:01")
	env := n.udhcpc(t, "-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000")
	expectEnv(t, env, map[string]string{
		"ip": "10.99.0.11", "subnet": "255.255.255.0", "router": "10.99.0.254",
		"hostname": "n1", "domain": "clusterA", "dns": "10.99.0.1", "siaddr": "10.99.0.1", "boot_file": "undionly.kpxe",
	})
	env = n.udhcpc(t, "-x", "0x5d:0007", "-x", "0x4d:69505845")
	expectEnv(t, env, map[string]string{"ip": "10.99.0.11", "boot_file": "http://10.99.0.1:9873/ipxe/${mac}?assetkey=${asset:uristring}"})
	if t.Failed() {
		t.Logf("dnsmasq:\n%s\nconfig:\n%s", log.String(), out)
	}
}

// TestDhcpdServesGeneratedConfig runs ISC dhcpd with the generated
// dhcpd.conf in a namespace; a real client gets the node's address and the
// boot file of the shared rules.
func TestDhcpdServesGeneratedConfig(t *testing.T) {
	testenv.Need(t, "needs dhcpd (isc-dhcp-server)", haveCmd("dhcpd"))
	testenv.Need(t, "needs busybox udhcpc", haveCmd("udhcpc"))
	n := newTestNet(t)
	cfg := netnsConfig(t, "  server: dhcpd\n")
	db, err := node.Parse([]byte(netnsNodes))
	if err != nil {
		t.Fatal(err)
	}
	out, err := RenderConfig(cfg, db)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file, leases := filepath.Join(dir, "dhcpd.conf"), filepath.Join(dir, "dhcpd.leases")
	os.WriteFile(file, out, 0o644)
	os.WriteFile(leases, nil, 0o644)
	cmd := exec.Command("ip", "netns", "exec", n.srv, "dhcpd", "-f", "-4", "-cf", file, "-lf", leases,
		"-pf", filepath.Join(dir, "pid"), "wws")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(500 * time.Millisecond)

	n.setMAC(t, "52:54:00:99:00:01")
	env := n.udhcpc(t, "-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000")
	expectEnv(t, env, map[string]string{
		"ip": "10.99.0.11", "subnet": "255.255.255.0", "router": "10.99.0.254",
		"hostname": "n1", "domain": "clusterA", "dns": "10.99.0.1", "siaddr": "10.99.0.1", "boot_file": "undionly.kpxe",
	})
	env = n.udhcpc(t, "-x", "0x5d:0007", "-x", "0x4d:69505845")
	expectEnv(t, env, map[string]string{"ip": "10.99.0.11", "boot_file": "http://10.99.0.1:9873/ipxe/${mac}?assetkey=${asset:uristring}"})
	if t.Failed() {
		t.Logf("dhcpd:\n%s\nconfig:\n%s", log.String(), out)
	}
}
