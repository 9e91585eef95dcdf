package dhcp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

func haveCmd(name string) bool { _, err := exec.LookPath(name); return err == nil }

// testNet is two network namespaces joined by a veth pair: the server end
// (10.99.0.1/24, interface wws) and the client end (interface wwc).
type testNet struct {
	srv, cli string // namespace names
}

func newTestNet(t testing.TB) *testNet { return newTestNetPrefix(t, 24) }

// newTestNetPrefix is newTestNet with the server on 10.99.0.1/prefix.
func newTestNetPrefix(t testing.TB, prefix int) *testNet {
	testenv.Need(t, "needs root", os.Geteuid() == 0)
	testenv.Need(t, "needs ip (iproute2)", haveCmd("ip"))
	testenv.Long(t, "network namespace test")
	n := &testNet{srv: testenv.Netns(t, "dhcp-s"), cli: testenv.Netns(t, "dhcp-c")}
	testenv.Veth(t, n.srv, "wws", n.cli, "wwc")
	testenv.Run(t, "ip", "-n", n.srv, "addr", "add", fmt.Sprintf("10.99.0.1/%d", prefix), "dev", "wws")
	return n
}

// setMAC gives the client interface a hardware address.
func (n *testNet) setMAC(t testing.TB, mac string) {
	testenv.Run(t, "ip", "-n", n.cli, "link", "set", "wwc", "down")
	testenv.Run(t, "ip", "-n", n.cli, "link", "set", "wwc", "address", mac)
	testenv.Run(t, "ip", "-n", n.cli, "link", "set", "wwc", "up")
}

// startServer runs the built-in server inside the server namespace until
// the test ends.
func (n *testNet) startServer(t testing.TB, cfg *config.Config, db *node.DB) {
	s, err := New(cfg, func() *node.DB { return db })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- testenv.InNetns(n.srv, func() error { return s.Serve(ctx) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case err := <-done:
		done <- err
		t.Fatalf("server stopped at once: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
}

// udhcpc runs busybox udhcpc in the client namespace until it has a lease
// and returns what it reported to its script.
func (n *testNet) udhcpc(t *testing.T, extra ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	out := filepath.Join(dir, "lease.env")
	body := "#!/bin/sh\n[ \"$1\" = bound ] || [ \"$1\" = renew ] || exit 0\nenv > " + out + ".tmp && mv " + out + ".tmp " + out + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"netns", "exec", n.cli, "udhcpc", "-f", "-q", "-n", "-i", "wwc", "-s", script, "-t", "5", "-T", "1"}, extra...)
	cmd := exec.CommandContext(ctx, "ip", args...)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	if err := cmd.Wait(); err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, log.String())
	}
	return readEnv(t, out)
}

