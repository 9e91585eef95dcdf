package e2e

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// cacheDir keeps downloads and debootstrap output between runs, outside
// the repository, so CI does not download them every time.
var cacheDir = envOr("WW_TEST_CACHE", "/var/cache/warewulf-test/e2e")

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// nodeModules are the drivers a qemu node needs (virtio and e1000 NICs, the
// KCS interface to its BMC, bonds and VLANs for TestBondVLANDebian); the
// test images carry only these and their dependencies, which keeps the
// kernel-modules initrd small under TCG.
var nodeModules = []string{"virtio_pci", "virtio_net", "e1000", "af_packet", "ipmi_si", "ipmi_devintf", "bonding", "8021q"}

// debianKernel returns a Debian kernel's version and the directory its
// .deb is extracted in (boot/vmlinuz-VERSION, lib/modules/VERSION). The
// package is downloaded with apt-get, extracted with dpkg-deb, never
// installed.
func debianKernel(t testing.TB) (version, root string) {
	t.Helper()
	dir := filepath.Join(cacheDir, "kernel")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "linux-image-*.deb"))
	if len(debs) == 0 {
		// linux-image-amd64 is a metapackage: fetch what it depends on.
		pkg := kernelPackage(t)
		if pkg == "" {
			run(t, nil, "apt-get", "update", "-qq") // a fresh machine's lists may be empty
			pkg = kernelPackage(t)
		}
		if pkg == "" {
			t.Fatal("apt-cache depends linux-image-amd64 names no kernel package (run apt-get update)")
		}
		cmd := []string{"sh", "-c", "cd " + dir + " && apt-get download " + pkg}
		run(t, nil, cmd...)
		debs, _ = filepath.Glob(filepath.Join(dir, "linux-image-*.deb"))
		if len(debs) == 0 {
			t.Fatalf("apt-get download %s left no .deb in %s", pkg, dir)
		}
	}
	sort.Strings(debs)
	deb := debs[len(debs)-1]
	root = strings.TrimSuffix(deb, ".deb")
	if _, err := os.Stat(filepath.Join(root, "lib/modules")); err != nil {
		tmp := root + ".tmp"
		os.RemoveAll(tmp)
		run(t, nil, "dpkg-deb", "-x", deb, tmp)
		// The package's postinst makes modules.dep; nothing runs it here.
		vers, _ := filepath.Glob(filepath.Join(tmp, "lib/modules/*"))
		for _, v := range vers {
			run(t, nil, "depmod", "-b", tmp, filepath.Base(v))
		}
		if err := os.Rename(tmp, root); err != nil {
			t.Fatal(err)
		}
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(root, "boot/vmlinuz-*"))
	if len(vmlinuz) != 1 {
		t.Fatalf("%s: want one boot/vmlinuz-*, found %v", root, vmlinuz)
	}
	return strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-"), root
}

// kernelPackage is the kernel package linux-image-amd64 depends on.
func kernelPackage(t testing.TB) string {
	out, _ := runErr(nil, "apt-cache", "depends", "linux-image-amd64")
	for _, l := range lines(out) {
		if strings.HasPrefix(l, "Depends: linux-image-") {
			return strings.TrimPrefix(l, "Depends: ")
		}
	}
	return ""
}

// installKernel copies the kernel and the modules nodeModules and extra
// need (with their dependencies) into an image root, and runs depmod there.
func installKernel(t testing.TB, imageRoot, version, kroot string, extra ...string) {
	t.Helper()
	src := filepath.Join(kroot, "lib/modules", version)
	dst := filepath.Join(imageRoot, "lib/modules", version)
	copyFile(t, filepath.Join(kroot, "boot/vmlinuz-"+version), filepath.Join(imageRoot, "boot/vmlinuz-"+version), 0o644)
	deps := moduleDeps(t, filepath.Join(src, "modules.dep"))
	want := map[string]bool{}
	var add func(string)
	add = func(rel string) {
		if want[rel] {
			return
		}
		want[rel] = true
		for _, d := range deps[rel] {
			add(d)
		}
	}
	for rel := range deps {
		base := strings.SplitN(filepath.Base(rel), ".ko", 2)[0]
		for _, m := range append(nodeModules[:len(nodeModules):len(nodeModules)], extra...) {
			if base == m || base == strings.ReplaceAll(m, "_", "-") {
				add(rel)
			}
		}
	}
	for rel := range want {
		copyFile(t, filepath.Join(src, rel), filepath.Join(dst, rel), 0o644)
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if _, err := os.Stat(filepath.Join(src, f)); err == nil {
			copyFile(t, filepath.Join(src, f), filepath.Join(dst, f), 0o644)
		}
	}
	run(t, nil, "depmod", "-b", imageRoot, version)
}

