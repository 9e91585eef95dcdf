package dhcp

import (
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
	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

const benchNodes = 10000

// bigDB is nodes.conf with n nodes on 10.99.0.0/16, MACs 52:54:01:00:HH:LL.
func bigDB(tb testing.TB, n int) (*node.DB, []net.HardwareAddr) {
	var b strings.Builder
	b.WriteString("nodes:\n")
	macs := make([]net.HardwareAddr, n)
	for i := 0; i < n; i++ {
		k := i + 10
		macs[i] = net.HardwareAddr{0x52, 0x54, 0x01, 0, byte(k >> 8), byte(k)}
		fmt.Fprintf(&b, "  n%05d:\n    cluster name: bench\n    network devices:\n      default:\n        hwaddr: %s\n        ipaddr: 10.99.%d.%d\n        netmask: 255.255.0.0\n",
			i, macs[i], k>>8, k&0xff)
	}
	db, err := node.Parse([]byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return db, macs
}

func benchConfig(tb testing.TB, server string) *config.Config {
	dir := tb.TempDir()
	conf := "ipaddr: 10.99.0.1\nnetmask: 255.255.0.0\ndhcp:\n  enabled: true\n  server: " + server +
		"\n  interfaces: [wws]\npaths:\n  sysconfdir: etc\n  localstatedir: state\n"
	file := filepath.Join(dir, "warewulf.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// BenchmarkHandlePacket: DISCOVER -> OFFER for nodes of a 10,000-node
// database, in process (parse, decide, serialise), with no socket.
func BenchmarkHandlePacket(b *testing.B) {
	db, macs := bigDB(b, benchNodes)
	s, err := New(benchConfig(b, "builtin"), func() *node.DB { return db })
	if err != nil {
		b.Fatal(err)
	}
	pkts := make([][]byte, len(macs))
	for i, m := range macs {
		pkts[i] = discover(b, m, arch(iana.EFI_X86_64), vendor("PXEClient:Arch:00007:UNDI:003016")).ToBytes()
	}
	peer := &net.UDPAddr{IP: net.IPv4zero, Port: ClientPort}
	ip := net.IPv4(10, 99, 0, 1).To4()
	s.HandlePacket(pkts[0], peer, ip, ServerPort) // builds the index
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for _, p := range pkts {
			if out, _ := s.HandlePacket(p, peer, ip, ServerPort); out == nil {
				b.Fatal("no OFFER")
			}
		}
	}
	b.ReportMetric(float64(b.N*len(pkts))/time.Since(start).Seconds(), "offers/s")
}

// BenchmarkDiscoverRoundTrip sends DISCOVERs for nodes of a 10,000-node
// cluster over a veth pair and waits for each OFFER, against the built-in
// server and against dnsmasq running the generated config, side by side.
func BenchmarkDiscoverRoundTrip(b *testing.B) {
	testenv.Need(b, "needs dnsmasq", haveCmd("dnsmasq"))
	n := newTestNetPrefix(b, 16)
	testenv.Run(b, "ip", "-n", n.cli, "link", "set", "wwc", "up")
	testenv.Run(b, "ip", "-n", n.cli, "addr", "add", "10.99.255.200/16", "dev", "wwc")
	db, macs := bigDB(b, benchNodes)
	const rounds = 2000
	prev := logrus.GetLevel()
	logrus.SetLevel(logrus.WarnLevel)
	defer logrus.SetLevel(prev)

	rates := map[string]float64{}
	for _, server := range []string{"builtin", "dnsmasq"} {
		cfg := benchConfig(b, server)
		stop := startBenchServer(b, n, cfg, db)
		var conn net.PacketConn
		if err := testenv.InNetns(n.cli, func() (err error) {
			conn, err = server4.NewIPv4UDPConn("wwc", &net.UDPAddr{Port: ClientPort})
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
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: ServerPort}
	buf := make([]byte, 1500)
	lost := 0
	for _, m := range macs {
		d := discover(b, m, dhcpv4.WithBroadcast(true), arch(iana.EFI_X86_64), vendor("PXEClient:Arch:00007:UNDI:003016"))
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

// startBenchServer runs the built-in server or dnsmasq (with the generated
// config, DHCP logging off) in the server namespace; stop ends it.
func startBenchServer(b *testing.B, n *testNet, cfg *config.Config, db *node.DB) (stop func()) {
	if cfg.DHCP.Server == "builtin" {
		s, err := New(cfg, func() *node.DB { return db })
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- testenv.InNetns(n.srv, func() error { return s.Serve(ctx) }) }()
		time.Sleep(200 * time.Millisecond)
		return func() { cancel(); <-done }
	}
	out, err := RenderConfig(cfg, db)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	file := filepath.Join(dir, "dnsmasq.conf")
	os.WriteFile(file, []byte(strings.Replace(string(out), "\nlog-dhcp\n", "\n", 1)), 0o644)
	cmd := exec.Command("ip", "netns", "exec", n.srv, "dnsmasq", "--no-daemon", "--conf-file="+file,
		"--pid-file="+filepath.Join(dir, "pid"), "--dhcp-leasefile="+filepath.Join(dir, "leases"), "--log-facility=/dev/null")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	return func() { cmd.Process.Kill(); cmd.Wait() }
}
