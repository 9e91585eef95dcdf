package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// TestNodeOverlaysRender renders the wwinit and wwclient overlays for a
// sample node through `wwctl overlay show --render` and checks what the
// node's /init and wwclient will read; the shell scripts must parse under
// both busybox sh and dash (busybox and Debian images). No root, no VM.
func TestNodeOverlaysRender(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(t.TempDir(), "wwctl")
	build := exec.Command("go", "build", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper", "-o", bin, "./cmd/wwctl")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build wwctl: %v\n%s", err, out)
	}
	dir := t.TempDir()
	conf := strings.TrimSpace(run(t, nil, bin, "genconfig", "sandbox", dir, "--ipaddr", "10.5.0.1", "--port", "9999", "--datadir", repo))
	vars := []string{config.EnvVar + "=" + conf}
	ww := func(args ...string) string { return run(t, vars, append([]string{bin}, args...)...) }
	ww("node", "add", "n1", "--hwaddr", "52:54:00:aa:bb:01", "--ipaddr", "10.5.0.11", "--netmask", "255.255.255.0",
		"--netdev", "eth0", "--gateway", "10.5.0.254", "--root", "tmpfs", "--init", "/lib/systemd/systemd", "--asset", "k 1")

	for file, want := range map[string][]string{
		"wwinit warewulf/wwinit.conf.ww": {"WWNAME='n1'", "WWROOT='tmpfs'", "WWINIT='/lib/systemd/systemd'"},
		"wwinit warewulf/netdevs.ww":     {"default eth0 52:54:00:aa:bb:01 10.5.0.11 255.255.255.0 10.5.0.254 -"},
		"wwclient warewulf/config.ww":    {"controller: 10.5.0.1", "port: 9999", "secure: true", "update interval: 60"},
	} {
		got := ww(append(append([]string{"overlay", "show"}, strings.Fields(file)...), "--render", "n1")...)
		for _, w := range want {
			if !strings.Contains(got, w+"\n") {
				t.Errorf("%s for n1 lacks %q:\n%s", file, w, got)
			}
		}
		// The asset key is the node's SMBIOS asset tag: never in an overlay.
		if strings.Contains(got, "k 1") {
			t.Errorf("%s for n1 holds the asset key:\n%s", file, got)
		}
	}

	scripts := []string{"overlays/wwinit/rootfs/init", "overlays/wwinit/rootfs/warewulf/run-wwinit.d", "overlays/wwinit/rootfs/warewulf/init.d/10-network",
		"overlays/wwclient/rootfs/warewulf/init.d/50-wwclient"}
	var missing []string
	for _, sh := range [][]string{{"busybox", "sh"}, {"dash"}} {
		if _, err := exec.LookPath(sh[0]); err != nil {
			missing = append(missing, sh[0])
			continue
		}
		for _, s := range scripts {
			argv := append(append([]string{}, sh...), "-n", filepath.Join(repo, s))
			if out, err := runErr(nil, argv...); err != nil {
				t.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
			}
		}
	}
	testenv.Need(t, strings.Join(missing, " and ")+" not installed (test/deps.sh installs them)", len(missing) == 0)
}
