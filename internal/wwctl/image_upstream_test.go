package wwctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// imgSandbox is a sandbox whose images are made of the given files
// (image name -> paths in its rootfs), with nodes.conf.
func imgSandbox(t *testing.T, images map[string][]string, nodesConf string) (conf, dir string) {
	t.Helper()
	dir = t.TempDir()
	conf, err := config.WriteSandbox(dir, config.SandboxOptions{Ipaddr: "10.0.0.1", Netmask: "255.255.255.0", Port: 9873})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	for name, files := range images {
		root := cfg.ImageRootfs(name)
		os.MkdirAll(root, 0o755)
		for _, f := range files {
			p := filepath.Join(root, f)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, nil, 0o644)
		}
	}
	os.MkdirAll(filepath.Dir(cfg.NodesConf()), 0o755)
	if err := os.WriteFile(cfg.NodesConf(), []byte(nodesConf), 0o640); err != nil {
		t.Fatal(err)
	}
	return conf, dir
}

// TestImageKernelsUpstream: upstream's image/kernels cases
// (internal/app/wwctl/image/kernels/main_test.go): rescue kernels listed
// with no version, the default never a +debug or rescue kernel, rows by
// path, and the nodes booting each kernel counted.
func TestImageKernelsUpstream(t *testing.T) {
	i1 := []string{
		"/boot/vmlinuz-5.14.0-427.18.1.el9_4.x86_64",
		"/boot/vmlinuz-5.14.0-427.24.1.el9_4.x86_64",
		"/boot/vmlinuz-4.14.0-427.18.1.el8_4.x86_64",
	}
	i2 := []string{
		"/boot/vmlinuz-0-rescue-eb46964329b146e39518c625feab3ea0",
		"/boot/vmlinuz-5.14.0-362.24.1.el9_3.aarch64",
		"/boot/vmlinuz-5.14.0-427.31.1.el9_4.aarch64+debug",
		"/boot/vmlinuz-5.14.0-284.30.1.el9_2.aarch64",
		"/boot/vmlinuz-5.14.0-427.31.1.el9_4.aarch64",
	}
	rows2 := `
image2  /boot/vmlinuz-0-rescue-eb46964329b146e39518c625feab3ea0  --               false    0
image2  /boot/vmlinuz-5.14.0-284.30.1.el9_2.aarch64              5.14.0-284.30.1  false    0
image2  /boot/vmlinuz-5.14.0-362.24.1.el9_3.aarch64              5.14.0-362.24.1  false    0
image2  /boot/vmlinuz-5.14.0-427.31.1.el9_4.aarch64              5.14.0-427.31.1  true     0
image2  /boot/vmlinuz-5.14.0-427.31.1.el9_4.aarch64+debug        5.14.0-427.31.1  false    0`
	head := `
Image   Kernel                                                   Version          Default  Nodes
-----   ------                                                   -------          -------  -----`
	for name, c := range map[string]struct {
		images map[string][]string
		nodes  string
		args   []string
		want   string
	}{
		"default": {nil, "nodes: {}\n", nil, `
Image  Kernel  Version  Default  Nodes
-----  ------  -------  -------  -----`},
		"list": {map[string][]string{"image1": i1, "image2": i2}, "nodes: {}\n", nil, head + `
image1  /boot/vmlinuz-4.14.0-427.18.1.el8_4.x86_64               4.14.0-427.18.1  false    0
image1  /boot/vmlinuz-5.14.0-427.18.1.el9_4.x86_64               5.14.0-427.18.1  false    0
image1  /boot/vmlinuz-5.14.0-427.24.1.el9_4.x86_64               5.14.0-427.24.1  true     0` + rows2},
		"single image": {map[string][]string{"image1": i1, "image2": i2}, "nodes: {}\n", []string{"image2"}, head + rows2},
		// A node by its profile boots the default; one names a kernel by
		// upstream's short version, one by its path.
		"nodes": {map[string][]string{"image1": i1}, `
nodeprofiles:
  default:
    image name: image1
nodes:
  n1:
    profiles: [default]
  n2:
    profiles: [default]
    kernel:
      version: 4.14.0-427.18.1
  n3:
    image name: image1
    kernel:
      version: /boot/vmlinuz-4.14.0-427.18.1.el8_4.x86_64
`, nil, `
Image   Kernel                                      Version          Default  Nodes
-----   ------                                      -------          -------  -----
image1  /boot/vmlinuz-4.14.0-427.18.1.el8_4.x86_64  4.14.0-427.18.1  false    2
image1  /boot/vmlinuz-5.14.0-427.18.1.el9_4.x86_64  5.14.0-427.18.1  false    0
image1  /boot/vmlinuz-5.14.0-427.24.1.el9_4.x86_64  5.14.0-427.24.1  true     1`},
	} {
		t.Run(name, func(t *testing.T) {
			conf, _ := imgSandbox(t, c.images, c.nodes)
			out, err := imgRun(t, conf, append([]string{"image", "kernels"}, c.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if strings.TrimSpace(out) != strings.TrimSpace(c.want) {
				t.Fatalf("got:\n%s\nwant:\n%s", out, strings.TrimSpace(c.want))
			}
		})
	}
}

// TestImageListUpstream: upstream's image/list case (-s) and its other
// columns: -k the default kernel's short version, -c the rootfs's size,
// -l all of them; names given narrow the list.
func TestImageListUpstream(t *testing.T) {
	conf, dir := imgSandbox(t, map[string][]string{"test": nil, "other": {"/boot/vmlinuz-6.1.0-9-amd64", "/boot/vmlinuz-6.1.0-10-amd64+debug"}}, `
nodeprofiles:
  default: {}
nodes:
  n01:
    image name: test
    profiles:
    - default
`)
	cfg, _ := config.Load(conf)
	os.WriteFile(filepath.Join(cfg.ImageRootfs("test"), "f"), []byte("0123456789"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-s", "test"}, `
IMAGE NAME  NODES  SIZE
----------  -----  ----
test        1      0 B`},
		{[]string{"-k"}, `
IMAGE NAME  NODES  KERNEL VERSION
----------  -----  --------------
other       0      6.1.0-9
test        1      --`},
		{[]string{"-c", "test"}, `
IMAGE NAME  NODES  SIZE
----------  -----  ----
test        1      10 B`},
		{[]string{"--compressed", "test"}, `
IMAGE NAME  NODES  SIZE
----------  -----  ----
test        1      0 B`},
	} {
		out, err := imgRun(t, conf, append([]string{"image", "list"}, c.args...)...)
		if err != nil || strings.TrimSpace(out) != strings.TrimSpace(c.want) {
			t.Fatalf("image list %v: %v\n%s\nwant:\n%s", c.args, err, out, strings.TrimSpace(c.want))
		}
	}
	out, err := imgRun(t, conf, "image", "list", "-l", "other")
	if err != nil || !strings.Contains(out, "IMAGE NAME  NODES  KERNEL VERSION  CREATION TIME") || !hasCells(out, "other", "0", "6.1.0-9") {
		t.Fatalf("image list -l: %v\n%s", err, out)
	}
	// The plain list picks the same default kernel (not the +debug one).
	if out, err := imgRun(t, conf, "image", "list"); err != nil || !strings.Contains(out, "6.1.0-9-amd64 ") {
		t.Fatalf("image list: %v\n%s", err, out)
	}
	before := imgTree(t, dir)
	if _, err := imgRun(t, conf, "image", "list", "-s", "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("image list nope: %v", err)
	}
	if imgTree(t, dir) != before {
		t.Fatal("a failed list changed the sandbox")
	}
}

// hasCells reports a line of out starting with the cells (split on runs
// of 2+ spaces).
func hasCells(out string, cells ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := splitCells(l)
		if len(f) >= len(cells) && strings.Join(f[:len(cells)], "\x00") == strings.Join(cells, "\x00") {
			return true
		}
	}
	return false
}

func splitCells(l string) []string {
	var out []string
	for _, c := range strings.Split(l, "  ") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// TestImageShowRenameUpstream: upstream's `image show` prints the rootfs,
// -a its Name/KernelVersion/Rootfs/Nr nodes/Nodes lines; `image rename
// -b` builds the renamed image.
func TestImageShowRenameUpstream(t *testing.T) {
	conf, _ := imgSandbox(t, map[string][]string{"img": {"/bin/sh", "/boot/vmlinuz-6.1.0-9-amd64", "/boot/vmlinuz-6.1.0-9-amd64+debug"}},
		"nodeprofiles:\n  default:\n    image name: img\nnodes:\n  n1:\n    profiles: [default]\n  n2: {}\n")
	cfg, _ := config.Load(conf)
	out, err := imgRun(t, conf, "image", "show", "img")
	if err != nil || out != cfg.ImageRootfs("img")+"\n" {
		t.Fatalf("image show: %v\n%q", err, out)
	}
	out, err = imgRun(t, conf, "image", "show", "-a", "img")
	want := "Name: img\nKernelVersion: 6.1.0-9\nRootfs: " + cfg.ImageRootfs("img") + "\nNr nodes: 1\nNodes: [n1]\n"
	if err != nil || !strings.HasPrefix(out, want) {
		t.Fatalf("image show -a: %v\n%s\nwant it to start with:\n%s", err, out, want)
	}
	if os.Geteuid() != 0 {
		t.Skip("building needs root")
	}
	out, err = imgRun(t, conf, "image", "rename", "-b", "img", "new")
	if err != nil || !strings.Contains(out, "new: built image.img") || !strings.Contains(out, "kernel 6.1.0-9-amd64 ") {
		t.Fatalf("image rename -b: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(cfg.ImageProvisionDir("new"), "image.img")); err != nil {
		t.Fatal(err)
	}
}