// moduleDeps reads modules.dep: module -> the modules it needs.
func moduleDeps(t testing.TB, file string) map[string][]string {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deps := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if ok {
			deps[mod] = strings.Fields(rest)
		}
	}
	return deps
}

func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, name, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// busyboxRoot makes the smallest useful node image: busybox-static with
// every applet linked, an inittab, a Debian kernel and its NIC modules.
func busyboxRoot(t testing.TB, dir string) {
	t.Helper()
	version, kroot := debianKernel(t)
	bb := "/bin/busybox"
	copyFile(t, bb, filepath.Join(dir, "bin/busybox"), 0o755)
	for _, applet := range lines(run(t, nil, bb, "--list-full")) {
		link := filepath.Join(dir, applet)
		if applet == "bin/busybox" {
			continue
		}
		os.MkdirAll(filepath.Dir(link), 0o755)
		rel, _ := filepath.Rel(filepath.Dir(link), filepath.Join(dir, "bin/busybox"))
		if err := os.Symlink(rel, link); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "root", "etc/init.d", "var/log"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	run(t, nil, "mknod", "-m", "600", filepath.Join(dir, "dev/console"), "c", "5", "1")
	run(t, nil, "mknod", "-m", "666", filepath.Join(dir, "dev/null"), "c", "1", "3")
	writeFile(t, filepath.Join(dir, "etc/inittab"), `::sysinit:/bin/echo "busybox init: system up on $(hostname)"
ttyS0::askfirst:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
`, 0o644)
	writeFile(t, filepath.Join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n", 0o644)
	writeFile(t, filepath.Join(dir, "etc/group"), "root:x:0:\n", 0o644)
	writeFile(t, filepath.Join(dir, "etc/shadow"), "root::19000:0:99999:7:::\n", 0o600)
	installKernel(t, dir, version, kroot)
}

// debianOCIArchive returns an OCI archive of a Debian bookworm image with
// systemd, made with debootstrap from the configured apt mirror and
// cached: the image is imported the way a site imports any OCI image.
func debianOCIArchive(t testing.TB) string {
	t.Helper()
	version, kroot := debianKernel(t)
	// The module list is part of the name: a new one builds a new archive.
	sum := sha256.Sum256([]byte(strings.Join(nodeModules, ",")))
	archive := filepath.Join(cacheDir, fmt.Sprintf("bookworm-%s-%x.oci.tar", version, sum[:4]))
	if _, err := os.Stat(archive); err == nil {
		return archive
	}
	base := filepath.Join(cacheDir, "bookworm-debootstrap")
	if _, err := os.Stat(filepath.Join(base, "lib/systemd/systemd")); err != nil {
		tmp := base + ".tmp"
		os.RemoveAll(tmp)
		run(t, nil, "debootstrap", "--variant=minbase",
			"--include=systemd-sysv,udev,kmod,iproute2,procps,ifupdown",
			"bookworm", tmp, aptMirror(t))
		if err := os.Rename(tmp, base); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	root := filepath.Join(work, "rootfs")
	run(t, nil, "cp", "-a", base, root)
	for _, d := range []string{"usr/share/doc", "usr/share/man", "usr/share/locale", "var/cache/apt", "var/lib/apt/lists"} {
		os.RemoveAll(filepath.Join(root, d))
	}
	installKernel(t, root, version, kroot)
	// Log in on the serial console without a password (a test image).
	run(t, nil, "chroot", root, "passwd", "-d", "root")
	writeFile(t, filepath.Join(root, "etc/fstab"), "# stateless node: nothing to mount\n", 0o644)

	layout := filepath.Join(work, "layout")
	bundle := filepath.Join(work, "bundle")
	run(t, nil, "umoci", "init", "--layout", layout)
	run(t, nil, "umoci", "new", "--image", layout+":bookworm")
	run(t, nil, "umoci", "unpack", "--image", layout+":bookworm", bundle)
	run(t, nil, "sh", "-c", fmt.Sprintf("cp -a %s/. %s/rootfs/", root, bundle))
	run(t, nil, "umoci", "repack", "--image", layout+":bookworm", bundle)
	run(t, nil, "umoci", "config", "--image", layout+":bookworm", "--config.cmd", "/sbin/init")
	tmp := archive + ".tmp"
	run(t, nil, "tar", "-C", layout, "-cf", tmp, ".")
	if err := os.Rename(tmp, archive); err != nil {
		t.Fatal(err)
	}
	return archive
}

var reMirror = regexp.MustCompile(`^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(https?://\S+)`)

// aptMirror is the Debian mirror apt is configured with.
func aptMirror(t testing.TB) string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append([]string{"/etc/apt/sources.list"}, files...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range lines(string(data)) {
			if m := reMirror.FindStringSubmatch(l); m != nil && !strings.Contains(m[1], "security") {
				return m[1]
			}
		}
	}
	t.Fatal("no Debian mirror in /etc/apt/sources.list*")
	return ""
}
