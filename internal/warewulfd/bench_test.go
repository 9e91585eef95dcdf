package warewulfd

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/image"
	"github.com/warewulf-ng/warewulf/internal/overlay"
	"github.com/warewulf-ng/warewulf/internal/testenv"
	"golang.org/x/sys/unix"
)

// benchCPUs splits the CPUs this process may use between the servers a
// benchmark compares (the first half) and its load generator (the rest):
// a node downloading over the network does not take the server's cycles,
// and on loopback a client sharing the server's cores moves a single
// stream's throughput by ±15% from run to run. With one CPU both are nil:
// everything shares it.
func benchCPUs(b *testing.B) (servers, client []int) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		b.Fatal(err)
	}
	var cpus []int
	for i := range 1024 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return nil, nil
	}
	return cpus[:len(cpus)/2], cpus[len(cpus)/2:]
}

// onCPUs is a command that runs only on cpus (all of them when nil); its
// threads and children inherit the set.
func onCPUs(cpus []int, name string, args ...string) *exec.Cmd {
	if cpus == nil {
		return exec.Command(name, args...)
	}
	list := make([]string, len(cpus))
	for i, c := range cpus {
		list[i] = strconv.Itoa(c)
	}
	// taskset execs the command: the PID stays the server's.
	return exec.Command("taskset", append([]string{"-c", strings.Join(list, ","), name}, args...)...)
}

// startNginx serves root on loopback with sendfile, as a site would serve
// static files, and stops it by PID when the benchmark ends. It runs on
// cpus (nil: all), one worker per CPU, and returns the base URL and the
// master's PID.
func startNginx(b *testing.B, root string, cpus []int) (string, int) {
	nginx := needCmd(b, "nginx")
	dir := b.TempDir()
	port := freePort(b)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the files live in a 0700 temp dir
	}
	conf := fmt.Sprintf(`%s
worker_processes %d;
pid %s/nginx.pid;
error_log %s/error.log;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path %s/body;
  proxy_temp_path %s/proxy;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:%d;
    root %s;
  }
}
`, user, cmp.Or(len(cpus), runtime.NumCPU()), dir, dir, dir, dir, port, root)
	writeFile(b, filepath.Join(dir, "nginx.conf"), []byte(conf))
	cmd := onCPUs(cpus, nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		cmd.Wait()
	})
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			break
		}
		if i == 100 {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			b.Fatalf("nginx did not start: %s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return base, cmd.Process.Pid
}

// download fetches url total times with c concurrent clients (keep-alive)
// and returns the bytes per second.
func download(b *testing.B, url string, c, total int, want int64) float64 {
	tr := &http.Transport{MaxIdleConnsPerHost: c, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var next, bytes atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for next.Add(1) <= int64(total) {
				resp, err := client.Get(url)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				var n int64
				for {
					k, err := resp.Body.Read(buf)
					n += int64(k)
					if err != nil {
						break
					}
				}
				resp.Body.Close()
				if resp.StatusCode != 200 || n != want {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %s, %d bytes", url, resp.Status, n))
					return
				}
				bytes.Add(n)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	return float64(bytes.Load()) / time.Since(start).Seconds()
}

// wwdBuildTags are the Makefile's $(TAGS): the real binary is built as
// `make build` builds it.
const wwdBuildTags = "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper"

// startWarewulfd builds ./cmd/warewulfd and runs it as its own process with
// warewulf.conf at conf (it must listen on loopback), waits until it
// answers HTTP on addr (host:port), and stops it by PID when the benchmark
// ends. It runs on cpus (nil: all) and returns the base URL and the PID.
func startWarewulfd(b *testing.B, conf, addr string, cpus []int) (string, int) {
	goCmd := needCmd(b, "go")
	bin := filepath.Join(b.TempDir(), "warewulfd")
	out, err := exec.Command(goCmd, "build", "-tags", wwdBuildTags, "-trimpath", "-o", bin,
		"github.com/warewulf-ng/warewulf/cmd/warewulfd").CombinedOutput()
	if err != nil {
		b.Fatalf("building warewulfd: %v\n%s", err, out)
	}
	logFile := filepath.Join(filepath.Dir(conf), "warewulfd.log")
	log, err := os.Create(logFile)
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	cmd := onCPUs(cpus, bin, "--config", conf)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with a killed test binary
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(40 * time.Second): // past its 30 s graceful shutdown
			cmd.Process.Kill()
			<-exited
		}
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr, cmd.Process.Pid
		}
		select {
		case <-exited:
			data, _ := os.ReadFile(logFile)
			b.Fatalf("warewulfd exited: %s", data)
		case <-time.After(50 * time.Millisecond):
		}
		if i == 200 {
			data, _ := os.ReadFile(logFile)
			b.Fatalf("warewulfd did not answer on %s: %s", addr, data)
		}
	}
}

