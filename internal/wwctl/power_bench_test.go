package wwctl_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// BenchmarkPowerStatus1000: `wwctl power status` over 1,000 real BMCs
// (OpenIPMI ipmi_sim instances, one process each, on 127.77.x.y:623),
// side by side with upstream's way: one `ipmitool ... chassis power status`
// process per node, 50 at a time. WW_BMC_BENCH_N sets another count. Goal:
// at most 5 s for 1,000 and at least 5x faster than ipmitool.
func BenchmarkPowerStatus1000(b *testing.B) {
	testenv.Need(b, "the BMCs listen on port 623: needs root", os.Geteuid() == 0)
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("WW_BMC_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	first := "127.77.0.1"
	addr := func(i int) string { a, _ := node.StepIP(first, i); return a }
	start := time.Now()
	bmcs := testenv.StartBMCs(b, n, addr, testenv.BMCOptions{User: "admin", Password: "s3cret"})
	b.Logf("%d ipmi_sim BMCs started in %s", len(bmcs), time.Since(start).Round(time.Millisecond))
	for i := 0; i < n; i += 2 {
		_ = bmcs[i].SetPower(true) // half on, half off: the answers differ
	}

	s := newSandbox(b)
	s.ok("profile", "add", "default", "--ipmiuser", "admin", "--ipmipass", "s3cret", "--ipmiinterface", "lanplus")
	last := fmt.Sprintf("n%04d", n)
	s.ok("node", "add", "n[0001-"+last[1:]+"]", "--ipmiaddr", first)

	ours := func() time.Duration {
		t0 := time.Now()
		out := s.ok("power", "status", "n[0001-"+last[1:]+"]")
		d := time.Since(t0)
		if on := strings.Count(out, ": on\n"); on != (n+1)/2 || strings.Count(out, ": off\n") != n/2 {
			b.Fatalf("wwctl power status: %d on of %d lines", on, strings.Count(out, "\n"))
		}
		return d
	}
	// ipmi_sim speaks cipher suite 3 only: ipmitool needs -C 3 (its default,
	// 17, fails), as a site with such BMCs sets in its template.
	theirs := func() time.Duration {
		t0 := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		on, failed := 0, 0
		sem := make(chan struct{}, 50)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				out, err := exec.Command("ipmitool", "-I", "lanplus", "-C", "3", "-H", addr(i), "-U", "admin", "-P", "s3cret", "chassis", "power", "status").CombinedOutput()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
				} else if strings.Contains(string(out), "is on") {
					on++
				}
			}()
		}
		wg.Wait()
		if failed > 0 || on != (n+1)/2 {
			b.Fatalf("ipmitool: %d failed, %d on", failed, on)
		}
		return time.Since(t0)
	}
	var usage = func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	var best, bestTheirs time.Duration
	var cpuOurs, cpuTheirs time.Duration
	for i := 0; i < b.N; i++ {
		// Taking turns, best of two each, so a neighbour's load hits both.
		for round := 0; round < 2; round++ {
			c0 := usage()
			d := ours()
			c1 := usage()
			dt := theirs()
			c2 := usage()
			if best == 0 || d < best {
				best, cpuOurs = d, c1-c0
			}
			if bestTheirs == 0 || dt < bestTheirs {
				bestTheirs, cpuTheirs = dt, c2-c1
			}
			b.Logf("round %d: wwctl %s, ipmitool x%d %s", round+1, d.Round(time.Millisecond), n, dt.Round(time.Millisecond))
		}
	}
	b.ReportMetric(best.Seconds(), "wwctl-s")
	b.ReportMetric(bestTheirs.Seconds(), "ipmitool-s")
	b.ReportMetric(bestTheirs.Seconds()/best.Seconds(), "speedup")
	b.ReportMetric(cpuOurs.Seconds(), "wwctl-cpu-s")
	b.ReportMetric(cpuTheirs.Seconds(), "ipmitool-cpu-s")
	b.ReportMetric(best.Seconds()*1000/float64(n), "wwctl-s-per-1000")
}
