package wwctl

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containers/storage/pkg/reexec"

	"github.com/warewulf-ng/warewulf/internal/config"
)

func init() {
	// `wwctl image exec` re-executes the binary; in tests that is this one.
	reexec.Init()
}

// imgRun runs wwctl with args against the sandbox conf and returns its
// output and error.
func imgRun(t *testing.T, conf string, args ...string) (string, error) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--config", conf}, args...))
	err := root.Execute()
	return out.String(), err
}

func imgTree(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "cd "+dir+" && find . -printf '%p %M %s\\n' | sort").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestImageCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but the test needs root")
		}
		t.Skip("needs root")
	}
	dir := t.TempDir()
	conf, err := config.WriteSandbox(dir, config.SandboxOptions{Ipaddr: "10.0.0.1", Netmask: "255.255.255.0", Port: 9873})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	for _, d := range []string{"bin", "etc", "boot", "lib/modules/6.1.0-1-amd64"} {
		os.MkdirAll(filepath.Join(src, d), 0o755)
	}
	os.WriteFile(filepath.Join(src, "bin/sh"), []byte("#!shell"), 0o755)
	os.WriteFile(filepath.Join(src, "boot/vmlinuz-6.1.0-1-amd64"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(src, "lib/modules/6.1.0-1-amd64/modules.dep"), nil, 0o644)

	mustRun := func(want string, args ...string) string {
		t.Helper()
		out, err := imgRun(t, conf, args...)
		if err != nil {
			t.Fatalf("wwctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !strings.Contains(out, want) {
			t.Fatalf("wwctl %s: output lacks %q:\n%s", strings.Join(args, " "), want, out)
		}
		return out
	}
	mustRun("imported", "image", "import", src, "base")
	mustRun("built image.img (gz,", "image", "build", "base")
	mustRun("up to date", "image", "build", "--all")
	mustRun("built image.img (zstd,", "image", "build", "--force", "-z", "zstd", "base")
	mustRun("6.1.0-1-amd64", "image", "list")
	mustRun("/boot/vmlinuz-6.1.0-1-amd64", "image", "kernels")
	os.MkdirAll(filepath.Join(dir, "etc", "warewulf"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/warewulf/nodes.conf"), []byte("nodes:\n  n1:\n    image name: base\n"), 0o640)
	mustRun("Nr nodes: 1", "image", "show", "-a", "base")

	// Bad inputs: one-line errors naming the bad value, nothing changed.
	before := imgTree(t, dir)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"image", "import", src, "base"}, `"base" exists: specify --force`},
		{[]string{"image", "import", src, "bad/name"}, `"bad/name"`},
		{[]string{"image", "import", filepath.Join(dir, "missing"), "x"}, "missing"},
		{[]string{"image", "build", "nope"}, `"nope"`},
		{[]string{"image", "build"}, "--all"},
		{[]string{"image", "build", "-z", "lz4", "base"}, `"lz4"`},
		{[]string{"image", "delete", "base"}, "1 node"},
		{[]string{"image", "rename", "base", "../x"}, `"../x"`},
		{[]string{"image", "copy", "nope", "x"}, `"nope"`},
		{[]string{"image", "import", "--platform", "linux", "oci:" + src, "x"}, `"linux"`},
		{[]string{"image", "show", "nope"}, `"nope"`},
	} {
		out, err := imgRun(t, conf, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("wwctl %s: err %v (want one line with %q), out %s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
	if after := imgTree(t, dir); after != before {
		t.Fatalf("a failed command changed the sandbox:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	mustRun("renamed", "image", "rename", "base", "main")
	if data, _ := os.ReadFile(filepath.Join(dir, "etc/warewulf/nodes.conf")); !strings.Contains(string(data), "image name: main") {
		t.Fatalf("rename did not follow in nodes.conf:\n%s", data)
	}
	mustRun("copied", "image", "copy", "main", "spare")
	mustRun("deleted spare", "image", "delete", "spare")
	mustRun("deleted main", "image", "delete", "--force", "main")
	if out := mustRun("IMAGE", "image", "list"); strings.Contains(out, "main") {
		t.Fatalf("deleted image still listed:\n%s", out)
	}
}

// TestImageExecUpstreamFlags: upstream's --bind SRC[:DST[:ro|copy]],
// --build=false and --syncuser on `image exec`; --node is refused.
func TestImageExecUpstreamFlags(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but the test needs root")
		}
		t.Skip("needs root")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but busybox-static is not installed")
		}
		t.Skip("needs busybox-static")
	}
	dir := t.TempDir()
	conf, err := config.WriteSandbox(dir, config.SandboxOptions{Ipaddr: "10.0.0.1", Netmask: "255.255.255.0", Port: 9873})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	for _, d := range []string{"bin", "etc", "tmp"} {
		os.MkdirAll(filepath.Join(src, d), 0o755)
	}
	data, _ := os.ReadFile(bb)
	os.WriteFile(filepath.Join(src, "bin/busybox"), data, 0o755)
	for _, l := range []string{"sh", "cat"} {
		os.Symlink("busybox", filepath.Join(src, "bin", l))
	}
	os.WriteFile(filepath.Join(src, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(src, "etc/group"), []byte("root:x:0:\n"), 0o644)
	if out, err := imgRun(t, conf, "image", "import", src, "bb"); err != nil {
		t.Fatalf("import: %v %s", err, out)
	}
	hostFile := filepath.Join(dir, "hello")
	os.WriteFile(hostFile, []byte("from the controller\n"), 0o644)
	rootfs := filepath.Join(dir, "state", "chroots", "bb", "rootfs")
	out, err := imgRun(t, conf, "image", "exec", "--build=false", "--bind", hostFile+":/etc/copied:copy",
		"--bind", hostFile+":/tmp/bound:ro", "--syncuser", "bb", "--", "/bin/sh", "-c", "cat /etc/copied /tmp/bound")
	if err != nil || strings.Count(out, "from the controller") != 2 {
		t.Fatalf("exec --bind: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "etc/copied")); err == nil {
		t.Error("a copy bind stayed in the image")
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "provision", "images", "bb", "image.img")); err == nil {
		t.Error("--build=false built the image")
	}
	if _, err := imgRun(t, conf, "image", "exec", "--bind", "relative:/x", "bb", "--", "/bin/sh"); err == nil || !strings.Contains(err.Error(), "relative") {
		t.Errorf("a relative bind: %v", err)
	}
	// --node: a read-only view of the image with the node's overlays on it.
	if _, err := imgRun(t, conf, "image", "exec", "--node", "n1", "bb", "--", "/bin/sh"); err == nil || !strings.Contains(err.Error(), "--node n1") {
		t.Errorf("--node of a node that does not exist: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "etc", "warewulf"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/warewulf/nodes.conf"), []byte("nodes:\n  n1:\n    image name: bb\n    system overlay: [view]\n"), 0o640)
	site := filepath.Join(dir, "state", "overlays", "view", "rootfs", "etc")
	os.MkdirAll(site, 0o755)
	os.WriteFile(filepath.Join(site, "viewmark.ww"), []byte("seen by {{.Id}}\n"), 0o644)
	out, err = imgRun(t, conf, "image", "exec", "--node", "n1", "bb", "--", "/bin/sh", "-c", "cat /etc/viewmark; echo x > /etc/new && echo WROTE")
	if err == nil || !strings.Contains(out, "seen by n1") || strings.Contains(out, "WROTE") {
		t.Errorf("--node view: %v\n%s", err, out)
	}
	for _, f := range []string{"etc/viewmark", "etc/new"} {
		if _, err := os.Stat(filepath.Join(rootfs, f)); err == nil {
			t.Errorf("the node view left /%s in the image", f)
		}
	}
}
