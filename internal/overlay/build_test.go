package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// buildDB is sampleDB with the default profile trimmed to the overlays the
// checkout has.
func buildDB(t testing.TB, sb *sandbox) *node.DB {
	db := sampleDB(t)
	p := db.Profiles["default"]
	p.SystemOverlay = existingOnly(t, sb.cfg, p.SystemOverlay)
	p.RuntimeOverlay = existingOnly(t, sb.cfg, p.RuntimeOverlay)
	return db
}

func mustBuild(t *testing.T, b *Builder, db *node.DB, names ...string) Stats {
	t.Helper()
	st, err := b.Build(db, names)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// cpioListing lists every entry of a node's image with GNU cpio, part by
// part as the kernel reads them: "MODE UID GID PATH" (symlinks "-> T").
func cpioListing(t *testing.T, parts []string) map[string]string {
	t.Helper()
	needCpio(t)
	out := map[string]string{}
	line := regexp.MustCompile(`^(\S+)\s+\d+\s+(\d+)\s+(\d+)\s+\d+\s+\S+\s+\d+\s+\S+\s+(.*)$`)
	for _, p := range parts {
		cmd := exec.Command("sh", "-c", `gzip -dc "$1" | cpio -t -v --numeric-uid-gid --quiet`, "sh", p)
		data, err := cmd.Output()
		if err != nil {
			t.Fatalf("cpio on %s: %v", p, err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			m := line.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("cannot read cpio line %q", l)
			}
			out[m[4]] = m[1] + " " + m[2] + " " + m[3]
		}
	}
	return out
}

// needCpio: the tests compare with GNU cpio and gzip.
func needCpio(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"cpio", "gzip"} {
		_, err := exec.LookPath(tool)
		testenv.Need(t, tool+" is not installed (test/deps.sh installs it)", err == nil)
	}
}

// TestImageWithGNUCpio: n1's system image, read by GNU cpio, holds the
// files the overlays define with their modes and owners; extracting it
// gives the rendered contents.
func TestImageWithGNUCpio(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := buildDB(t, sb)
	st := mustBuild(t, b, db)
	if st.Built != 6 || st.Failed != 0 {
		t.Fatalf("stats %+v, want 6 built", st)
	}
	parts, err := Parts(sb.cfg, "n1", System)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600 (host keys inside)", p, st.Mode(), err)
		}
	}
	list := cpioListing(t, parts)
	want := map[string]string{
		"etc":          "drwxr-xr-x 0 0",
		"etc/hostname": "-rw-r--r-- 0 0",
		"etc/hosts":    "-rw-r--r-- 0 0",
		"etc/NetworkManager/system-connections/warewulf-eth0.nmconnection": "-rw------- 0 0",
		"etc/systemd/network/20-warewulf-eth0.network":                     "-rw-r--r-- 0 0",
		"etc/sysconfig/network-scripts/ifcfg-ib0":                          "-rw-r--r-- 0 0",
		"etc/network/interfaces.d/warewulf":                                "-rw-r--r-- 0 0",
		"etc/udev/rules.d/70-persistent-net.rules":                         "-rw-r--r-- 0 0",
		"etc/fstab": "-rw-r--r-- 0 0",
	}
	for p, w := range want {
		if list[p] != w {
			t.Errorf("%s: cpio says %q, want %q", p, list[p], w)
		}
	}
	for p := range list {
		if strings.HasSuffix(p, ".ww") {
			t.Errorf("template source %s is in the image", p)
		}
	}
	rparts, err := Parts(sb.cfg, "n1", Runtime)
	if err != nil {
		t.Fatal(err)
	}
	rl := cpioListing(t, rparts)
	for p := range list {
		if strings.HasPrefix(p, "etc/ssh/ssh_host_") || p == "etc/shadow" {
			t.Errorf("system overlay holds %s: secrets go in the runtime overlay only", p)
		}
	}
	for p, w := range map[string]string{"root": "drwx------ 0 0", "root/.ssh": "drwx------ 0 0", "root/.ssh/authorized_keys": "-rw------- 0 0", "etc/shadow": "-rw-r----- 0 42", "etc/passwd": "-rw-r--r-- 0 0",
		"etc/ssh/ssh_host_ed25519_key": "-rw------- 0 0", "etc/ssh/ssh_host_ed25519_key.pub": "-rw-r--r-- 0 0"} {
		if rl[p] != w {
			t.Errorf("runtime %s: cpio says %q, want %q", p, rl[p], w)
		}
	}
	// Extract as the kernel would (all parts into one tree) and compare.
	dir := t.TempDir()
	for _, p := range parts {
		cmd := exec.Command("sh", "-c", `gzip -dc "$1" | cpio -i -d --quiet --no-absolute-filenames`, "sh", p)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cpio -i: %v: %s", err, out)
		}
	}
	host, err := os.ReadFile(filepath.Join(dir, "etc/hostname"))
	if err != nil || string(host) != "n1\n" {
		t.Fatalf("extracted etc/hostname = %q, %v", host, err)
	}
	hosts, _ := os.ReadFile(filepath.Join(dir, "etc/hosts"))
	if !strings.Contains(string(hosts), "10.0.1.3   n3") {
		t.Fatalf("extracted etc/hosts:\n%s", hosts)
	}
}