func readEnv(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("the DHCP client reported no lease: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

func netnsConfig(t testing.TB, extra string) *config.Config {
	dir := t.TempDir()
	conf := "ipaddr: 10.99.0.1\nnetmask: 255.255.255.0\nwarewulf:\n  port: 9873\n" +
		"dhcp:\n  enabled: true\n  interfaces: [wws]\n" + extra +
		"paths:\n  sysconfdir: etc\n  localstatedir: state\n"
	file := filepath.Join(dir, "warewulf.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const netnsNodes = `
nodes:
  n1:
    cluster name: clusterA
    network devices:
      default:
        hwaddr: 52:54:00:99:00:01
        ipaddr: 10.99.0.11
        netmask: 255.255.255.0
        gateway: 10.99.0.254
`

func expectEnv(t *testing.T, env map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
}

// TestUdhcpcInNamespace: a real DHCP client on a veth gets the node's
// configured address, options and boot file from the built-in server, and
// an unknown MAC gets one from the range.
func TestUdhcpcInNamespace(t *testing.T) {
	testenv.Need(t, "needs busybox udhcpc", haveCmd("udhcpc"))
	n := newTestNet(t)
	db, err := node.Parse([]byte(netnsNodes))
	if err != nil {
		t.Fatal(err)
	}
	cfg := netnsConfig(t, "  range start: 10.99.0.100\n  range end: 10.99.0.110\n")
	n.startServer(t, cfg, db)

	n.setMAC(t, "52:54:00:99:00:01")
	env := n.udhcpc(t, "-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007")
	expectEnv(t, env, map[string]string{
		"ip": "10.99.0.11", "subnet": "255.255.255.0", "router": "10.99.0.254",
		"hostname": "n1", "domain": "clusterA", "dns": "10.99.0.1",
		"serverid": "10.99.0.1", "siaddr": "10.99.0.1", "boot_file": "ipxe-snponly-x86_64.efi",
	})

	n.setMAC(t, "52:54:00:99:aa:01")
	env = n.udhcpc(t)
	expectEnv(t, env, map[string]string{"ip": "10.99.0.100", "serverid": "10.99.0.1"})
	if env["hostname"] != "" || env["boot_file"] != "" {
		t.Errorf("unknown plain client got hostname %q boot file %q", env["hostname"], env["boot_file"])
	}
	data, err := os.ReadFile(cfg.LeaseFile())
	if err != nil || !strings.Contains(string(data), "52:54:00:99:aa:01") {
		t.Errorf("lease not persisted in %s: %v %s", cfg.LeaseFile(), err, data)
	}
}

// TestDhclientInNamespace: Debian's ISC dhclient gets the node's address.
func TestDhclientInNamespace(t *testing.T) {
	testenv.Need(t, "needs dhclient (isc-dhcp-client)", haveCmd("dhclient"))
	n := newTestNet(t)
	db, err := node.Parse([]byte(netnsNodes))
	if err != nil {
		t.Fatal(err)
	}
	n.startServer(t, netnsConfig(t, ""), db)
	n.setMAC(t, "52:54:00:99:00:01")

	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	out := filepath.Join(dir, "lease.env")
	body := "#!/bin/sh\ncase \"$reason\" in BOUND|REBOOT) env > " + out + ";; esac\nexit 0\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.cli, "dhclient", "-1", "-d", "-sf", script,
		"-lf", filepath.Join(dir, "leases"), "-pf", filepath.Join(dir, "pid"), "wwc")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(35 * time.Second)
	for {
		if _, err := os.Stat(out); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dhclient got no lease:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	env := readEnv(t, out)
	expectEnv(t, env, map[string]string{
		"new_ip_address": "10.99.0.11", "new_subnet_mask": "255.255.255.0", "new_routers": "10.99.0.254",
		"new_host_name": "n1", "new_domain_name": "clusterA", "new_domain_name_servers": "10.99.0.1",
	})
}

// TestProxyInNamespace: in proxy mode the server answers a PXE DISCOVER on
// port 67 with boot information only, and a boot-server REQUEST on port
// 4011 with an ACK back to the client's port, over real sockets.
func TestProxyInNamespace(t *testing.T) {
	n := newTestNet(t)
	testenv.Run(t, "ip", "-n", n.cli, "link", "set", "wwc", "up")
	testenv.Run(t, "ip", "-n", n.cli, "addr", "add", "10.99.0.150/24", "dev", "wwc")
	db, err := node.Parse([]byte(netnsNodes))
	if err != nil {
		t.Fatal(err)
	}
	n.startServer(t, netnsConfig(t, "  proxy: true\n"), db)

	var conn, conn4011 net.PacketConn
	if err := testenv.InNetns(n.cli, func() (err error) {
		if conn, err = server4.NewIPv4UDPConn("wwc", &net.UDPAddr{Port: ClientPort}); err != nil {
			return err
		}
		conn4011, err = net.ListenPacket("udp4", "10.99.0.150:4011")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn4011.Close()
	mac := mustMAC("52:54:00:99:aa:02")
	pxe := []dhcpv4.Modifier{arch(iana.EFI_X86_64), vendor("PXEClient:Arch:00007:UNDI:003016")}

	d := discover(t, mac, append(pxe, dhcpv4.WithBroadcast(true))...)
	offer := sendAndWait(t, conn, d, &net.UDPAddr{IP: net.IPv4bcast, Port: ServerPort})
	if offer.MessageType() != dhcpv4.MessageTypeOffer || !offer.YourIPAddr.IsUnspecified() || offer.BootFileName != "ipxe-snponly-x86_64.efi" {
		t.Fatalf("proxy offer: %s", offer.Summary())
	}
	req, _ := dhcpv4.New(append(pxe, dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 150)))...)
	ack := sendAndWait(t, conn4011, req, &net.UDPAddr{IP: net.IPv4(10, 99, 0, 1), Port: PXEPort})
	if ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "ipxe-snponly-x86_64.efi" || !ack.ServerIPAddr.Equal(net.IPv4(10, 99, 0, 1)) {
		t.Fatalf("port 4011 ack: %s", ack.Summary())
	}
}

// sendAndWait sends m to dst and returns the reply with m's transaction ID.
func sendAndWait(t *testing.T, conn net.PacketConn, m *dhcpv4.DHCPv4, dst net.Addr) *dhcpv4.DHCPv4 {
	t.Helper()
	if _, err := conn.WriteTo(m.ToBytes(), dst); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		k, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no reply to %s: %v", m.MessageType(), err)
		}
		if r, err := dhcpv4.FromBytes(buf[:k]); err == nil && r.TransactionID == m.TransactionID && r.OpCode == dhcpv4.OpcodeBootReply {
			return r
		}
	}
}
