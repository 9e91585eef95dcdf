package wwctl_test

import (
	"testing"
	"time"
)

// bigSandbox is a sandbox with a 10,000-node nodes.conf: a profile with
// overlays, and per node a network device, BMC address and tag.
func bigSandbox(b *testing.B) *sandbox {
	s := newSandbox(b)
	s.ok("profile", "add", "default", "--kernelargs", "quiet console=ttyS0", "--system-overlays", "wwinit,wwclient,hostname,hosts",
		"--runtime-overlays", "hosts,ssh.authorized_keys", "--netdev", "eth0", "--netmask", "255.255.0.0")
	s.ok("node", "add", "n[00001-10000]", "--ipaddr", "10.20.0.1", "--ipmiaddr", "10.30.0.1", "--ipmiuser", "admin", "--tagadd", "rack=r1")
	return s
}

// timeCommand runs wwctl b.N times and reports seconds per run.
func timeCommand(b *testing.B, s *sandbox, args ...string) {
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		s.ok(args...)
	}
	secs := time.Since(start).Seconds() / float64(b.N)
	b.ReportMetric(secs, "s/run")
	b.ReportMetric(secs/1.0, "ratio_to_1s_target")
}

// BenchmarkNodeList10k: `wwctl node list` on 10,000 nodes; target < 1 s.
func BenchmarkNodeList10k(b *testing.B) {
	s := bigSandbox(b)
	timeCommand(b, s, "node", "list")
}

// BenchmarkNodeListJSON10k: `wwctl node list -o json` on 10,000 nodes.
func BenchmarkNodeListJSON10k(b *testing.B) {
	s := bigSandbox(b)
	timeCommand(b, s, "node", "list", "-o", "json")
}

// BenchmarkNodeSet10k: one `wwctl node set` on a 10,000-node file (load,
// change, validate, atomic rewrite); target < 1 s.
func BenchmarkNodeSet10k(b *testing.B) {
	s := bigSandbox(b)
	timeCommand(b, s, "node", "set", "n05000", "--comment", "benchmark")
}