// TestRebuildOnlyWhatChanged: nothing changed builds nothing; changing one
// node rebuilds that node alone, even when its address is in every node's
// hosts file (that file is rendered once, shared).
func TestRebuildOnlyWhatChanged(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := buildDB(t, sb)
	mustBuild(t, b, db)
	n1Before, _ := Parts(sb.cfg, "n1", System)
	if st := mustBuild(t, b, db); st.Built != 0 || st.Unchanged != 6 || st.Shared != 0 {
		t.Fatalf("unchanged rebuild: %+v", st)
	}
	// A fresh builder (a new wwctl process) sees the same.
	if st := mustBuild(t, NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot}), buildDB(t, sb)); st.Built != 0 {
		t.Fatalf("unchanged rebuild from a new process: %+v", st)
	}
	db2 := buildDB(t, sb)
	db2.Nodes["n2"].NetDevs["default"].Ipaddr = "10.0.1.22"
	st := mustBuild(t, b, db2)
	if st.Built != 2 || st.Unchanged != 4 {
		t.Fatalf("one node changed: %+v, want n2's two images built", st)
	}
	n1After, _ := Parts(sb.cfg, "n1", System)
	if n1Before[len(n1Before)-1] != n1After[len(n1After)-1] {
		t.Fatalf("n1's own archive changed: %v -> %v", n1Before, n1After)
	}
	if strings.Join(n1Before, " ") == strings.Join(n1After, " ") {
		t.Fatal("the shared hosts archive did not change with n2's address")
	}
	list := cpioListing(t, n1After)
	if _, ok := list["etc/hosts"]; !ok {
		t.Fatal("no etc/hosts")
	}
	// An included controller file is an input too.
	os.WriteFile(filepath.Join(sb.hostRoot, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/sh\n"), 0o644)
	st = mustBuild(t, b, db2)
	if st.Built != 3 { // every runtime image merges the controller's passwd
		t.Fatalf("controller passwd changed: %+v", st)
	}
}

// TestBrokenTemplate: the error names overlay, file, line and node, and
// the node keeps its previous image.
func TestBrokenTemplate(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := buildDB(t, sb)
	mustBuild(t, b, db)
	before, _ := Parts(sb.cfg, "n1", System)
	beforeData := readAll(t, before)

	site := filepath.Join(sb.cfg.SiteOverlayDir(), "hostname", "rootfs", "etc")
	writeFiles(t, site, map[string]string{"hostname.ww": "{{ .Id }}\n{{ .NoSuchField }}\n"})
	_, err := b.Build(db, nil)
	var te *TemplateError
	if err == nil || !errors.As(err, &te) {
		t.Fatalf("got %v, want a template error", err)
	}
	msg := err.Error()
	for _, s := range []string{"overlay hostname", "file etc/hostname.ww", "line 2", "node n", "NoSuchField"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q lacks %q", msg, s)
		}
	}
	after, err := Parts(sb.cfg, "n1", System)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(beforeData, readAll(t, after)) {
		t.Fatal("the previous image was not kept")
	}
	// A parse error too.
	writeFiles(t, site, map[string]string{"hostname.ww": "line one\n{{ .Id \n"})
	_, err = b.Build(db, []string{"n1"})
	if err == nil || !strings.Contains(err.Error(), "overlay hostname, file etc/hostname.ww line 3, node n1: unclosed action started at etc/hostname.ww:2") {
		t.Fatalf("parse error: %v", err)
	}
}

