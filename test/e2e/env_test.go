// Package e2e boots real qemu nodes from the project: warewulfd runs in a
// network namespace the test makes, nodes are VMs on tap devices of that
// namespace, and the tests read their serial consoles. Run as root
// (`make test` under .ci/run does).
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// artifacts holds console logs and the daemon's log of this run.
var artifacts string

func TestMain(m *testing.M) {
	artifacts = envOr("WW_E2E_LOGS", filepath.Join(os.TempDir(), fmt.Sprintf("wwe2e-%d", os.Getpid())))
	os.MkdirAll(artifacts, 0o755)
	removeStaleNetns()
	// Interrupted (Ctrl-C, a CI timeout): still remove the namespaces.
	// The VMs and warewulfd die with the test binary (Pdeathsig).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		cleanups.run()
		fmt.Fprintf(os.Stderr, "e2e: %v: stopped; logs are in %s\n", s, artifacts)
		os.Exit(1)
	}()
	code := m.Run()
	cleanups.run()
	switch {
	case code != 0:
		fmt.Fprintf(os.Stderr, "e2e: console and daemon logs are in %s\n", artifacts)
	case os.Getenv("WW_E2E_LOGS") == "":
		os.RemoveAll(artifacts) // the sandbox holds the images: hundreds of MB
	}
	os.Exit(code)
}

// requireVM skips a VM test where it cannot run, except under CI, where a
// missing prerequisite is a failure.
func requireVM(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, b := range []string{"qemu-system-x86_64", "ip", "dpkg-deb", "apt-get", "depmod", "busybox"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	for _, f := range []string{"/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/snponly.efi", ovmfCode} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	testenv.Need(t, "VM boot tests need "+strings.Join(missing, ", ")+" (test/deps.sh installs them; CI runs as root)", len(missing) == 0)
	testenv.Long(t, "VM boot test")
}

// testNode is a node of the test cluster.
type testNode struct {
	name, mac, ip, image string
}

var cluster = []testNode{
	{"n1", "52:54:00:99:00:11", prefix + "11", "busybox"},
	{"n2", "52:54:00:99:00:12", prefix + "12", "busybox"},
	{"n3", "52:54:00:99:00:13", prefix + "13", "busybox"},
	{"n4", "52:54:00:99:00:14", prefix + "14", "busybox"},
	{"n5", "52:54:00:99:00:15", prefix + "15", "busybox"},
	{"n6", "52:54:00:99:00:16", prefix + "16", "debian"},
	{"n7", "52:54:00:99:00:17", prefix + "17", "busybox"},
	{"n8", "52:54:00:99:00:71", prefix + "71", "busybox"},   // UEFI, through dnsmasq's TFTP
	{"akey", "52:54:00:99:00:61", prefix + "61", "busybox"}, // has an asset key (assetTag)
	{"soak1", "52:54:00:99:00:5a", prefix + "90", "busybox"},
}

func clusterNode(name string) testNode {
	for _, n := range cluster {
		if n.name == name {
			return n
		}
	}
	panic("no test node " + name)
}

// updateInterval is wwclient's interval in the test cluster, short so a
// change reaches a node quickly.
const updateInterval = 3

// env is the provisioning side shared by every case: the binaries, a
// sandbox controller with the images built, and warewulfd in a namespace.
type env struct {
	repo, bin, dir string
	conf           string // warewulf.conf
	cfg            *config.Config
	vars           []string // WW_CONFIG for the tools
	ns             *netns
	wwd            *proc
}

var (
	shared     *env
	sharedErr  string
	sharedOnce sync.Once
)

// getEnv returns the shared controller, making it on first use.
func getEnv(t *testing.T) *env {
	t.Helper()
	requireVM(t)
	sharedOnce.Do(func() {
		ok := false
		defer func() {
			if !ok && sharedErr == "" {
				sharedErr = "setting up the controller failed (see the first failing test)"
			}
		}()
		shared = newEnv(t)
		ok = true
	})
	if sharedErr != "" {
		t.Fatal(sharedErr)
	}
	return shared
}

func newEnv(t *testing.T) *env {
	start := time.Now()
	e := &env{}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOMOD: %v", err)
	}
	e.repo = filepath.Dir(strings.TrimSpace(string(out)))
	e.bin = filepath.Join(artifacts, "bin")
	e.dir = filepath.Join(artifacts, "sandbox")
	os.RemoveAll(e.dir)
	e.buildBinaries(t)

	e.conf = strings.TrimSpace(run(t, nil, e.tool("wwctl"), "genconfig", "sandbox", e.dir,
		"--ipaddr", controllerIP, "--netmask", netmask, "--datadir", e.repo))
	e.vars = []string{config.EnvVar + "=" + e.conf}
	e.configure(t, e.conf, func(c *config.Config) {
		c.Warewulf.UpdateInterval = updateInterval
		c.Warewulf.Secure = true
		c.Warewulf.AutobuildOverlays = true
		c.DHCP.Enabled = true
		c.DHCP.Server = "builtin"
		c.DHCP.RangeStart = prefix + "100"
		c.DHCP.RangeEnd = prefix + "150"
		c.DHCP.Interfaces = []string{"br0"}
		c.TFTP.Enabled = true
	})
	var err2 error
	if e.cfg, err2 = config.Load(e.conf); err2 != nil {
		t.Fatal(err2)
	}
	e.installWwclient(t)
	e.writeNodes(t)

	root := filepath.Join(artifacts, "busybox-root")
	os.RemoveAll(root)
	busyboxRoot(t, root)
	e.wwctl(t, "image", "import", root, "busybox")
	e.wwctl(t, "image", "build", "busybox")
	os.RemoveAll(root)
	e.buildOverlays(t)
	t.Logf("controller ready in %v", time.Since(start).Round(time.Millisecond))

	e.ns = newNetns(t, "main")
	e.wwd = e.startWarewulfd(t, e.ns, e.vars, "warewulfd")
	return e
}

