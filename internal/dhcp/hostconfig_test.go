package dhcp_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/controller"
	"github.com/warewulf-ng/warewulf/internal/dhcp"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// The dnsmasq and ISC dhcpd configs come from the host overlay
// (etc/dnsmasq.d/ww4-hosts.conf.ww, etc/dhcp/dhcpd.conf.ww), rendered as
// `wwctl configure dhcp` renders them; these tests check that the servers
// accept them and answer as the built-in server does.

// shipped points cfg at the overlays of this checkout.
func shipped(t testing.TB, cfg *config.Config) *config.Config {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	cfg.Paths.Datadir = testenv.RepoDatadir(t, filepath.Join(filepath.Dir(file), "..", ".."))
	return cfg
}

// hostConfig renders the config of cfg's `dhcp: server` and writes it to
// a file.
func hostConfig(t testing.TB, cfg *config.Config, db *node.DB) (string, []byte) {
	t.Helper()
	tmpl, err := controller.DHCPTemplate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := controller.RenderHost(cfg, db, tmpl, nil)
	if err != nil || out == nil {
		t.Fatalf("render %s: %v (%d bytes)", tmpl, err, len(out))
	}
	file := filepath.Join(t.TempDir(), cfg.DHCP.Server+".conf")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return file, out
}

func renderFor(t *testing.T, server, extra string) (string, []byte) {
	t.Helper()
	return hostConfig(t, shipped(t, dhcp.TestConfig(t, "  server: "+server+"\n"+extra)), dhcp.TestDB(t))
}

func mustContain(t *testing.T, text []byte, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(string(text), l) {
			t.Errorf("missing %q in:\n%s", l, text)
		}
	}
}

func dnsmasqTest(t *testing.T, file string, out []byte) {
	t.Helper()
	testenv.Need(t, "needs dnsmasq", dhcp.HaveCmd("dnsmasq"))
	msg, err := exec.Command("dnsmasq", "--test", "--conf-file="+file).CombinedOutput()
	if err != nil || !strings.Contains(string(msg), "syntax check OK") {
		t.Fatalf("dnsmasq --test rejects the config: %v\n%s\n%s", err, msg, out)
	}
}

func dhcpdTest(t *testing.T, file string, out []byte) {
	t.Helper()
	testenv.Need(t, "needs dhcpd (isc-dhcp-server)", dhcp.HaveCmd("dhcpd"))
	if msg, err := exec.Command("dhcpd", "-t", "-4", "-cf", file).CombinedOutput(); err != nil {
		t.Fatalf("dhcpd -t rejects the config: %v\n%s\n%s", err, msg, out)
	}
}

func TestDnsmasqConfig(t *testing.T) {
	for _, c := range []struct {
		name, extra string
		want        []string
	}{
		{"static", "  template: static\n", []string{
			"dhcp-host=52:54:00:00:00:01,id:00:03:00:01:52:54:00:00:00:01,set:warewulf,10.0.0.11,n1,infinite\n",
			"dhcp-host=52:54:00:00:01:01,id:00:03:00:01:52:54:00:00:01:01,set:warewulf,10.1.0.11,n1,infinite\n",
			"dhcp-range=10.0.0.0,static,255.255.255.0,6h\n",
			"dhcp-userclass=set:uc-iPXE,iPXE\n",
			"dhcp-match=set:arch-7,option:client-arch,7\n",
			"dhcp-boot=tag:uc-iPXE,http://10.0.0.1:9873/ipxe/${mac}?assetkey=${asset:uristring}\n",
			"dhcp-boot=tag:arch-0,tag:!uc-iPXE,undionly.kpxe,,10.0.0.1\n",
			"dhcp-boot=tag:arch-11,tag:!uc-iPXE,arm64-efi/snponly.efi,,10.0.0.1\n",
			// warewulfd's /efi/ finds Debian's snponly.efi under upstream's name.
			"dhcp-boot=tag:vc-HTTPClient,tag:arch-16,tag:!uc-iPXE,http://10.0.0.1:9873/efi/ipxe-snponly-x86_64.efi\n",
			"dhcp-option-force=tag:vc-HTTPClient,tag:arch-16,tag:!uc-iPXE,60,HTTPClient\n",
			"dhcp-option-force=tag:ww-pxeclient,43,06:01:08:ff\n",
		}},
		{"range and tftp", dhcp.WithRange + "  tftp: true\n  interfaces: [eth9]\n", []string{
			"interface=eth9\n", "dhcp-range=10.0.0.100,10.0.0.101,255.255.255.0,6h\n", "enable-tftp\n", "tftp-root=/usr/lib/ipxe\n",
		}},
		{"proxy", "  proxy: true\n", []string{
			"dhcp-range=10.0.0.0,proxy,255.255.255.0\n",
			`pxe-service=tag:arch-0,tag:!uc-iPXE,0,"Warewulf",undionly.kpxe,10.0.0.1` + "\n",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file, out := renderFor(t, "dnsmasq", c.extra)
			mustContain(t, out, c.want...)
			if c.name != "static" && strings.Contains(string(out), "dhcp-host=") {
				t.Errorf("dhcp-host lines without template: static:\n%s", out)
			}
			if c.name == "proxy" && strings.Contains(string(out), "ww-pxeclient") {
				t.Errorf("proxy DHCP answers PXEClient itself:\n%s", out)
			}
			dnsmasqTest(t, file, out)
		})
	}
}

