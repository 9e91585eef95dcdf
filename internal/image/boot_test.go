package image

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/archive"
)

// debianKernel returns a Debian kernel (vmlinuz) and the root its package
// was extracted in (lib/modules/VERSION), downloaded once with apt-get into
// a cache outside the repository and never installed.
func debianKernel(t *testing.T) (version, root string) {
	t.Helper()
	requireTool(t, "apt-get", "apt-cache", "dpkg-deb")
	dir := filepath.Join("/var/cache/warewulf-test", "image-kernel")
	root = filepath.Join(dir, "root")
	if ks, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*")); len(ks) > 0 {
		return strings.TrimPrefix(filepath.Base(ks[0]), "vmlinuz-"), root
	}
	os.MkdirAll(dir, 0o755)
	pkg := func() string {
		out, _ := exec.Command("apt-cache", "depends", "--no-recommends", "linux-image-amd64").Output()
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
				return f[1]
			}
		}
		return ""
	}
	p := pkg()
	if p == "" {
		run(t, "", "apt-get", "update", "-qq")
		if p = pkg(); p == "" {
			t.Fatal("apt-cache names no kernel package behind linux-image-amd64")
		}
	}
	run(t, dir, "apt-get", "download", "-qq", p)
	debs, _ := filepath.Glob(filepath.Join(dir, p+"_*.deb"))
	if len(debs) == 0 {
		t.Fatalf("apt-get download %s left no .deb", p)
	}
	tmp := root + ".tmp"
	os.RemoveAll(tmp)
	run(t, "", "dpkg-deb", "-x", debs[0], tmp)
	os.Remove(debs[0])
	if err := os.Rename(tmp, root); err != nil {
		t.Fatal(err)
	}
	ks, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(ks) == 0 {
		t.Fatalf("%s holds no kernel", p)
	}
	return strings.TrimPrefix(filepath.Base(ks[0]), "vmlinuz-"), root
}

// bootCheck is /init of the test image: it checks, as PID 1 of a real
// kernel, what the kernel's initramfs unpacker made of the archives.
const bootCheck = `#!/bin/sh
B=/bin/busybox
fail() { echo "WWTEST-FAIL: $*"; $B poweroff -f; }
$B mkdir -p /proc /sys
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
[ "$($B stat -c %i /usr/lib/data/a)" = "$($B stat -c %i /usr/lib/data/b)" ] || fail "hard link a/b is two files"
[ "$($B stat -c %h /usr/lib/data/a)" = 2 ] || fail "hard link count $($B stat -c %h /usr/lib/data/a)"
[ "$($B cat /usr/lib/data/b)" = "linked content" ] || fail "hard link content: $($B cat /usr/lib/data/b)"
[ "$($B stat -c %i /usr/lib/empty1)" = "$($B stat -c %i /usr/lib/empty2)" ] || fail "empty hard links"
[ -u /usr/bin/passwd ] || fail "setuid lost"
[ -g /usr/bin/wall ] || fail "setgid lost"
[ -k /tmp ] || fail "sticky bit lost"
[ "$($B stat -c %t,%T /dev/console)" = "5,1" ] || fail "console device $($B stat -c %t,%T /dev/console)"
[ -b /dev/sda ] && [ "$($B stat -c %t,%T /dev/sda)" = "8,0" ] || fail "block device"
[ -p /dev/initctl ] || fail "fifo"
[ "$($B stat -c %u:%g /home/user/file)" = "1234:5678" ] || fail "owner $($B stat -c %u:%g /home/user/file)"
[ "$($B readlink /bin/sh)" = busybox ] || fail "symlink"
[ ! -e /var/cache/apt ] && [ ! -e /usr/lib/python/x.pyc ] || fail "excluded files are there"
[ ! -e /boot ] || fail "/boot is there"
[ -f /lib/firmware/fw.bin ] || fail "firmware missing"
V=$($B uname -r)
$B insmod /lib/modules/$V/kernel/drivers/net/ethernet/intel/e1000/e1000.ko || fail "insmod e1000"
[ -d /sys/module/e1000 ] || fail "e1000 not loaded"
echo WWTEST-OK
$B poweroff -f
`

// TestKernelUnpacksBuiltImage boots a Debian kernel under qemu with the
// built image and kmods archives as its initramfs, gzip and zstd, and lets
// /init check hard links, modes, devices, owners, excludes and modules.
func TestKernelUnpacksBuiltImage(t *testing.T) {
	requireRoot(t)
	requireLong(t)
	requireTool(t, "qemu-system-x86_64", "busybox")
	version, kroot := debianKernel(t)
	cfg := sandbox(t)
	src := filepath.Join(t.TempDir(), "root")
	makeRootfs(t, src)
	bb, _ := exec.LookPath("busybox")
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "bin/busybox"), data, 0o755)
	os.WriteFile(filepath.Join(src, "init"), []byte(bootCheck), 0o755)
	kernel, _ := os.ReadFile(filepath.Join(kroot, "boot", "vmlinuz-"+version))
	os.WriteFile(filepath.Join(src, "boot", "vmlinuz-"+version), kernel, 0o644)
	e1000 := "kernel/drivers/net/ethernet/intel/e1000/e1000.ko"
	ko, err := os.ReadFile(filepath.Join(kroot, "lib/modules", version, e1000))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(filepath.Join(src, "lib/modules", version, e1000)), 0o755)
	os.WriteFile(filepath.Join(src, "lib/modules", version, e1000), ko, 0o644)
	if _, err := Import(context.Background(), cfg, src, "boot", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, comp := range []archive.Compression{archive.Gzip, archive.Zstd} {
		t.Run(string(comp), func(t *testing.T) {
			if _, err := Build(context.Background(), cfg, "boot", BuildOptions{Compression: comp}); err != nil {
				t.Fatal(err)
			}
			a, err := BuiltArtifacts(cfg, "boot", version)
			if err != nil {
				t.Fatal(err)
			}
			// The kernel unpacks concatenated archives as one initramfs,
			// as it does with iPXE's several initrds.
			initrd := filepath.Join(t.TempDir(), "initrd")
			var all []byte
			for _, p := range []string{a.Image, a.Kmods} {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, b...)
			}
			os.WriteFile(initrd, all, 0o644)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-machine", "accel=tcg", "-m", "512",
				"-nographic", "-no-reboot", "-kernel", a.Kernel, "-initrd", initrd,
				"-append", "console=ttyS0 rdinit=/init panic=-1 loglevel=3")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			cmd.Wait()
			if !strings.Contains(out.String(), "WWTEST-OK") {
				t.Fatalf("the node did not pass its checks:\n%s", tail(out.String(), 3000))
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