// benchSandbox writes a sandbox warewulf.conf with HTTP on ip (a loopback
// address) and a free port, no DHCP or TFTP, changed by edit (when set).
// It returns the file, the config and the port.
func benchSandbox(b *testing.B, ip string, edit func(*config.Config)) (string, *config.Config, int) {
	dir := b.TempDir()
	port := freePort(b)
	file, err := config.WriteSandbox(dir, config.SandboxOptions{Ipaddr: ip, Netmask: "255.0.0.0", Port: port})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Warewulf.ListenAddress = ip
	cfg.DHCP.Enabled = false
	cfg.TFTP.Enabled = false
	if edit != nil {
		edit(cfg)
	}
	data, err := cfg.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	writeFile(b, file, data)
	return file, cfg, port
}

// builtImageSandbox writes a benchSandbox on 127.0.0.1, a rootfs of a fake
// kernel and size incompressible bytes built into image "img" (zstd: the
// quickest build of random data), and node n1 (52:54:00:00:00:01) booting
// it. It returns the configuration file, the config, the HTTP port and the
// built image file.
func builtImageSandbox(b *testing.B, size int, edit func(*config.Config)) (string, *config.Config, int, string) {
	file, cfg, port := benchSandbox(b, "127.0.0.1", func(c *config.Config) {
		c.Warewulf.ImageCompression = "zstd"
		if edit != nil {
			edit(c)
		}
	})
	writeFile(b, cfg.NodesConf(), []byte("nodes:\n  n1:\n    image name: img\n    network devices:\n      default:\n        hwaddr: 52:54:00:00:00:01\n        ipaddr: 127.0.0.11\n"))
	rootfs := cfg.ImageRootfs("img")
	writeFile(b, filepath.Join(rootfs, "boot", "vmlinuz-6.1.0-test"), randomBytes(b, 4<<20))
	writeFile(b, filepath.Join(rootfs, "usr", "share", "payload.bin"), randomBytes(b, size))
	if _, err := image.Build(context.Background(), cfg, "img", image.BuildOptions{}); err != nil {
		b.Fatal(err)
	}
	a, err := image.BuiltArtifacts(cfg, "img", "")
	if err != nil {
		b.Fatal(err)
	}
	return file, cfg, port, a.Image
}