func TestDhcpdConfig(t *testing.T) {
	file, out := renderFor(t, "dhcpd", dhcp.WithRange+"  template: static\n")
	mustContain(t, out,
		"option architecture-type   code 93  = unsigned integer 16;\n",
		"\nif exists user-class and option user-class = \"iPXE\" {\n",
		"\nelsif substring(option vendor-class-identifier, 0, 10) = \"HTTPClient\" and option architecture-type = 00:10 {\n",
		"\nelsif option architecture-type = 00:0b {\n  # pxe-11\n  filename \"arm64-efi/snponly.efi\";\n}\n",
		"host n1-default\n{\n    hardware ethernet 52:54:00:00:00:01;\n    fixed-address 10.0.0.11;\n    option host-name \"n1\";\n}\n",
		"    range 10.0.0.100 10.0.0.101;\n",
		"    next-server 10.0.0.1;\n",
	)
	dhcpdTest(t, file, out)
	cfg := dhcp.TestConfig(t, "  server: dhcpd\n  proxy: true\n")
	if _, err := controller.DHCPTemplate(cfg); err == nil || !strings.Contains(err.Error(), "proxy") {
		t.Errorf("dhcpd with proxy: %v", err)
	}
}

// With `grubboot: true` both configs hand UEFI clients shim, as the
// built-in server does (TestBootFileGrub), and the servers accept them.
func TestGrubbootConfigs(t *testing.T) {
	for server, want := range map[string][]string{
		"dnsmasq": {
			"dhcp-boot=tag:vc-HTTPClient,tag:arch-16,tag:!uc-iPXE,http://10.0.0.1:9873/efiboot/shim.efi\n",
			"dhcp-option-force=tag:vc-HTTPClient,tag:arch-16,tag:!uc-iPXE,60,HTTPClient\n",
			"dhcp-boot=tag:arch-7,tag:!uc-iPXE,warewulf/shim.efi,,10.0.0.1\n",
			"dhcp-boot=tag:arch-11,tag:!uc-iPXE,warewulf/shimaa64.efi,,10.0.0.1\n",
			"dhcp-boot=tag:arch-0,tag:!uc-iPXE,undionly.kpxe,,10.0.0.1\n",
		},
		"dhcpd": {`filename "warewulf/shim.efi";`, `filename "http://10.0.0.1:9873/efiboot/shimaa64.efi";`},
	} {
		t.Run(server, func(t *testing.T) {
			cfg := shipped(t, dhcp.TestConfig(t, "  server: "+server+"\n"))
			cfg.Warewulf.GrubBoot = true
			file, out := hostConfig(t, cfg, dhcp.TestDB(t))
			mustContain(t, out, want...)
			if server == "dhcpd" {
				dhcpdTest(t, file, out)
			} else {
				dnsmasqTest(t, file, out)
			}
		})
	}
}