func readAll(t *testing.T, parts []string) []byte {
	var all []byte
	for _, p := range parts {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	return all
}

// TestBuildNodeConcurrent: warewulfd may ask for the same node from many
// requests at once; it is built once and every caller gets it.
func TestBuildNodeConcurrent(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	db := buildDB(t, sb)
	// BuildNode uses the controller's real files for include: use a
	// profile without them.
	for _, p := range db.Profiles {
		p.SystemOverlay = node.List{"hostname", "hosts", "issue", "networkd"}
		p.RuntimeOverlay = node.List{"hosts"}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- BuildNode(sb.cfg, db, "n1", System)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	parts, err := Parts(sb.cfg, "n1", System)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 { // shared hosts, n1's own files
		t.Fatalf("parts %v", parts)
	}
	if _, err := Parts(sb.cfg, "n2", System); err == nil {
		t.Fatal("n2 was never built but has parts")
	}
	if err := BuildNode(sb.cfg, db, "nope", System); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown node: %v", err)
	}
}

// TestDeterministic: the same inputs give the same bytes.
func TestDeterministic(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	db := buildDB(t, sb)
	mustBuild(t, NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot}), db)
	first := readAll(t, mustParts(t, sb, "n1"))
	os.RemoveAll(filepath.Join(sb.cfg.ProvisionDir(), "overlays"))
	mustBuild(t, NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot}), db)
	if !bytes.Equal(first, readAll(t, mustParts(t, sb, "n1"))) {
		t.Fatal("two builds of the same inputs differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	zr.Close()
}

func mustParts(t *testing.T, sb *sandbox, n string) []string {
	p, err := Parts(sb.cfg, n, System)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRebuildReplacesCopy: the copy Parts made of a node's archive goes
// away when the node is rebuilt (a server holding it notices), and Ranges
// points into the pack.
func TestRebuildReplacesCopy(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := buildDB(t, sb)
	mustBuild(t, b, db)
	before, err := b.Parts("n1", System)
	if err != nil {
		t.Fatal(err)
	}
	own := before[len(before)-1]
	if !strings.HasPrefix(own, sb.cfg.OverlayProvisionDir("n1")) {
		t.Fatalf("n1's archive %s is not under %s", own, sb.cfg.OverlayProvisionDir("n1"))
	}
	ranges, err := b.Ranges("n1", System)
	if err != nil {
		t.Fatal(err)
	}
	r := ranges[len(ranges)-1]
	f, _ := os.Open(r.Path)
	buf := make([]byte, r.Length)
	f.ReadAt(buf, r.Offset)
	f.Close()
	if data, _ := os.ReadFile(own); !bytes.Equal(data, buf) {
		t.Fatal("the copy differs from the pack's range")
	}
	db = buildDB(t, sb)
	db.Nodes["n1"].Tags["dns"] = "10.9.9.9"
	if st := mustBuild(t, b, db, "n1"); st.Built != 2 { // its record changed: both images
		t.Fatalf("%+v", st)
	}
	if _, err := os.Stat(own); err == nil {
		t.Fatal("the old copy is still there")
	}
	after, err := b.Parts("n1", System)
	if err != nil || after[len(after)-1] == own {
		t.Fatalf("after rebuild: %v %v", after, err)
	}
	needCpio(t)
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", `gzip -dc "$1" | cpio -i -d --quiet`, "sh", after[len(after)-1])
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "etc/resolv.conf")); !strings.Contains(string(data), "nameserver 10.9.9.9") {
		t.Fatalf("resolv.conf after rebuild: %s", data)
	}
}

