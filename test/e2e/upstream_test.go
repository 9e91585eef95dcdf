package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// TestBootUpstreamDefaults: a controller set up from the warewulf.conf and
// nodes.conf upstream installs, with the README's cluster commands, boots
// a BIOS node through the built-in DHCP to its runtime overlay. The only
// addition to upstream's files is where this checkout keeps the shipped
// overlays (an installed controller has them in /usr/share/warewulf).
func TestBootUpstreamDefaults(t *testing.T) {
	e := getEnv(t)
	dir := filepath.Join(artifacts, "upstream")
	os.RemoveAll(dir)
	conf := filepath.Join(dir, "warewulf.conf")
	writeFile(t, conf, testenv.UpstreamWarewulfConf+"paths:\n  datadir: "+testenv.RepoDatadir(t, e.repo)+"\n", 0o644)
	writeFile(t, filepath.Join(dir, "nodes.conf"), testenv.UpstreamNodesConf, 0o640)
	vars := []string{config.EnvVar + "=" + conf}
	ww := func(args ...string) string { return run(t, vars, append([]string{e.tool("wwctl")}, args...)...) }
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	// This checkout's wwclient binary, as installWwclient does.
	site := filepath.Join(cfg.SiteOverlayDir(), "wwclient")
	os.MkdirAll(filepath.Dir(site), 0o755)
	run(t, nil, "cp", "-a", filepath.Join(e.repo, "overlays/wwclient"), site)
	copyFile(t, e.tool("wwclient"), filepath.Join(site, "rootfs/warewulf/bin", hostArch(), "wwclient"), 0o755)
	root := filepath.Join(artifacts, "upstream-root")
	os.RemoveAll(root)
	busyboxRoot(t, root)

	const mac, ip = "52:54:00:99:00:21", "10.0.1.1"
	ww("image", "import", root, "busybox", "--build")
	os.RemoveAll(root)
	ww("profile", "set", "default", "--image", "busybox", "--kernelargs", "console=ttyS0")
	ww("node", "add", "n001", "--netdev", "eth0", "--ipaddr", ip, "--netmask", "255.255.252.0")
	ww("node", "set", "n001", "--hwaddr", mac)
	ww("overlay", "build")

	ns := newNetns(t, "upstream")
	t.Cleanup(ns.del)
	run(t, nil, ns.exec("ip", "addr", "add", "10.0.0.1/22", "dev", ns.bridge)...)
	wwd := e.startWarewulfd(t, ns, vars, "warewulfd-upstream")
	t.Cleanup(wwd.stop)
	v := bootVM(t, ns, "n001", mac, vmOpts{})
	v.bootTimes(t, "bios-busybox-upstream-defaults", busyboxBoot)
	for _, stage := range []string{"ipxe", "kernel", "image", "system", "runtime"} {
		if _, _, ok := wwd.out.waitFor(regexp.MustCompile(`node=n001 stage=`+stage+` status=200`), 0, 2*time.Second, nil); !ok {
			t.Errorf("warewulfd served no %s to n001", stage)
		}
	}
}