// TestDnsmasqServesHostConfig runs dnsmasq with the host overlay's config
// in a namespace, as the VM tests do, and a real client gets the node's
// address and boot file from it.
func TestDnsmasqServesHostConfig(t *testing.T) {
	testenv.Need(t, "needs dnsmasq", dhcp.HaveCmd("dnsmasq"))
	testenv.Need(t, "needs busybox udhcpc", dhcp.HaveCmd("udhcpc"))
	t.Run("interfaces", func(t *testing.T) { dnsmasqServes(t, true) })
	t.Run("all interfaces", func(t *testing.T) { dnsmasqServes(t, false) })
}

func dnsmasqServes(t *testing.T, withInterfaces bool) {
	n := dhcp.NewTestNet(t)
	cfg := shipped(t, dhcp.NetnsConfig(t, "  server: dnsmasq\n  template: static\n"))
	if !withInterfaces {
		cfg.DHCP.Interfaces = nil
	}
	db, err := node.Parse([]byte(dhcp.NetnsNodes))
	if err != nil {
		t.Fatal(err)
	}
	file, out := hostConfig(t, cfg, db)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.Srv(), "dnsmasq", "--no-daemon", "--conf-file="+file,
		"--pid-file="+filepath.Join(dir, "pid"), "--dhcp-leasefile="+filepath.Join(dir, "leases"))
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(300 * time.Millisecond)
	expectNodeServed(t, n, "dnsmasq", &log, out)
}

// TestDhcpdServesHostConfig runs ISC dhcpd with the host overlay's
// dhcpd.conf in a namespace; a real client gets the node's address and
// the boot file of the shared rules.
func TestDhcpdServesHostConfig(t *testing.T) {
	testenv.Need(t, "needs dhcpd (isc-dhcp-server)", dhcp.HaveCmd("dhcpd"))
	testenv.Need(t, "needs busybox udhcpc", dhcp.HaveCmd("udhcpc"))
	n := dhcp.NewTestNet(t)
	cfg := shipped(t, dhcp.NetnsConfig(t, "  server: dhcpd\n  template: static\n"))
	db, err := node.Parse([]byte(dhcp.NetnsNodes))
	if err != nil {
		t.Fatal(err)
	}
	file, out := hostConfig(t, cfg, db)
	dir := t.TempDir()
	leases := filepath.Join(dir, "dhcpd.leases")
	os.WriteFile(leases, nil, 0o644)
	cmd := exec.Command("ip", "netns", "exec", n.Srv(), "dhcpd", "-f", "-4", "-cf", file, "-lf", leases,
		"-pf", filepath.Join(dir, "pid"), "wws")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(500 * time.Millisecond)
	expectNodeServed(t, n, "dhcpd", &log, out)
}

// expectNodeServed: a real client with n1's MAC gets n1's address, name
// and the shared rules' boot files, as a BIOS PXE ROM and as UEFI iPXE.
func expectNodeServed(t *testing.T, n *dhcp.TestNet, server string, log *strings.Builder, config []byte) {
	t.Helper()
	n.SetMAC(t, "52:54:00:99:00:01")
	env := n.Udhcpc(t, "-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000")
	dhcp.ExpectEnv(t, env, map[string]string{
		"ip": "10.99.0.11", "subnet": "255.255.255.0", "hostname": "n1", "siaddr": "10.99.0.1", "boot_file": "undionly.kpxe",
	})
	env = n.Udhcpc(t, "-x", "0x5d:0007", "-x", "0x4d:69505845")
	dhcp.ExpectEnv(t, env, map[string]string{"ip": "10.99.0.11", "boot_file": "http://10.99.0.1:9873/ipxe/${mac}?assetkey=${asset:uristring}"})
	if t.Failed() {
		t.Logf("%s:\n%s\nconfig:\n%s", server, log.String(), config)
	}
}