// BenchmarkImageDownload: the real warewulfd binary (its own process, a
// sandbox config, a really built image) against nginx serving the same
// built image file on loopback, with 1, 16 and 64 connections of wrk. They
// take turns, round by round, the one to go first alternating; each
// reports its median round, and the ratio is the median of the rounds'
// ratios. Each also reports the CPU seconds its process(es) spent per GB
// sent.
func BenchmarkImageDownload(b *testing.B) {
	conf, cfg, port, imageFile := builtImageSandbox(b, 64<<20, nil)
	st, err := os.Stat(imageFile)
	if err != nil {
		b.Fatal(err)
	}
	size := st.Size()
	rel, err := filepath.Rel(cfg.ProvisionDir(), imageFile)
	if err != nil {
		b.Fatal(err)
	}
	serverCPUs, clientCPUs := benchCPUs(b)
	ngBase, ngPid := startNginx(b, cfg.ProvisionDir(), serverCPUs)
	wwBase, wwPid := startWarewulfd(b, conf, "127.0.0.1:"+strconv.Itoa(port), serverCPUs)
	ng := &server{url: ngBase + "/" + filepath.ToSlash(rel), pid: ngPid, client: clientCPUs}
	ww := &server{url: wwBase + "/image/52:54:00:00:00:01", pid: wwPid, client: clientCPUs}
	// Both send the built file byte for byte (wrk only counts bytes);
	// this also warms the page cache and both servers.
	download(b, ng.url, 1, 2, size)
	download(b, ww.url, 1, 2, size)
	for _, c := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", c), func(b *testing.B) {
			rounds := 5
			if c == 1 {
				rounds = 9
			}
			var ratios []float64
			ng.reset()
			ww.reset()
			for range b.N {
				for r := range rounds {
					first, second := ng, ww
					if r%2 == 1 {
						first, second = ww, ng
					}
					first.round(b, c, size)
					second.round(b, c, size)
					ratios = append(ratios, ww.rates[len(ww.rates)-1]/ng.rates[len(ng.rates)-1])
				}
			}
			b.ReportMetric(median(ww.rates)/1e6, "warewulfd-MB/s")
			b.ReportMetric(median(ng.rates)/1e6, "nginx-MB/s")
			b.ReportMetric(median(ratios), "ratio-vs-nginx")
			b.ReportMetric(ww.cpuPerGB(), "warewulfd-cpu-s/GB")
			b.ReportMetric(ng.cpuPerGB(), "nginx-cpu-s/GB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// server is one side of BenchmarkImageDownload and what it measured.
type server struct {
	url       string
	pid       int
	client    []int     // the CPUs wrk runs on
	rates     []float64 // bytes per second, one per round
	cpu, sent float64   // CPU seconds and bytes over the rounds
}

func (s *server) reset() { s.rates, s.cpu, s.sent = nil, 0, 0 }

// round runs wrk with c connections against the server for two seconds.
func (s *server) round(b *testing.B, c int, size int64) {
	cpu0 := procCPU(b, s.pid)
	res := runWrk(b, s.url, min(c, 2), c, 2*time.Second, s.client)
	s.cpu += procCPU(b, s.pid) - cpu0
	// wrk counts the bytes it read (headers, whole bodies and the
	// unfinished last ones) and prints them rounded to 0.01 of a unit.
	// With many connections sharing a slow machine, none may finish its
	// 64 MiB within the round: the bytes still count.
	if res.bytes == 0 || res.bytes < 0.99*float64(res.requests)*float64(size) {
		b.Fatalf("%s: %d requests, %.0f bytes: short responses", s.url, res.requests, res.bytes)
	}
	s.sent += res.bytes
	s.rates = append(s.rates, res.bytes/res.seconds)
}

func (s *server) cpuPerGB() float64 { return s.cpu / (s.sent / 1e9) }

// procCPU is the user and system CPU seconds of process pid and its
// children (nginx's workers).
func procCPU(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	total := (utime + stime) / 100 // USER_HZ
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, c := range strings.Fields(string(children)) {
		if n, err := strconv.Atoi(c); err == nil {
			total += procCPU(b, n)
		}
	}
	return total
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

var (
	wrkRate  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTotal = regexp.MustCompile(`([0-9]+) requests in ([0-9.]+)(us|ms|s|m), ([0-9.]+)(B|KB|MB|GB|TB) read`)
)

type wrkResult struct {
	requests int
	seconds  float64 // how long wrk ran
	bytes    float64 // read, headers included
	rate     float64 // requests per second
}

// runWrk runs the wrk load generator (threads, conns) against url for d,
// on cpus (nil: all); any non-2xx answer or socket error fails the
// benchmark.
func runWrk(b *testing.B, url string, threads, conns int, d time.Duration, cpus []int) wrkResult {
	bin := needCmd(b, "wrk")
	out, err := onCPUs(cpus, bin, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", d.String(), "--timeout", "30s", url).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	s := string(out)
	if strings.Contains(s, "Non-2xx") || strings.Contains(s, "Socket errors") {
		b.Fatalf("wrk saw errors:\n%s", s)
	}
	m, t := wrkRate.FindStringSubmatch(s), wrkTotal.FindStringSubmatch(s)
	if m == nil || t == nil {
		b.Fatalf("wrk output:\n%s", s)
	}
	var r wrkResult
	r.rate, _ = strconv.ParseFloat(m[1], 64)
	r.requests, _ = strconv.Atoi(t[1])
	r.seconds, _ = strconv.ParseFloat(t[2], 64)
	r.seconds *= map[string]float64{"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[t[3]]
	r.bytes, _ = strconv.ParseFloat(t[4], 64)
	r.bytes *= map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[t[5]]
	return r
}

// BenchmarkRequestsPerSecond: iPXE scripts and runtime overlays with 64
// connections (wrk) from the real warewulfd binary, with the node's runtime
// overlay really built from the shipped overlays, beside nginx serving the
// same runtime-overlay bytes as a static file. The servers run on the
// first half of the CPUs and wrk on the rest, as in BenchmarkImageDownload.
// Secure mode is off: wrk cannot pick its source port; the secure checks
// are a few comparisons (the boot storm runs them).
func BenchmarkRequestsPerSecond(b *testing.B) {
	datadir := testenv.RepoDatadir(b, "../..") // the shipped overlays
	conf, cfg, port, _ := builtImageSandbox(b, 1<<20, func(c *config.Config) {
		c.Warewulf.Secure = false
		c.Paths.Datadir = datadir
	})
	writeFile(b, cfg.NodesConf(), []byte(`nodeprofiles:
  default:
    kernel: {args: [quiet, crashkernel=no]}
    runtime overlay: [hosts, ssh.authorized_keys, syncuser]
    system overlay: [wwinit, hostname]
nodes:
  n1:
    profiles: [default]
    image name: img
    network devices:
      default: {hwaddr: "52:54:00:00:00:01", ipaddr: 127.0.0.11, netmask: 255.0.0.0}
`))
	serverCPUs, clientCPUs := benchCPUs(b)
	wwBase, _ := startWarewulfd(b, conf, "127.0.0.1:"+strconv.Itoa(port), serverCPUs)
	// The first request builds the overlay (autobuild); nginx then serves
	// the bytes warewulfd sends.
	resp, err := http.Get(wwBase + "/runtime/52:54:00:00:00:01")
	if err != nil {
		b.Fatal(err)
	}
	rt, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		log, _ := os.ReadFile(filepath.Join(filepath.Dir(conf), "warewulfd.log"))
		b.Fatalf("runtime overlay: %s, %v\n%s", resp.Status, err, log)
	}
	static := b.TempDir()
	writeFile(b, filepath.Join(static, "runtime.img"), rt)
	ngBase, _ := startNginx(b, static, serverCPUs)
	// Rounds take turns, so a disturbance of the machine moves one round
	// of each, not all of one.
	urls := []struct{ name, url string }{
		{"ipxe", wwBase + "/ipxe/52:54:00:00:00:01"},
		{"runtime", wwBase + "/runtime/52:54:00:00:00:01"},
		{"nginx-same-runtime-file", ngBase + "/runtime.img"},
	}
	rates := make([][]float64, len(urls))
	var ratios []float64
	for range b.N {
		for range 3 {
			for i, u := range urls {
				rates[i] = append(rates[i], runWrk(b, u.url, 2, 64, 2*time.Second, clientCPUs).rate)
			}
			ratios = append(ratios, rates[1][len(rates[1])-1]/rates[2][len(rates[2])-1])
		}
	}
	for i, u := range urls {
		b.ReportMetric(median(rates[i]), u.name+"-req/s")
	}
	b.ReportMetric(median(ratios), "runtime-vs-nginx")
	b.ReportMetric(float64(len(rt)), "runtime-bytes")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkBootStorm: 10,000 nodes, 64 at a time, each fetching its iPXE
// script, kernel, image, kmods and system overlay over one connection from
// its own address, then its runtime overlay from port 1000 of that address
// (secure mode on). Files are small (a boot storm here measures request
// handling; BenchmarkImageDownload measures throughput).
func BenchmarkBootStorm(b *testing.B) {
	needRoot(b)
	const nodes, workers = 10000, 64
	var conf strings.Builder
	conf.WriteString("nodeprofiles:\n  default:\n    image name: img\nnodes:\n")
	mac := func(i int) string { return fmt.Sprintf("52:54:01:00:%02x:%02x", i>>8, i&0xff) }
	ip := func(i int) string { return fmt.Sprintf("127.1.%d.%d", i/250, i%250+1) }
	for i := range nodes {
		fmt.Fprintf(&conf, "  s%05d:\n    profiles: [default]\n    network devices:\n      default:\n        hwaddr: %s\n        ipaddr: %s\n", i, mac(i), ip(i))
	}
	e := newEnv(b, envOptions{nodesConf: conf.String(), secure: true, quiet: true, kernelSize: 256 << 10, imageSize: 1 << 20, kmodsSize: 64 << 10})
	sizes := map[string]int64{"kernel": 256 << 10, "image": 1 << 20, "kmods": 64 << 10}
	for i := range nodes {
		sizes[fmt.Sprint("system", i)] = int64(len(e.nodeOverlay(fmt.Sprintf("s%05d", i), overlay.System, 2048)))
		sizes[fmt.Sprint("runtime", i)] = int64(len(e.nodeOverlay(fmt.Sprintf("s%05d", i), overlay.Runtime, 512)))
	}
	host := e.srv.HTTPAddr().String()
	for range b.N {
		resetPeakRSS()
		var next, errs, bytes atomic.Int64
		var firstErr atomic.Value
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= nodes {
						return
					}
					n, err := bootNode(host, mac(i), ip(i), []int64{-1, sizes["kernel"], sizes["image"], sizes["kmods"], sizes[fmt.Sprint("system", i)]}, sizes[fmt.Sprint("runtime", i)])
					bytes.Add(n)
					if err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Errorf("node %d: %w", i, err))
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		if err, _ := firstErr.Load().(error); err != nil {
			b.Errorf("%d nodes failed; first: %v", errs.Load(), err)
		}
		b.ReportMetric(float64(errs.Load()), "errors")
		b.ReportMetric(el.Seconds(), "s/storm")
		b.ReportMetric(float64(nodes)/el.Seconds(), "nodes/s")
		b.ReportMetric(float64(nodes*6)/el.Seconds(), "req/s")
		b.ReportMetric(float64(bytes.Load())/el.Seconds()/1e6, "MB/s")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
		b.ReportMetric(0, "ns/op")
	}
	if st := e.srv.statusReport(); st.Nodes[nodes-1].Stage != "runtime" {
		b.Errorf("last node's status: %+v", st.Nodes[nodes-1])
	}
}

var stagePaths = []string{"ipxe", "kernel", "image", "kmods", "system"}

// bootNode plays one node: five requests on one keep-alive connection from
// its address, then the runtime overlay from a privileged port.
func bootNode(host, mac, ip string, sizes []int64, runtimeSize int64) (int64, error) {
	var total int64
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", host)
	if err != nil {
		return 0, err
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	for i, stage := range stagePaths {
		n, err := fetch(conn, br, host, "/"+stage+"/"+mac, sizes[i])
		total += n
		if err != nil {
			conn.Close()
			return total, fmt.Errorf("%s: %w", stage, err)
		}
	}
	conn.Close()
	d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip), Port: 1000}
	// The last storm's connections from this port may still be in
	// TIME_WAIT (towards another server port): reuse the address.
	d.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
		return errors.Join(err, serr)
	}
	conn, err = d.Dial("tcp", host)
	if err != nil {
		return total, fmt.Errorf("runtime: %w", err)
	}
	defer conn.Close()
	n, err := fetch(conn, bufio.NewReader(conn), host, "/runtime/"+mac, runtimeSize)
	if err != nil {
		err = fmt.Errorf("runtime: %w", err)
	}
	return total + n, err
}

func fetch(conn net.Conn, br *bufio.Reader, host, path string, want int64) (int64, error) {
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return n, err
	}
	if resp.StatusCode != 200 || (want >= 0 && n != want) {
		return n, fmt.Errorf("%s, %d bytes (want %d)", resp.Status, n, want)
	}
	return n, nil
}

// resetPeakRSS restarts the kernel's peak-RSS count of this process.
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is the process's peak resident set (VmHWM) in bytes; it counts
// the load generator as well as the server.
func peakRSS() int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