func (e *env) tool(name string) string { return filepath.Join(e.bin, name) }

// buildBinaries builds the programs as `make build` does (warewulfd
// finds wwstage1 beside itself).
func (e *env) buildBinaries(t *testing.T) {
	tags := "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper"
	for _, b := range []string{"wwctl", "warewulfd", "wwclient", "wwstage1"} {
		cmd := exec.Command("go", "build", "-tags", tags, "-o", e.tool(b), "./cmd/"+b)
		cmd.Dir = e.repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b, err, out)
		}
	}
}

// installWwclient makes the site copy of the wwclient overlay hold the
// freshly built binary (a source checkout has none in overlays/).
func (e *env) installWwclient(t *testing.T) {
	dst := filepath.Join(e.cfg.SiteOverlayDir(), "wwclient")
	os.MkdirAll(filepath.Dir(dst), 0o755)
	run(t, nil, "cp", "-a", filepath.Join(e.repo, "overlays/wwclient"), dst)
	copyFile(t, e.tool("wwclient"), filepath.Join(dst, "rootfs/warewulf/bin", hostArch(), "wwclient"), 0o755)
}

// configure rewrites a warewulf.conf through the config package.
func (e *env) configure(t *testing.T, file string, change func(*config.Config)) {
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	change(c)
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, string(data), 0o644)
}

// writeNodes adds the test cluster to the sandbox's nodes.conf: the
// default profile gets a serial console, every node its MAC and address.
func (e *env) writeNodes(t *testing.T) {
	err := node.Update(e.cfg.NodesConf(), func(db *node.DB) error {
		p := db.Profiles["default"]
		if p.Kernel == nil {
			p.Kernel = &node.Kernel{}
		}
		p.Kernel.Args = append(node.Args{"console=ttyS0"}, p.Kernel.Args...)
		p.ImageName = "busybox"
		// syncuser would copy this machine's accounts into the nodes (and
		// lock the test images' password-less root): not in the tests.
		var rt node.List
		for _, o := range p.RuntimeOverlay {
			if o != "syncuser" {
				rt = append(rt, o)
			}
		}
		p.RuntimeOverlay = append(rt, "e2e")
		if db.Nodes == nil {
			db.Nodes = map[string]*node.Conf{}
		}
		for _, n := range cluster {
			c := &node.Conf{Profiles: node.List{"default"}, NetDevs: map[string]*node.NetDev{
				"default": {Device: "eth0", Hwaddr: n.mac, Ipaddr: n.ip, Netmask: netmask},
			}}
			if n.image != "busybox" {
				c.ImageName = n.image
			}
			if n.name == "n2" {
				c.Root = "tmpfs" // wwinit's copy into a tmpfs and switch_root
			}
			if n.name == "akey" {
				c.AssetKey = assetTag // its VM's SMBIOS chassis asset tag
			}
			db.Nodes[n.name] = c
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A runtime overlay the tests change while nodes run.
	writeFile(t, filepath.Join(e.cfg.SiteOverlayDir(), "e2e/rootfs/etc/e2e-marker.ww"),
		"node {{.Id}} marker {{index .Tags \"marker\"}}\n", 0o644)
}

func (e *env) wwctl(t testing.TB, args ...string) string {
	t.Helper()
	return run(t, e.vars, append([]string{e.tool("wwctl")}, args...)...)
}

// startWarewulfd runs warewulfd inside ns and waits until it answers.
func (e *env) startWarewulfd(t *testing.T, ns *netns, vars []string, name string) *proc {
	p, err := startProc(name, ns.exec(e.tool("warewulfd"), "-v"), vars, filepath.Join(artifacts, name+".log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanups.add(p.stop)
	url := fmt.Sprintf("http://%s:%d/ipxe/00:00:00:00:00:00", controllerIP, e.cfg.Warewulf.Port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := runErr(nil, ns.exec("busybox", "wget", "-q", "-O", "/dev/null", url)...); err == nil {
			return p
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("%s does not answer on %s (exited: %v):\n%s", name, url, p.exited(), p.out.tail(30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// setTag changes a node's tag with `wwctl node set`.
func (e *env) setTag(t testing.TB, nodeName, key, value string) {
	e.wwctl(t, "node", "set", nodeName, "--tagadd", key+"="+value)
}

// buildOverlays builds the overlay images of nodes (all when none) with
// `wwctl overlay build`.
func (e *env) buildOverlays(t testing.TB, nodes ...string) {
	t.Helper()
	e.wwctl(t, append([]string{"overlay", "build"}, nodes...)...)
}

// hostArch is this machine's architecture as `uname -m` names it (the
// wwclient overlay keeps one binary per architecture under that name).
func hostArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}