// BenchmarkDiscoverRoundTrip sends DISCOVERs for nodes of a 10,000-node
// cluster over a veth pair and waits for each OFFER, against the built-in
// server and against dnsmasq running the host overlay's config
// (`template: static`: a dhcp-host line per node), side by side.
func BenchmarkDiscoverRoundTrip(b *testing.B) {
	testenv.Need(b, "needs dnsmasq", dhcp.HaveCmd("dnsmasq"))
	n := dhcp.NewTestNetPrefix(b, 16)
	testenv.Run(b, "ip", "-n", n.Cli(), "link", "set", "wwc", "up")
	testenv.Run(b, "ip", "-n", n.Cli(), "addr", "add", "10.99.255.200/16", "dev", "wwc")
	db, macs := dhcp.BigDB(b, dhcp.BenchNodes)
	const rounds = 2000
	prev := logrus.GetLevel()
	logrus.SetLevel(logrus.WarnLevel)
	defer logrus.SetLevel(prev)

	rates := map[string]float64{}
	for _, server := range []string{"builtin", "dnsmasq"} {
		cfg := dhcp.BenchConfig(b, server)
		stop := startBenchServer(b, n, cfg, db)
		var conn net.PacketConn
		if err := testenv.InNetns(n.Cli(), func() (err error) {
			conn, err = server4.NewIPv4UDPConn("wwc", &net.UDPAddr{Port: dhcp.ClientPort})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		// Warm up (dnsmasq reads its config lazily; ours builds its index).
		roundTrips(b, conn, macs[:10])
		start := time.Now()
		var lost int
		for i := 0; i < b.N; i++ {
			sel := make([]net.HardwareAddr, rounds)
			for j := range sel {
				sel[j] = macs[(j*7919)%len(macs)]
			}
			lost += roundTrips(b, conn, sel)
		}
		el := time.Since(start)
		conn.Close()
		stop()
		rates[server] = float64(b.N*rounds-lost) / el.Seconds()
		b.ReportMetric(rates[server], server+"-offers/s")
		b.ReportMetric(float64(lost), server+"-lost")
	}
	if rates["dnsmasq"] > 0 {
		b.ReportMetric(rates["builtin"]/rates["dnsmasq"], "builtin/dnsmasq")
	}
}

// roundTrips sends one DISCOVER per MAC, each after the previous OFFER, and
// returns how many got no OFFER within a second.
func roundTrips(b *testing.B, conn net.PacketConn, macs []net.HardwareAddr) int {
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcp.ServerPort}
	buf := make([]byte, 1500)
	lost := 0
	for _, m := range macs {
		d := dhcp.Discover(b, m, dhcpv4.WithBroadcast(true), dhcp.ArchOption(iana.EFI_X86_64), dhcp.VendorOption("PXEClient:Arch:00007:UNDI:003016"))
		if _, err := conn.WriteTo(d.ToBytes(), bcast); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(time.Second)
		for {
			conn.SetReadDeadline(deadline)
			k, _, err := conn.ReadFrom(buf)
			if err != nil {
				lost++
				break
			}
			r, err := dhcpv4.FromBytes(buf[:k])
			if err == nil && r.TransactionID == d.TransactionID && r.MessageType() == dhcpv4.MessageTypeOffer {
				if r.BootFileName != "ipxe-snponly-x86_64.efi" {
					b.Fatalf("offer for %s has boot file %q", m, r.BootFileName)
				}
				break
			}
		}
	}
	return lost
}

// startBenchServer runs the built-in server or dnsmasq (with the host
// overlay's config, logging to /dev/null) in the server namespace; stop
// ends it.
func startBenchServer(b *testing.B, n *dhcp.TestNet, cfg *config.Config, db *node.DB) (stop func()) {
	if cfg.DHCP.Server == "builtin" {
		s, err := dhcp.New(cfg, func() *node.DB { return db })
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- testenv.InNetns(n.Srv(), func() error { return s.Serve(ctx) }) }()
		time.Sleep(200 * time.Millisecond)
		return func() { cancel(); <-done }
	}
	cfg.DHCP.Template = "static"
	file, _ := hostConfig(b, shipped(b, cfg), db)
	dir := b.TempDir()
	cmd := exec.Command("ip", "netns", "exec", n.Srv(), "dnsmasq", "--no-daemon", "--conf-file="+file,
		"--pid-file="+filepath.Join(dir, "pid"), "--dhcp-leasefile="+filepath.Join(dir, "leases"), "--log-facility=/dev/null")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	return func() { cmd.Process.Kill(); cmd.Wait() }
}
