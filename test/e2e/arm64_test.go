package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// Debian's qemu-efi-aarch64 firmware.
const (
	aavmfCode = "/usr/share/AAVMF/AAVMF_CODE.fd"
	aavmfVars = "/usr/share/AAVMF/AAVMF_VARS.fd"
)

// arm64Packages are the arm64 packages of the arm64 test image: busybox,
// Debian's signed shim and GRUB, and (added at run time) the kernel that
// linux-image-arm64 depends on.
var arm64Packages = []string{"busybox-static", "shim-signed", "grub-efi-arm64-signed"}

// arm64Debs downloads the arm64 packages once into the cache. apt runs
// with its own state there (arm64 package lists), so this machine's apt
// configuration is not changed; nothing is installed.
func arm64Debs(t *testing.T) map[string]string {
	t.Helper()
	dir := filepath.Join(cacheDir, "arm64")
	apt := []string{"-o", "APT::Architecture=arm64", "-o", "APT::Architectures=arm64",
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"), "-o", "Dir::Cache=" + filepath.Join(dir, "cache")}
	find := func() map[string]string {
		got := map[string]string{}
		debs, _ := filepath.Glob(filepath.Join(dir, "*_arm64.deb"))
		sort.Strings(debs)
		for _, d := range debs {
			name := strings.SplitN(filepath.Base(d), "_", 2)[0]
			if strings.HasPrefix(name, "linux-image-") {
				name = "kernel"
			}
			got[name] = d
		}
		return got
	}
	if got := find(); len(got) == len(arm64Packages)+1 {
		return got
	}
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	run(t, nil, append(append([]string{"apt-get"}, apt...), "update", "-qq")...)
	kernel := ""
	for _, l := range lines(run(t, nil, append(append([]string{"apt-cache"}, apt...), "depends", "linux-image-arm64")...)) {
		if strings.HasPrefix(l, "Depends: linux-image-") {
			kernel = strings.TrimPrefix(l, "Depends: ")
		}
	}
	if kernel == "" {
		t.Fatal("apt-cache depends linux-image-arm64 (arm64 lists) names no kernel package")
	}
	pkgs := append([]string{kernel}, arm64Packages...)
	for i := range pkgs {
		pkgs[i] += ":arm64"
	}
	cmd := exec.Command("apt-get", append(append(apt, "download"), pkgs...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download %v: %v\n%s", pkgs, err, out)
	}
	got := find()
	if len(got) != len(arm64Packages)+1 {
		t.Fatalf("arm64 packages in %s: %v", dir, got)
	}
	return got
}

// arm64OCIArchive makes (once, cached) an OCI archive of an arm64 busybox
// image: arm64 busybox, an arm64 Debian kernel with its NIC modules, and
// Debian's signed shim and GRUB for arm64 where the packages put them.
func arm64OCIArchive(t *testing.T) string {
	t.Helper()
	debs := arm64Debs(t)
	archive := filepath.Join(cacheDir, "arm64", "busybox-"+strings.TrimSuffix(filepath.Base(debs["kernel"]), ".deb")+".oci.tar")
	if _, err := os.Stat(archive); err == nil {
		return archive
	}
	work := t.TempDir()
	root := filepath.Join(work, "rootfs")
	bb := filepath.Join(work, "busybox")
	run(t, nil, "dpkg-deb", "-x", debs["busybox-static"], bb)
	copyFile(t, filepath.Join(bb, "bin/busybox"), filepath.Join(root, "bin/busybox"), 0o755)
	// The applet list of this machine's busybox (same Debian version).
	for _, applet := range lines(run(t, nil, "/bin/busybox", "--list-full")) {
		if applet == "bin/busybox" {
			continue
		}
		link := filepath.Join(root, applet)
		os.MkdirAll(filepath.Dir(link), 0o755)
		rel, _ := filepath.Rel(filepath.Dir(link), filepath.Join(root, "bin/busybox"))
		if err := os.Symlink(rel, link); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "root", "etc/init.d", "var/log"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	run(t, nil, "mknod", "-m", "600", filepath.Join(root, "dev/console"), "c", "5", "1")
	run(t, nil, "mknod", "-m", "666", filepath.Join(root, "dev/null"), "c", "1", "3")
	writeFile(t, filepath.Join(root, "etc/inittab"), "::sysinit:/bin/echo \"busybox init: system up on $(hostname), $(uname -m)\"\nttyAMA0::askfirst:-/bin/sh\n", 0o644)
	writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n", 0o644)
	writeFile(t, filepath.Join(root, "etc/group"), "root:x:0:\n", 0o644)

	kroot := filepath.Join(work, "kernel")
	run(t, nil, "dpkg-deb", "-x", debs["kernel"], kroot)
	vers, _ := filepath.Glob(filepath.Join(kroot, "lib/modules/*"))
	if len(vers) != 1 {
		t.Fatalf("%s: want one lib/modules/*, found %v", debs["kernel"], vers)
	}
	version := filepath.Base(vers[0])
	run(t, nil, "depmod", "-b", kroot, version)
	installKernel(t, root, version, kroot)
	for _, p := range []string{"shim-signed", "grub-efi-arm64-signed"} {
		run(t, nil, "dpkg-deb", "-x", debs[p], root)
	}

	layout := filepath.Join(work, "layout")
	bundle := filepath.Join(work, "bundle")
	run(t, nil, "umoci", "init", "--layout", layout)
	run(t, nil, "umoci", "new", "--image", layout+":arm64")
	run(t, nil, "umoci", "unpack", "--image", layout+":arm64", bundle)
	run(t, nil, "sh", "-c", "cp -a "+root+"/. "+bundle+"/rootfs/")
	run(t, nil, "umoci", "repack", "--image", layout+":arm64", bundle)
	run(t, nil, "umoci", "config", "--image", layout+":arm64", "--architecture", "arm64", "--os", "linux")
	tmp := archive + ".tmp"
	run(t, nil, "tar", "-C", layout, "-cf", tmp, ".")
	if err := os.Rename(tmp, archive); err != nil {
		t.Fatal(err)
	}
	return archive
}

// TestBootArm64: an arm64 node (qemu-system-aarch64, TCG, Debian's
// qemu-efi-aarch64 firmware) PXE boots through shim and GRUB for arm64:
// DHCP answers architecture 0x0b with warewulf/shimaa64.efi, shim loads
// grubaa64.efi, both from the image, which was imported with
// `image import --platform linux/arm64`; GRUB loads the arm64 kernel and
// initrds, and the node's wwclient (its architecture's binary, from the
// same wwclient overlay as the x86_64 nodes) applies the runtime overlay.
func TestBootArm64(t *testing.T) {
	e := getEnv(t)
	var missing []string
	for _, f := range []string{aavmfCode, aavmfVars} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	for _, b := range []string{"qemu-system-aarch64", "umoci"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	testenv.Need(t, "the arm64 test needs "+strings.Join(missing, ", ")+" (test/deps.sh installs qemu-system-arm, qemu-efi-aarch64, umoci)", len(missing) == 0)
	e.grubSetup(t)
	archive := arm64OCIArchive(t)
	e.wwctl(t, "image", "import", "--force", "--platform", "linux/arm64", "oci-archive:"+archive, "busybox-arm64")
	e.wwctl(t, "image", "build", "busybox-arm64")

	// The arm64 wwclient beside the x86_64 one in the site's wwclient overlay.
	bin := filepath.Join(artifacts, "bin", "aarch64", "wwclient")
	build := exec.Command("go", "build", "-o", bin, "./cmd/wwclient")
	build.Dir, build.Env = e.repo, append(os.Environ(), "CGO_ENABLED=0", "GOARCH=arm64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build wwclient for arm64: %v\n%s", err, out)
	}
	copyFile(t, bin, filepath.Join(e.cfg.SiteOverlayDir(), "wwclient/rootfs/warewulf/bin/aarch64/wwclient"), 0o755)

	n := testNode{"arm1", "52:54:00:99:00:35", prefix + "35", "busybox-arm64"}
	err := node.Update(e.cfg.NodesConf(), func(db *node.DB) error {
		db.Nodes[n.name] = &node.Conf{Profiles: node.List{"default"}, ImageName: n.image,
			Kernel:  &node.Kernel{Args: node.Args{"console=ttyAMA0", "loglevel=7"}},
			NetDevs: map[string]*node.NetDev{"default": {Device: "eth0", Hwaddr: n.mac, Ipaddr: n.ip, Netmask: netmask}}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.buildOverlays(t, n.name)

	ns, wwd := e.grubDaemon(t, "arm64", nil)
	vars := filepath.Join(t.TempDir(), "AAVMF_VARS.fd")
	copyFile(t, aavmfVars, vars, 0o644)
	v := startVM(t, ns, n, []string{"qemu-system-aarch64", "-name", n.name,
		"-machine", "virt,accel=tcg", "-cpu", "cortex-a57", "-m", "1024", "-smp", "1",
		"-nodefaults", "-display", "none", "-serial", "stdio", "-monitor", "none",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + aavmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-netdev", "tap,id=net0,ifname=" + ns.tap(t) + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=net0,romfile=,mac=" + n.mac,
	})
	const arm64Boot = 12 * time.Minute
	v.waitFor(t, regexp.MustCompile(`Warewulf: GRUB boots arm1`), arm64Boot)
	v.waitFor(t, regexp.MustCompile(`Linux version \S+-arm64 `), arm64Boot)
	v.bootTimes(t, "arm64-uefi-grub-busybox", arm64Boot)
	v.waitFor(t, regexp.MustCompile(`busybox init: system up on arm1, aarch64`), time.Minute)
	root := e.cfg.ImageRootfs(n.image)
	e2eSaid(t, wwd, `dhcp: boot rule shim-11 for `+n.mac+`: warewulf/shimaa64\.efi`)
	e2eSaid(t, wwd, `tftp: warewulf/shimaa64\.efi for `+regexp.QuoteMeta(n.ip)+` \(image \\"busybox-arm64\\"\) is `+regexp.QuoteMeta(filepath.Join(root, "usr/lib/shim/shimaa64.efi.signed")))
	e2eSaid(t, wwd, `tftp: warewulf/grubaa64\.efi for `+regexp.QuoteMeta(n.ip)+` \(image \\"busybox-arm64\\"\) is `+regexp.QuoteMeta(filepath.Join(root, "usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed")))
	for _, stage := range []string{"grub", "kernel", "image", "kmods", "system"} {
		e2eSaid(t, wwd, `tftp: served.* file="/?warewulf/`+stage+`/`+n.mac+`" peer=`+regexp.QuoteMeta(n.ip))
	}
	e2eSaid(t, wwd, `hwaddr="`+n.mac+`" ip=`+regexp.QuoteMeta(n.ip)+` node=arm1 stage=runtime status=200`)
}