// A build killed while writing a pack, an index or a shared archive left
// its temporary; the next build removes it (it holds the build lock, so no
// other build is writing one).
func TestBuildSweepsTemporaries(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := buildDB(t, sb)
	mustBuild(t, b, db)
	dir := filepath.Join(sb.cfg.ProvisionDir(), "overlays")
	left := []string{
		filepath.Join(dir, ".system-18a0b1c2d3e4f5.pack.tmp-123456"),
		filepath.Join(dir, ".runtime-18a0b1c2d3e4f5.pack.tmp-654321"),
		filepath.Join(dir, ".system.index.tmp-42"),
		filepath.Join(sb.cfg.OverlaySharedDir(), ".static-abc.img.gz.tmp-7"),
	}
	for _, p := range left {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustBuild(t, NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot}), db, "n1")
	for _, p := range left {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there after a build", p)
		}
	}
}

const fullDiskEnv = "WWOVERLAY_FULLDISK" // CONFIG:NODESCONF:HOSTROOT

// fullDiskChild builds every overlay with files limited to 1 KiB
// (RLIMIT_FSIZE, as a full disk: writes fail) and prints the summary.
func fullDiskChild(spec string) int {
	f := strings.Split(spec, ":")
	cfg, err := config.Load(f[0])
	if err != nil {
		fmt.Println(err)
		return 1
	}
	db, err := node.Load(f[1])
	if err != nil {
		fmt.Println(err)
		return 1
	}
	signal.Ignore(syscall.SIGXFSZ) // a write past the limit fails with EFBIG instead
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 1024, Max: 1024}); err != nil {
		fmt.Println(err)
		return 1
	}
	st, err := NewBuilder(cfg, Options{HostRoot: f[2]}).Build(db, nil)
	fmt.Printf("built=%d failed=%d err=%v\n", st.Built, st.Failed, err)
	return 0
}

// A build whose pack or index cannot be written (a full disk) reports
// every node image as failed, not built, and the previous images stay.
func TestBuildFullDiskCounts(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	db := buildDB(t, sb)
	mustBuild(t, NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot}), db)
	before, err := Parts(sb.cfg, "n1", System)
	if err != nil {
		t.Fatal(err)
	}
	db.Profiles["default"].ClusterName = "changed" // every image must be rebuilt
	data, err := db.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	nodesConf := filepath.Join(sb.dir, "nodes-changed.conf")
	if err := os.WriteFile(nodesConf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fullDiskEnv+"="+sb.cfg.File()+":"+nodesConf+":"+sb.hostRoot)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	line := strings.TrimSpace(string(out))
	t.Log(line)
	if !strings.HasPrefix(line, "built=0 failed=") || strings.HasPrefix(line, "built=0 failed=0 ") || !strings.Contains(line, "file too large") {
		t.Errorf("a build that saved nothing reports: %s", line)
	}
	// n1 keeps its whole previous image: its own archive and the shared
	// ones it was built with (the set's new cluster archive, small enough
	// to fit, is not part of it).
	after, err := Parts(sb.cfg, "n1", System)
	if err != nil || strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("the previous image of n1 changed: %v %v (was %v)", after, err, before)
	}
}

// TestTwoDevicesOneInterface: two network devices that name one interface
// do not fail the node (upstream loads and builds such a nodes.conf); of
// the files written per interface the later device's is kept.
func TestTwoDevicesOneInterface(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	db := buildDB(t, sb)
	n1 := db.Nodes["n1"]
	n1.NetDevs["default"].Device = "eth0"
	n1.NetDevs["zalias"] = &node.NetDev{Device: "eth0", Ipaddr: "10.0.2.1", Netmask: "255.255.255.0"}
	mustBuild(t, NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot}), db, "n1")
	got := readNodeFile(t, sb, "n1", "etc/sysconfig/network-scripts/ifcfg-eth0")
	if !strings.Contains(got, "IPADDR=10.0.2.1") || strings.Contains(got, "10.0.1.1") {
		t.Errorf("ifcfg-eth0 is not the later device's:\n%s", got)
	}
}
