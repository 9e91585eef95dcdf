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

// diskTools are what the sfdisk, mkfs and mkswap overlays run; the disk
// test's busybox image gets this machine's (util-linux, e2fsprogs), with
// the libraries they load.
var diskTools = []string{"sfdisk", "wipefs", "mkfs.ext4", "mkswap", "blockdev", "blkid"}

// diskModules are the drivers a disk node needs beyond nodeModules.
var diskModules = []string{"virtio_blk", "ext4", "crc32c_generic", "crc32c_intel", "libcrc32c"}

func addTools(t testing.TB, root string, tools ...string) {
	t.Helper()
	libs := map[string]bool{}
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s: %v (test/deps.sh installs it)", tool, err)
		}
		copyFile(t, p, filepath.Join(root, "usr/sbin", tool), 0o755)
		out := run(t, nil, "ldd", p)
		for _, l := range lines(out) {
			for _, f := range strings.Fields(l) {
				if strings.HasPrefix(f, "/") {
					libs[f] = true
				}
			}
		}
	}
	for lib := range libs {
		copyFile(t, lib, filepath.Join(root, lib), 0o755)
	}
}

// diskNode is the disk test's node: a virtio disk with a scratch file
// system, swap and a partition for its root (provision to disk), in
// upstream's nodes.conf keys.
const diskNode = `
profiles: [default]
image name: disk
root: /dev/disk/by-partlabel/rootfs
system overlay: [sfdisk, mkfs, mkswap, systemd.mount, systemd.swap]
network devices:
  default:
    device: eth0
    hwaddr: 52:54:00:99:00:19
    ipaddr: 10.99.0.19
    netmask: 255.255.255.0
disks:
  /dev/vda:
    wipe_table: true
    partitions:
      scratch:
        number: "1"
        size_mib: "64"
        should_exist: true
      swap:
        number: "2"
        size_mib: "32"
        should_exist: true
      rootfs:
        number: "3"
        should_exist: true
filesystems:
  /dev/disk/by-partlabel/scratch:
    format: ext4
    path: /scratch
  /dev/disk/by-partlabel/swap:
    format: swap
    path: swap
  /dev/disk/by-partlabel/rootfs:
    format: ext4
    path: /
`

var (
	rePartitioned = regexp.MustCompile(`sfdisk: /dev/vda: partitioning`)
	reLeftAlone   = regexp.MustCompile(`sfdisk: /dev/vda: partitions as nodes.conf lists them; left alone`)
	reMadeExt4    = regexp.MustCompile(`mkfs: /dev/vda1: making ext4`)
	reKeptExt4    = regexp.MustCompile(`mkfs: /dev/vda1: already ext4; kept`)
	reMadeSwap    = regexp.MustCompile(`mkswap: /dev/vda2: making swap`)
	reMounted     = regexp.MustCompile(`mount: /dev/disk/by-partlabel/scratch on /scratch`)
	reSwapOn      = regexp.MustCompile(`swapon: /dev/disk/by-partlabel/swap`)
	reMadeRoot    = regexp.MustCompile(`mkfs: /dev/vda3: making ext4`)
	reCopyFailed  = regexp.MustCompile(`cp: can.t|wwinit: copying .* failed`)
	reRootCopy    = regexp.MustCompile(`wwinit: root on /dev/disk/by-partlabel/rootfs \(/dev/vda3, ext4\): copying`)
)

