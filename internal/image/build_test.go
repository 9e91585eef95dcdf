package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warewulf-ng/warewulf/internal/archive"
)

// makeRootfs writes a small root filesystem with every kind of file a
// build must carry: owners, setuid, hard links (one of them excluded),
// empty hard links, symlinks, devices, a fifo, an excludes file, kernels
// in /boot and /lib/modules, modules and firmware.
func makeRootfs(t testing.TB, root string) {
	t.Helper()
	mk := func(rel string, perm os.FileMode, data string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), perm); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(p, uint32(perm)); err != nil { // os.Chmod drops 0o7000
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 3<<20)
	rand.Read(big[:1<<20]) // part incompressible, part zeros
	mk("bin/busybox", 0o755, string(big))
	must(os.Symlink("busybox", filepath.Join(root, "bin/sh")))
	must(os.Symlink("/bin/busybox", filepath.Join(root, "bin/ls")))
	must(os.Symlink("../nowhere", filepath.Join(root, "bin/dangling")))
	mk("usr/bin/passwd", 0o4755, "#!/bin/sh\necho setuid\n")
	mk("usr/bin/wall", 0o2755, "setgid\n")
	must(os.MkdirAll(filepath.Join(root, "tmp"), 0o755))
	must(unix.Chmod(filepath.Join(root, "tmp"), 0o1777))
	mk("etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n")
	must(unix.Setxattr(filepath.Join(root, "etc/passwd"), "user.ww", []byte("hello"), 0))
	mk("etc/shadow", 0o640, "root:*:19000::::::\n")
	must(os.Chown(filepath.Join(root, "etc/shadow"), 0, 42))
	mk("home/user/file", 0o600, "owned by someone else\n")
	must(os.Chown(filepath.Join(root, "home/user/file"), 1234, 5678))
	must(os.Chown(filepath.Join(root, "home/user"), 1234, 5678))
	// Hard links: three names, one of them excluded; an empty pair.
	mk("usr/lib/data/a", 0o644, "linked content\n")
	must(os.Link(filepath.Join(root, "usr/lib/data/a"), filepath.Join(root, "usr/lib/data/b")))
	mk("var/cache/apt/placeholder", 0o644, "")
	must(os.Link(filepath.Join(root, "usr/lib/data/a"), filepath.Join(root, "var/cache/apt/c")))
	mk("usr/lib/empty1", 0o644, "")
	must(os.Link(filepath.Join(root, "usr/lib/empty1"), filepath.Join(root, "usr/lib/empty2")))
	must(os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	must(unix.Mknod(filepath.Join(root, "dev/console"), unix.S_IFCHR|0o600, int(unix.Mkdev(5, 1))))
	must(unix.Mknod(filepath.Join(root, "dev/sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
	must(unix.Mknod(filepath.Join(root, "dev/initctl"), unix.S_IFIFO|0o600, 0))
	mk("etc/warewulf/excludes", 0o644, "# not shipped\n/var/cache/apt\n*.pyc\n")
	mk("usr/lib/python/x.pyc", 0o644, "bytecode")
	mk("usr/lib/python/x.py", 0o644, "code")
	mk("boot/vmlinuz-6.1.0-9-amd64", 0o644, "old kernel")
	mk("boot/vmlinuz-6.1.0-10-amd64", 0o644, "new kernel")
	mk("boot/config-6.1.0-10-amd64", 0o644, "config")
	mk("lib/modules/6.1.0-10-amd64/kernel/net/e1000.ko", 0o644, "module 10")
	mk("lib/modules/6.1.0-10-amd64/modules.dep", 0o644, "dep")
	mk("lib/modules/6.1.0-9-amd64/kernel/net/e1000.ko", 0o644, "module 9")
	mk("lib/modules/5.0-orphan/kernel/x.ko", 0o644, "no kernel for me")
	mk("lib/modules/6.0.0-rocky/vmlinuz", 0o755, "rocky kernel") // the Red Hat layout
	mk("lib/modules/6.0.0-rocky/kernel/y.ko", 0o644, "module rocky")
	mk("lib/firmware/fw.bin", 0o644, "firmware")
}

func TestBuildExtractsWithGNUCpio(t *testing.T) {
	requireRoot(t)
	requireTool(t, "cpio", "zstd")
	cfg := sandbox(t)
	src := filepath.Join(t.TempDir(), "root")
	makeRootfs(t, src)
	if _, err := Import(context.Background(), cfg, src, "test", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, snapshot(t, src, nil, true), snapshot(t, cfg.ImageRootfs("test"), nil, true))
	if x := xattrOf(t, filepath.Join(cfg.ImageRootfs("test"), "etc/passwd")); x != "hello" {
		t.Fatalf("the user.ww xattr was not copied: %q", x)
	}

	for _, comp := range []archive.Compression{archive.Gzip, archive.Zstd} {
		t.Run(string(comp), func(t *testing.T) {
			r, err := Build(context.Background(), cfg, "test", BuildOptions{Compression: comp})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Rebuilt {
				t.Fatal("first build with this compression was skipped")
			}
			a, err := BuiltArtifacts(cfg, "test", "")
			if err != nil {
				t.Fatal(err)
			}
			if a.KernelVersion != "6.1.0-10-amd64" {
				t.Fatalf("default kernel %q, want the newest 6.1.0-10-amd64", a.KernelVersion)
			}
			if k, _ := os.ReadFile(a.Kernel); string(k) != "new kernel" {
				t.Fatalf("kernel file holds %q", k)
			}
			out := t.TempDir()
			extract(t, a.Image, out)
			extract(t, a.Kmods, out)
			rootfs := cfg.ImageRootfs("test")
			want := snapshot(t, rootfs, func(rel string) bool {
				return rel == "boot" || rel == "var/cache/apt" || strings.HasSuffix(rel, ".pyc") ||
					rel == "lib/modules/6.1.0-9-amd64" || rel == "lib/modules/6.0.0-rocky"
			}, true)
			if want["usr/bin/passwd"].Perm&fs.ModeSetuid == 0 || want["tmp"].Perm&fs.ModeSticky == 0 || want["usr/lib/data/b"].LinkedTo != "usr/lib/data/a" {
				t.Fatal("the test rootfs lacks its setuid file, sticky dir or hard link")
			}
			compareTrees(t, want, snapshot(t, out, nil, true))

			// The older kernel gets its own modules.
			old, err := BuiltArtifacts(cfg, "test", "6.1.0-9-amd64")
			if err != nil {
				t.Fatal(err)
			}
			out9 := t.TempDir()
			extract(t, old.Kmods, out9)
			if b, err := os.ReadFile(filepath.Join(out9, "lib/modules/6.1.0-9-amd64/kernel/net/e1000.ko")); err != nil || string(b) != "module 9" {
				t.Fatalf("kmods of 6.1.0-9: %q %v", b, err)
			}
			rocky, err := BuiltArtifacts(cfg, "test", "6.0.0-rocky")
			if err != nil {
				t.Fatal(err)
			}
			outR := t.TempDir()
			extract(t, rocky.Kmods, outR)
			if k, _ := os.ReadFile(rocky.Kernel); string(k) != "rocky kernel" {
				t.Fatalf("kernel from /lib/modules: %q", k)
			}
			if _, err := os.Stat(filepath.Join(outR, "lib/modules/6.0.0-rocky/vmlinuz")); !os.IsNotExist(err) {
				t.Fatal("the kmods archive carries the kernel again")
			}
			if b, _ := os.ReadFile(filepath.Join(outR, "lib/modules/6.0.0-rocky/kernel/y.ko")); string(b) != "module rocky" {
				t.Fatal("the kmods archive lacks the rocky module")
			}
			if _, err := BuiltArtifacts(cfg, "test", "9.9"); err == nil || !strings.Contains(err.Error(), `"9.9"`) {
				t.Fatalf("unknown kernel version: %v", err)
			}
		})
	}
}

func extract(t *testing.T, archivePath, dir string) {
	t.Helper()
	head := make([]byte, 4)
	if f, err := os.Open(archivePath); err == nil {
		f.Read(head)
		f.Close()
	}
	dec := "gzip -dc"
	if bytes.Equal(head, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		dec = "zstd -dc"
	}
	cmd := exec.Command("sh", "-c", dec+" \"$1\" | cpio -idmu --quiet --no-absolute-filenames", "sh", archivePath)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("extracting %s: %v\n%s", archivePath, err, out)
	}
}

func TestBuildDeterministicAndIncremental(t *testing.T) {
	requireRoot(t)
	cfg := sandbox(t)
	src := filepath.Join(t.TempDir(), "root")
	makeRootfs(t, src)
	ctx := context.Background()
	if _, err := Import(ctx, cfg, src, "a", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Copy(cfg, "a", "b"); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		a, err := BuiltArtifacts(cfg, name, "")
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(a.Image)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, n := range []string{"a", "b"} {
		if _, err := Build(ctx, cfg, n, BuildOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	first := read("a")
	if !bytes.Equal(first, read("b")) {
		t.Fatal("a copy of the image built into a different archive")
	}
	r, err := Build(ctx, cfg, "a", BuildOptions{})
	if err != nil || r.Rebuilt {
		t.Fatalf("unchanged image rebuilt (%v, %v)", r, err)
	}
	if stale, _ := Stale(cfg, "a"); stale {
		t.Fatal("unchanged image reported stale")
	}
	if r, err = Build(ctx, cfg, "a", BuildOptions{Force: true}); err != nil || !r.Rebuilt {
		t.Fatalf("--force did not rebuild (%v)", err)
	}
	if !bytes.Equal(first, read("a")) {
		t.Fatal("rebuilding the same rootfs changed the archive")
	}
	// A change of owner only (no new mtime) must be seen.
	if err := os.Chown(filepath.Join(cfg.ImageRootfs("a"), "etc/passwd"), 7, 7); err != nil {
		t.Fatal(err)
	}
	if stale, _ := Stale(cfg, "a"); !stale {
		t.Fatal("chown inside the image not seen as a change")
	}
	if r, err = Build(ctx, cfg, "a", BuildOptions{}); err != nil || !r.Rebuilt {
		t.Fatalf("changed image not rebuilt (%v)", err)
	}
	if bytes.Equal(first, read("a")) {
		t.Fatal("archive unchanged after chown")
	}
	// Switching compression rebuilds, under the same file name.
	if r, err = Build(ctx, cfg, "a", BuildOptions{Compression: archive.Zstd}); err != nil || !r.Rebuilt {
		t.Fatalf("new compression not rebuilt (%v)", err)
	}
	if a, _ := BuiltArtifacts(cfg, "a", ""); a.Compression != archive.Zstd || !bytes.HasPrefix(read("a"), []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("not a zstd archive: %+v", a)
	}
}

func TestStoreCommands(t *testing.T) {
	requireRoot(t)
	cfg := sandbox(t)
	src := filepath.Join(t.TempDir(), "root")
	makeRootfs(t, src)
	ctx := context.Background()
	if _, err := Import(ctx, cfg, src, "one", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, cfg, src, "one", ImportOptions{}); err == nil {
		t.Fatal("import over an existing image without --force succeeded")
	}
	for _, bad := range []string{"", ".hidden", "a/b", "../x", "x y"} {
		if _, err := Import(ctx, cfg, src, bad, ImportOptions{}); err == nil || !strings.Contains(err.Error(), "invalid") {
			t.Fatalf("name %q: %v", bad, err)
		}
	}
	if _, err := Import(ctx, cfg, "/nonexistent/dir", "two", ImportOptions{}); err == nil || Exists(cfg, "two") {
		t.Fatalf("import of a missing source: %v", err)
	}
	if _, err := Import(ctx, cfg, filepath.Dir(cfg.ImageStoreDir()), "two", ImportOptions{}); err == nil || !strings.Contains(err.Error(), "image store") {
		t.Fatalf("import of a parent of the store: %v", err)
	}
	if _, err := Import(ctx, cfg, "ftp:thing", "two", ImportOptions{}); err == nil || !strings.Contains(err.Error(), `"ftp:thing"`) {
		t.Fatalf("unknown transport: %v", err)
	}
	os.MkdirAll(filepath.Dir(cfg.NodesConf()), 0o755)
	if err := os.WriteFile(cfg.NodesConf(), []byte("nodeprofiles:\n  default:\n    image name: one\nnodes:\n  n1:\n    profiles: [default]\n  n2:\n    image name: one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(ctx, cfg, "one", BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Rename(cfg, "one", "uno"); err != nil {
		t.Fatal(err)
	}
	nodes, profiles, n, err := Users(cfg, "uno")
	if err != nil || n != 2 || len(nodes) != 1 || len(profiles) != 1 {
		t.Fatalf("after rename: nodes %v profiles %v booting %d err %v", nodes, profiles, n, err)
	}
	if _, err := BuiltArtifacts(cfg, "uno", ""); err != nil {
		t.Fatalf("built artifacts did not follow the rename: %v", err)
	}
	if err := Delete(cfg, "uno", false); err == nil || !strings.Contains(err.Error(), "2 node") {
		t.Fatalf("delete of a used image: %v", err)
	}
	if err := Copy(cfg, "uno", "dos"); err != nil {
		t.Fatal(err)
	}
	if names, _ := List(cfg); strings.Join(names, ",") != "dos,uno" {
		t.Fatalf("list: %v", names)
	}
	if err := Delete(cfg, "uno", true); err != nil {
		t.Fatal(err)
	}
	if Exists(cfg, "uno") {
		t.Fatal("deleted image still exists")
	}
	if _, err := os.Stat(cfg.ImageProvisionDir("uno")); !os.IsNotExist(err) {
		t.Fatal("deleted image's artifacts remain")
	}
	// --force replaces atomically and keeps nothing of the old image.
	if err := os.WriteFile(filepath.Join(cfg.ImageRootfs("dos"), "marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, cfg, src, "dos", ImportOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.ImageRootfs("dos"), "marker")); !os.IsNotExist(err) {
		t.Fatal("forced import kept a file of the old image")
	}
	ents, _ := os.ReadDir(cfg.ImageStoreDir())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("temporary %s left in the store", e.Name())
		}
	}
}

func TestImportTarball(t *testing.T) {
	requireRoot(t)
	requireTool(t, "tar")
	cfg := sandbox(t)
	src := filepath.Join(t.TempDir(), "root")
	makeRootfs(t, src)
	for _, c := range []struct{ name, flag string }{{"plain.tar", ""}, {"rootfs.tar.gz", "-z"}, {"rootfs.tar.zst", "--zstd"}} {
		t.Run(c.name, func(t *testing.T) {
			if c.flag == "--zstd" {
				requireTool(t, "zstd")
			}
			tarball := filepath.Join(t.TempDir(), c.name)
			args := []string{"-C", src, "--numeric-owner", "-cf", tarball}
			if c.flag != "" {
				args = append(args, c.flag)
			}
			run(t, "", "tar", append(args, ".")...)
			name := strings.ReplaceAll(c.name, ".", "-")
			m, err := Import(context.Background(), cfg, tarball, name, ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if m.Source != "tar:"+tarball || time.Since(m.Imported) > time.Minute {
				t.Fatalf("metadata %+v", m)
			}
			compareTrees(t, snapshot(t, src, nil, true), snapshot(t, cfg.ImageRootfs(name), nil, true))
		})
	}
	// A broken tarball leaves nothing behind.
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	os.WriteFile(bad, []byte("\x1f\x8b\x08\x00garbage"), 0o644)
	if _, err := Import(context.Background(), cfg, bad, "bad", ImportOptions{}); err == nil || Exists(cfg, "bad") {
		t.Fatalf("broken tarball: %v", err)
	}
}

func TestBuildSkipsMountedProc(t *testing.T) {
	requireRoot(t)
	requireTool(t, "cpio")
	cfg := sandbox(t)
	src := filepath.Join(t.TempDir(), "root")
	makeRootfs(t, src)
	ctx := context.Background()
	if _, err := Import(ctx, cfg, src, "p", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	proc := filepath.Join(cfg.ImageRootfs("p"), "proc")
	os.Mkdir(proc, 0o555)
	if err := unix.Mount("proc", proc, "proc", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(proc, unix.MNT_DETACH) })
	if _, err := Build(ctx, cfg, "p", BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _ := BuiltArtifacts(cfg, "p", "")
	out := t.TempDir()
	extract(t, a.Image, out)
	if st, err := os.Stat(filepath.Join(out, "proc")); err != nil || !st.IsDir() {
		t.Fatalf("the /proc mount point is missing: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(out, "proc")); len(ents) != 0 {
		t.Fatalf("the kernel's /proc went into the image: %d entries", len(ents))
	}
}
