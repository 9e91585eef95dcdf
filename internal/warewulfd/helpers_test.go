package warewulfd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/image"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
	"github.com/warewulf-ng/warewulf/internal/safefile"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// needRoot skips a test outside CI when not root, and fails it under CI.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root")
		}
		t.Skip("needs root")
	}
}

// needCmd skips (fails under CI) when a program is missing.
func needCmd(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (test/deps.sh)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// fileProvider serves files that a test writes into the provision tree:
// images/NAME/{vmlinuz,image.img,kmods.img}; overlays/NODE/KIND.img after
// the shared overlays/_shared/KIND.img.
type fileProvider struct {
	builds     atomic.Int32
	buildDelay time.Duration
	comp       archive.Compression
}

// testKernelVersion is the kernel version of every test image.
const testKernelVersion = "6.1.0-57-amd64"

func (p *fileProvider) Image(cfg *config.Config, name, kver string) (*image.Artifacts, error) {
	dir := cfg.ImageProvisionDir(name)
	a := &image.Artifacts{Kernel: filepath.Join(dir, "vmlinuz"), Image: filepath.Join(dir, "image.img"), Kmods: filepath.Join(dir, "kmods.img"), Compression: p.comp, KernelVersion: testKernelVersion}
	if _, err := os.Stat(a.Image); err != nil {
		return nil, errors.New("image " + name + " is not built")
	}
	return a, nil
}

func (p *fileProvider) Overlay(cfg *config.Config, nodeName, kind string) ([]string, error) {
	own := filepath.Join(cfg.OverlayProvisionDir(nodeName), kind+".img")
	if _, err := os.Stat(own); err != nil {
		return nil, errors.New(kind + " overlay of " + nodeName + " is not built")
	}
	return []string{filepath.Join(cfg.OverlayProvisionDir("_shared"), kind+".img"), own}, nil
}

func (p *fileProvider) BuildOverlay(cfg *config.Config, db *node.DB, nodeName, kind string) error {
	// Like the real builder: nothing to do when the image is up to date.
	file := filepath.Join(cfg.OverlayProvisionDir(nodeName), kind+".img")
	if _, err := os.Stat(file); err == nil {
		return nil
	}
	p.builds.Add(1)
	time.Sleep(p.buildDelay)
	return safefile.WriteFile(file, []byte("built "+kind+" overlay of "+nodeName+"\n"), 0o644)
}

// testEnv is a sandbox with a running warewulfd on 127.0.0.1.
type testEnv struct {
	t    testing.TB
	cfg  *config.Config
	srv  *Server
	prov *fileProvider
	base string
	logs *syncBuffer
	// stop shuts the server down gracefully (as SIGTERM does) and returns
	// what Run returned; the test's cleanup calls it too.
	stop func() error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type envOptions struct {
	nodesConf string
	secure    bool
	tftp      bool
	quiet     bool // log to io.Discard (benchmarks)
	// sizes of the image's kernel, image and kmods (defaults 300K, 2M, 100K)
	kernelSize, imageSize, kmodsSize int
	comp                             archive.Compression // the image's (default gz)
	// confAddr listens where warewulf.conf says (127.0.0.1 on a free
	// port) rather than on Options.HTTPAddr, so a reload can move it.
	confAddr bool
	// edit changes warewulf.conf before the server starts.
	edit func(*config.Config)
	// services runs DHCP and NDP as warewulf.conf says (Options.NoDHCP
	// off), inside the network namespace netns.
	services bool
	netns    string
	// tftpPort: TFTP listens where warewulf.conf says, on this port
	// rather than 69 (with confAddr), instead of on Options.TFTPAddr.
	tftpPort int
	// listenNetns and httpAddr: HTTP listens on httpAddr inside the
	// network namespace listenNetns.
	listenNetns, httpAddr string
	// built serves overlays the real builder makes (overlay.Parts,
	// autobuild) from the shipped overlays, instead of fileProvider's.
	built bool
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// newEnv writes a sandbox config, nodes.conf and an image "img", and starts
// warewulfd on 127.0.0.1 (HTTP and TFTP on free ports).
func newEnv(t testing.TB, o envOptions) *testEnv {
	t.Helper()
	dir := t.TempDir()
	file, err := config.WriteSandbox(dir, config.SandboxOptions{Ipaddr: "127.0.0.1", Netmask: "255.0.0.0", Port: 9873})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Warewulf.Secure = o.secure
	if o.built {
		cfg.Paths.Datadir = testenv.RepoDatadir(t, "../..") // the shipped overlays
		cfg.Warewulf.AutobuildOverlays = true
	}
	cfg.TFTP.Enabled = o.tftp
	cfg.DHCP.Enabled = false
	if o.confAddr {
		cfg.Warewulf.ListenAddress, cfg.Warewulf.Port = "127.0.0.1", freePort(t)
	}
	if o.edit != nil {
		o.edit(cfg)
	}
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, data)
	writeFile(t, cfg.NodesConf(), []byte(o.nodesConf))
	imgDir := cfg.ImageProvisionDir("img")
	size := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	writeFile(t, filepath.Join(imgDir, "vmlinuz"), randomBytes(t, size(o.kernelSize, 300<<10)))
	writeFile(t, filepath.Join(imgDir, "image.img"), randomBytes(t, size(o.imageSize, 2<<20)))
	writeFile(t, filepath.Join(imgDir, "kmods.img"), randomBytes(t, size(o.kmodsSize, 100<<10)))
	// The shared parts: a system overlay's (wwinit, wwclient: large) and a
	// runtime overlay's (hosts, accounts, keys: a few KB compressed).
	writeFile(t, filepath.Join(cfg.OverlayProvisionDir("_shared"), overlay.System+".img"), randomBytes(t, 64<<10))
	writeFile(t, filepath.Join(cfg.OverlayProvisionDir("_shared"), overlay.Runtime+".img"), randomBytes(t, 6<<10))

	logs := &syncBuffer{}
	log := logrus.New()
	log.SetOutput(logs)
	log.SetLevel(logrus.InfoLevel)
	if o.quiet {
		log.SetOutput(io.Discard)
	}
	prov := &fileProvider{comp: archive.Gzip}
	if o.comp != archive.None {
		prov.comp = o.comp
	}
	var provider Provider = prov
	if o.built {
		provider = Built{}
	}
	opts := Options{ConfigFile: file, Provider: provider, HTTPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", PollInterval: 100 * time.Millisecond, Log: log, NoDHCP: !o.services}
	if o.confAddr {
		opts.HTTPAddr = ""
	}
	if o.tftpPort != 0 {
		opts.TFTPAddr = ""
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if o.tftpPort != 0 {
		srv.tftpPort = itoa(o.tftpPort)
	}
	if o.netns != "" {
		srv.netns = func(fn func() error) error { return testenv.InNetns(o.netns, fn) }
	}
	if o.listenNetns != "" {
		srv.opts.HTTPAddr = o.httpAddr
		err = testenv.InNetns(o.listenNetns, srv.Listen)
	} else {
		err = srv.Listen()
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &testEnv{t: t, cfg: srv.Config(), srv: srv, prov: prov, base: "http://" + srv.HTTPAddr().String(), logs: logs, stop: stop}
}

// setConfig rewrites warewulf.conf (atomically, as an editor that renames
// does) with a change applied to the configuration in use.
func (e *testEnv) setConfig(change func(*config.Config)) {
	e.t.Helper()
	cfg := *e.srv.Config()
	change(&cfg)
	data, err := cfg.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := safefile.WriteFile(e.srv.opts.ConfigFile, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// nodeOverlay writes a node's own overlay part and returns the whole
// overlay image the server should send.
func (e *testEnv) nodeOverlay(nodeName, kind string, size int) []byte {
	own := randomBytes(e.t, size)
	writeFile(e.t, filepath.Join(e.cfg.OverlayProvisionDir(nodeName), kind+".img"), own)
	shared, err := os.ReadFile(filepath.Join(e.cfg.OverlayProvisionDir("_shared"), kind+".img"))
	if err != nil {
		e.t.Fatal(err)
	}
	return append(shared, own...)
}

func (e *testEnv) imageFile(name string) []byte {
	b, err := os.ReadFile(filepath.Join(e.cfg.ImageProvisionDir("img"), name))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// get fetches a URL path and returns the response with its body read.
func (e *testEnv) get(path string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, body
}

// clientFrom returns an HTTP client whose connections come from a given
// local address and port.
func clientFrom(ip string, port int) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip), Port: port}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

var nextPort atomic.Int32

func init() { nextPort.Store(1024) }

// privilegedPort finds a free TCP port below 1024 on ip.
func privilegedPort(t testing.TB, ip string) int {
	t.Helper()
	for {
		p := int(nextPort.Add(-1))
		if p < 600 {
			break
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatal("no free port below 1024")
	return 0
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func itoa(i int) string { return strconv.Itoa(i) }

// awaitLog waits up to 2 s for a log line holding every part: a request's
// line is written when its handler returns, which can be just after the
// client has read the whole response.
func (e *testEnv) awaitLog(t testing.TB, parts ...string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(e.logs.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("no log line with %q in:\n%s", parts, e.logs.String())
			return
		}
	}
}