// TestBootDisks boots a node with an empty virtio disk and its root on
// that disk: in one boot the disk overlays partition it, make the file
// systems and swap, wwinit copies the root onto the root partition and
// switches there, and the rest is mounted. A file written to /scratch is
// there after a power cycle, whose boot leaves the partitions and file
// systems alone and provisions the root again. Then the two-stage boot: onto
// the partition made before, and onto an empty disk (stage 1 unpacks into a
// tmpfs and wwinit provisions the disk, in one boot as well).
func TestBootDisks(t *testing.T) {
	e := getEnv(t)
	root := filepath.Join(artifacts, "disk-root")
	os.RemoveAll(root)
	busyboxRoot(t, root)
	version, kroot := debianKernel(t)
	installKernel(t, root, version, kroot, diskModules...)
	addTools(t, root, diskTools...)
	e.wwctl(t, "image", "import", root, "disk")
	os.RemoveAll(root)
	e.wwctl(t, "image", "build", "disk")

	const name, mac = "n9", "52:54:00:99:00:19"
	var c node.Conf
	if err := yaml.Unmarshal([]byte(diskNode), &c); err != nil {
		t.Fatal(err)
	}
	if err := node.Update(e.cfg.NodesConf(), func(db *node.DB) error { db.Nodes[name] = &c; return nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.wwctl(t, "node", "delete", "--yes", name) })
	e.buildOverlays(t, name)

	emptyDisk := func() string {
		disk := filepath.Join(t.TempDir(), "vda.img")
		if err := os.WriteFile(disk, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(disk, 512<<20); err != nil {
			t.Fatal(err)
		}
		return disk
	}
	disk := emptyDisk()

	// First boot: an empty disk; the root ends on it.
	v := bootVM(t, e.ns, name, mac, vmOpts{disk: disk})
	for _, re := range []*regexp.Regexp{rePartitioned, reMadeExt4, reMadeSwap, reMadeRoot, reRootCopy, reMounted, reSwapOn} {
		v.waitFor(t, re, 3*time.Minute)
	}
	v.waitFor(t, reRuntime, 2*time.Minute)
	out := v.shell(t, "echo kept-across-reboots > /scratch/proof && sync && grep ' / ' /proc/mounts && grep -c vda2 /proc/swaps && grep ' /scratch ' /proc/mounts && umount /scratch && swapoff -a && echo unmounted", time.Minute)
	if !strings.Contains(out, "unmounted") || !strings.Contains(out, "/dev/vda1 /scratch ext4") {
		t.Fatalf("first boot: scratch or swap missing:\n%s", out)
	}
	if !strings.Contains(out, "/dev/vda3 / ext4") {
		t.Fatalf("first boot: the root is not /dev/vda3:\n%s", out)
	}
	v.p.stop() // power off

	// Second boot: the same disk.
	v2 := bootVM(t, e.ns, name+"-again", mac, vmOpts{disk: disk})
	for _, re := range []*regexp.Regexp{reLeftAlone, reKeptExt4, reRootCopy, reMounted, reSwapOn} {
		v2.waitFor(t, re, 3*time.Minute)
	}
	v2.waitFor(t, reRuntime, 2*time.Minute)
	for _, re := range []*regexp.Regexp{rePartitioned, reMadeExt4, reMadeSwap, reMadeRoot} {
		if _, _, ok := v2.p.out.waitFor(re, 0, time.Millisecond, nil); ok {
			t.Errorf("second boot: %q: the disk was made again", re)
		}
	}
	// The root is provisioned again, over the copy of the first boot.
	if _, _, ok := v2.p.out.waitFor(reCopyFailed, 0, time.Millisecond, nil); ok {
		t.Errorf("second boot: copying the root over the first boot's failed:\n%s", v2.p.out.tail(40))
	}
	out = v2.shell(t, "cat /scratch/proof; grep ' / ' /proc/mounts; sync; umount /scratch; swapoff -a", time.Minute)
	if !strings.Contains(out, "kept-across-reboots") {
		t.Errorf("second boot: /scratch/proof: %q", out)
	}
	if !strings.Contains(out, "/dev/vda3 / ext4") {
		t.Errorf("second boot: the root is not /dev/vda3:\n%s", out)
	}
	v2.p.stop()

	// Third boot, two-stage: stage 1 puts the image straight onto the
	// rootfs partition the earlier boots made, and the node runs from it.
	e.wwctl(t, "node", "set", name, "--ipxe", "twostage")
	e.buildOverlays(t, name)
	v3 := bootVM(t, e.ns, name+"-on-disk", mac, vmOpts{disk: disk})
	v3.waitFor(t, regexp.MustCompile(`wwstage1: root on /dev/disk/by-partlabel/rootfs \(/dev/vda3, ext4\)`), 3*time.Minute)
	v3.waitFor(t, reRuntime, 3*time.Minute)
	if _, _, ok := v3.p.out.waitFor(reRootCopy, 0, time.Millisecond, nil); ok {
		t.Errorf("two-stage boot onto the disk: wwinit copied the root again")
	}
	out = v3.shell(t, "grep ' / ' /proc/mounts; cat /scratch/proof; sync", time.Minute)
	if !strings.Contains(out, "/dev/vda3 / ext4") {
		t.Errorf("two-stage provision to disk: the root is not /dev/vda3:\n%s", out)
	}
	if !strings.Contains(out, "kept-across-reboots") {
		t.Errorf("two-stage provision to disk: /scratch lost its file:\n%s", out)
	}
	v3.p.stop()

	// Fourth boot, two-stage onto an empty disk: stage 1 finds no
	// partition and unpacks into a tmpfs; the disk overlays make the disk
	// and wwinit moves the root onto it.
	v4 := bootVM(t, e.ns, name+"-two-stage-empty", mac, vmOpts{disk: emptyDisk()})
	v4.waitFor(t, regexp.MustCompile(`wwstage1: root /dev/disk/by-partlabel/rootfs: no such partition on the disks present; unpacking into a tmpfs`), 3*time.Minute)
	for _, re := range []*regexp.Regexp{rePartitioned, reMadeRoot, reRootCopy, reMounted} {
		v4.waitFor(t, re, 3*time.Minute)
	}
	v4.waitFor(t, reRuntime, 3*time.Minute)
	if out := v4.shell(t, "grep ' / ' /proc/mounts", time.Minute); !strings.Contains(out, "/dev/vda3 / ext4") {
		t.Errorf("two-stage onto an empty disk: the root is not /dev/vda3:\n%s", out)
	}
}
