package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// ignitionBinary is where Debian's ignition package puts Ignition (and
// where the ignition overlay's ww-ignition.service runs it from).
const ignitionBinary = "/usr/lib/dracut/modules.d/30ignition/ignition"

// installBinary copies a program of this machine into an image root at
// dst, with the libraries it loads that the image lacks.
func installBinary(t testing.TB, root, src, dst string) {
	t.Helper()
	copyFile(t, src, filepath.Join(root, dst), 0o755)
	for _, l := range lines(run(t, nil, "ldd", src)) {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "/") {
				if _, err := os.Stat(filepath.Join(root, f)); err != nil {
					copyFile(t, f, filepath.Join(root, f), 0o755)
				}
			}
		}
	}
}

const ignitionNode = `
profiles: [default]
image name: debian-ignition
system overlay: [ignition]
network devices:
  default:
    device: eth0
    hwaddr: 52:54:00:99:00:52
    ipaddr: 10.99.0.20
    netmask: 255.255.255.0
disks:
  /dev/vda:
    partitions:
      scratch:
        number: "1"
        size_mib: "64"
        should_exist: true
      swap:
        number: "2"
        size_mib: "32"
        should_exist: true
filesystems:
  /dev/disk/by-partlabel/scratch:
    format: ext4
    path: /scratch
  /dev/disk/by-partlabel/swap:
    format: swap
    path: swap
`

// TestBootIgnition: a Debian node with systemd and Debian's Ignition gets
// its disk partitioned and formatted by the ignition overlay
// (ww-ignition.service), /scratch mounted and swap on by the overlay's
// units; a file on /scratch survives a power cycle (Ignition reuses what
// matches).
func TestBootIgnition(t *testing.T) {
	e := getEnv(t)
	for _, f := range []string{ignitionBinary, "/usr/sbin/sgdisk"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s: %v (test/deps.sh installs ignition and gdisk)", f, err)
		}
	}
	archive := debianOCIArchive(t)
	e.wwctl(t, "image", "import", "--force", "oci-archive:"+archive, "debian-ignition")
	root := e.cfg.ImageRootfs("debian-ignition")
	// The test images carry only the NIC drivers: add the disk's.
	version, kroot := debianKernel(t)
	installKernel(t, root, version, kroot, diskModules...)
	installBinary(t, root, ignitionBinary, ignitionBinary)
	sgdisk, _ := exec.LookPath("sgdisk")
	installBinary(t, root, sgdisk, "/usr/sbin/sgdisk")
	e.wwctl(t, "image", "build", "debian-ignition")

	const name, mac = "n10", "52:54:00:99:00:52"
	var c node.Conf
	if err := yaml.Unmarshal([]byte(ignitionNode), &c); err != nil {
		t.Fatal(err)
	}
	if err := node.Update(e.cfg.NodesConf(), func(db *node.DB) error { db.Nodes[name] = &c; return nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.wwctl(t, "node", "delete", "--yes", name) })
	e.wwctl(t, "node", "set", name, "--kernelargs", "systemd.show_status=1")
	e.buildOverlays(t, name)
	disk := filepath.Join(t.TempDir(), "vda.img")
	os.WriteFile(disk, nil, 0o600)
	if err := os.Truncate(disk, 256<<20); err != nil {
		t.Fatal(err)
	}
	check := "systemctl is-active ww-ignition.service; grep ' /scratch ' /proc/mounts; grep -c partlabel /proc/swaps || grep -c vda2 /proc/swaps"
	multiUser := regexp.MustCompile(`Reached target.*Multi-User System`)

	v := bootVM(t, e.ns, name, mac, vmOpts{memory: "2048", disk: disk})
	v.waitFor(t, multiUser, debianBoot)
	v.login(t, time.Minute)
	out := v.shell(t, check+"; echo kept-by-ignition > /scratch/proof; sync", time.Minute)
	t.Logf("first boot:\n%s", out)
	if !strings.Contains(out, "active") || !strings.Contains(out, " /scratch ext4 ") {
		diag := v.shell(t, "journalctl -u ww-ignition.service --no-pager | tail -40", time.Minute)
		t.Fatalf("first boot: Ignition did not make /scratch:\n%s\n%s", out, diag)
	}
	v.p.stop()

	v2 := bootVM(t, e.ns, name+"-again", mac, vmOpts{memory: "2048", disk: disk})
	v2.waitFor(t, multiUser, debianBoot)
	v2.login(t, time.Minute)
	out = v2.shell(t, check+"; cat /scratch/proof", time.Minute)
	t.Logf("second boot:\n%s", out)
	if !strings.Contains(out, "kept-by-ignition") {
		t.Errorf("second boot: the file on /scratch is gone:\n%s", out)
	}
}
