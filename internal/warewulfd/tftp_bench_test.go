package warewulfd

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"golang.org/x/sys/unix"
)

// Each server has port 69 of its own loopback address: warewulfd's TFTP
// port is not configurable, and both must be reached the same way.
const (
	tftpBenchWarewulfd = "127.0.0.71"
	tftpBenchHpa       = "127.0.0.72"
)

// BenchmarkTFTP: the real warewulfd binary's built-in TFTP against
// tftpd-hpa (what a site would otherwise run) serving the same directory,
// Debian's /usr/lib/ipxe, on loopback. Clients fetch undionly.kpxe (legacy
// BIOS) and snponly.efi (UEFI) with the block size a PXE ROM asks for, 1, 16
// and 64 at a time, for three seconds per server and round, the servers
// taking turns. Both servers run on the first half of the CPUs, the
// benchmark's own client on the rest.
func BenchmarkTFTP(b *testing.B) {
	needRoot(b) // port 69
	hpa := tftpdHpa(b)
	src := "/usr/lib/ipxe"
	files := map[string][]byte{}
	for _, name := range []string{"undionly.kpxe", "snponly.efi"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			b.Fatalf("%v (Debian package ipxe, test/deps.sh)", err)
		}
		files[name] = data
	}
	serverCPUs, clientCPUs := benchCPUs(b)

	conf, _, port := benchSandbox(b, tftpBenchWarewulfd, func(c *config.Config) {
		c.Paths.IpxeSource = src
		c.TFTP.Enabled = true
	})
	startWarewulfd(b, conf, net.JoinHostPort(tftpBenchWarewulfd, strconv.Itoa(port)), serverCPUs)
	startTftpdHpa(b, hpa, src, serverCPUs)
	pinThisProcess(b, clientCPUs)

	servers := []*tftpServer{
		{name: "warewulfd", addr: tftpBenchWarewulfd + ":69", cpus: serverCPUs},
		{name: "tftpd-hpa", addr: tftpBenchHpa + ":69", cpus: serverCPUs},
	}
	// Both send every file byte for byte.
	for _, s := range servers {
		for name, want := range files {
			var got bytes.Buffer
			if err := tftpGet(s.addr, name, tftpBlockSize, &got, time.Second); err != nil || !bytes.Equal(got.Bytes(), want) {
				b.Fatalf("%s: %s: %v, %d bytes (want %d)", s.name, name, err, got.Len(), len(want))
			}
		}
	}
	for _, name := range []string{"undionly.kpxe", "snponly.efi"} {
		for _, c := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", name, c), func(b *testing.B) {
				var ratios []float64
				for _, s := range servers {
					s.reset()
				}
				for range b.N {
					for r := range 3 {
						first, second := servers[0], servers[1]
						if r%2 == 1 {
							first, second = second, first
						}
						first.round(b, name, int64(len(files[name])), c)
						second.round(b, name, int64(len(files[name])), c)
						ww, hpa := servers[0].rates, servers[1].rates
						ratios = append(ratios, ww[len(ww)-1]/hpa[len(hpa)-1])
					}
				}
				for _, s := range servers {
					b.ReportMetric(median(s.rates), s.name+"-transfers/s")
					if s.cpus != nil {
						b.ReportMetric(s.cpu/s.transfers*1e3, s.name+"-cpu-ms/transfer")
					}
					b.ReportMetric(s.errors, s.name+"-errors")
				}
				b.ReportMetric(median(ratios), "ratio-vs-tftpd-hpa")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// tftpdHpa finds in.tftpd: the tftpd-hpa package, whose own service
// test/deps.sh keeps from running.
func tftpdHpa(b *testing.B) string {
	for _, p := range []string{"/usr/sbin/in.tftpd", "/sbin/in.tftpd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return needCmd(b, "in.tftpd")
}

// startTftpdHpa runs tftpd-hpa in the foreground on tftpBenchHpa:69,
// serving dir (chrooted, as Debian configures it), on cpus; it forks a
// child per transfer. It is stopped by PID when the benchmark ends.
func startTftpdHpa(b *testing.B, bin, dir string, cpus []int) {
	cmd := onCPUs(cpus, bin, "--listen", "--foreground", "--secure", "--user", "nobody",
		"--address", tftpBenchHpa+":69", "--blocksize", strconv.Itoa(tftpBlockSize), dir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	for i := 0; ; i++ {
		if err := tftpGet(tftpBenchHpa+":69", "undionly.kpxe", 0, &bytes.Buffer{}, 100*time.Millisecond); err == nil {
			return
		}
		if i == 50 {
			b.Fatal("tftpd-hpa does not answer")
		}
	}
}

// pinThisProcess moves every thread of the benchmark process onto cpus
// (threads made later inherit it) and back onto all when it ends.
func pinThisProcess(b *testing.B, cpus []int) {
	if cpus == nil {
		return
	}
	var all, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		b.Fatal(err)
	}
	for _, c := range cpus {
		set.Set(c)
	}
	apply := func(s *unix.CPUSet) {
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, t := range tasks {
			if tid, err := strconv.Atoi(t.Name()); err == nil {
				unix.SchedSetaffinity(tid, s)
			}
		}
	}
	apply(&set)
	b.Cleanup(func() { apply(&all) })
}

// tftpServer is one side of BenchmarkTFTP and what it measured.
type tftpServer struct {
	name, addr string
	// cpus the servers run on: their busy time is the CPU cost, counted
	// so because tftpd-hpa's children are not waited for, and their time
	// shows in no process's count.
	cpus                   []int
	rates                  []float64 // transfers per second, one per round
	cpu, transfers, errors float64
}

func (s *tftpServer) reset() { s.rates, s.cpu, s.transfers, s.errors = nil, 0, 0, 0 }

// round has c clients fetch name over and over for three seconds; a
// transfer that fails or comes back short counts as an error.
func (s *tftpServer) round(b *testing.B, name string, size int64, c int) {
	const d = 3 * time.Second
	cpu0 := cpuBusy(b, s.cpus)
	var done, errs atomic.Int64
	var firstErr atomic.Value
	end := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for time.Now().Before(end) {
				buf.Reset()
				err := tftpGet(s.addr, name, tftpBlockSize, &buf, time.Second)
				if err == nil && int64(buf.Len()) != size {
					err = fmt.Errorf("%d bytes, want %d", buf.Len(), size)
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	s.cpu += cpuBusy(b, s.cpus) - cpu0
	s.transfers += float64(done.Load())
	s.errors += float64(errs.Load())
	if err, _ := firstErr.Load().(error); err != nil {
		b.Logf("%s: %d of %d transfers of %s failed; first: %v", s.name, errs.Load(), errs.Load()+done.Load(), name, err)
	}
	s.rates = append(s.rates, float64(done.Load())/el.Seconds())
}

// cpuBusy is the seconds cpus have spent on anything but idling, softirq
// (the loopback's packet work) included and steal left out, from
// /proc/stat.
func cpuBusy(b *testing.B, cpus []int) float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	var busy float64
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil || !slices.Contains(cpus, n) {
			continue
		}
		for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
			if i != 3 && i != 4 && i != 7 {
				t, _ := strconv.ParseFloat(v, 64)
				busy += t / 100 // USER_HZ
			}
		}
	}
	return busy
}
