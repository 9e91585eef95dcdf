package dhcp

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/iana"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
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
