package wwctl_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// wwctlBin is a wwctl built once for these tests: they run it as a user
// would, as separate processes, so locking and exit codes are real.
var wwctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wwctl-test-")
	if err != nil {
		panic(err)
	}
	wwctlBin = filepath.Join(dir, "wwctl")
	build := exec.Command("go", "build", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper",
		"-o", wwctlBin, "../../cmd/wwctl")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building wwctl:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sandbox is a directory with a warewulf.conf and no nodes.conf yet.
type sandbox struct {
	t    testing.TB
	dir  string
	conf string
}

func newSandbox(t testing.TB) *sandbox {
	dir := t.TempDir()
	conf := filepath.Join(dir, "warewulf.conf")
	if err := os.WriteFile(conf, []byte("ipaddr: 10.10.255.254\nnetmask: 255.255.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &sandbox{t: t, dir: dir, conf: conf}
}

func (s *sandbox) nodesConf() string { return filepath.Join(s.dir, "nodes.conf") }

// run runs wwctl and returns stdout, stderr and the exit code.
func (s *sandbox) run(args ...string) (string, string, int) {
	cmd := exec.Command(wwctlBin, args...)
	cmd.Env = append(os.Environ(), "WW_CONFIG="+s.conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func (s *sandbox) ok(args ...string) string {
	s.t.Helper()
	out, errs, code := s.run(args...)
	if code != 0 {
		s.t.Fatalf("wwctl %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func TestAddRangeOf500(t *testing.T) {
	s := newSandbox(t)
	s.ok("profile", "add", "default")
	s.ok("node", "add", "n[001-500]", "--profile", "default", "--netname", "default", "--netdev", "eth0",
		"--ipaddr", "10.10.0.1", "--netmask", "255.255.0.0")
	var got map[string]map[string]any
	if err := json.Unmarshal([]byte(s.ok("node", "list", "-o", "json")), &got); err != nil {
		t.Fatalf("node list -o json is not JSON: %v", err)
	}
	if len(got) != 500 {
		t.Fatalf("%d nodes listed, want 500", len(got))
	}
	db, err := node.Load(s.nodesConf())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := db.Merged("n500")
	if ip := n.NetDevs["default"].Ipaddr; ip != "10.10.1.244" {
		t.Errorf("n500 ipaddr = %s, want 10.10.1.244", ip)
	}
	if !strings.Contains(s.ok("node", "list"), "n250") {
		t.Error("table lacks n250")
	}
}

func TestConcurrentSets(t *testing.T) {
	s := newSandbox(t)
	s.ok("profile", "add", "default")
	s.ok("node", "add", "c[01-50]")
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for i := 1; i <= 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("c%02d", i)
			if _, e, code := s.run("node", "set", name, "--comment", "set-"+name, "--tagadd", "n="+name); code != 0 {
				errs <- e
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	db, err := node.Load(s.nodesConf())
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 50; i++ {
		name := fmt.Sprintf("c%02d", i)
		if c := db.Nodes[name]; c.Comment != "set-"+name || c.Tags["n"] != name {
			t.Errorf("%s lost its change: %+v", name, c)
		}
	}
}

// TestKillDuringWrite kills wwctl with SIGKILL at random moments while it
// rewrites a large nodes.conf: the file must always be the old or the new.
func TestKillDuringWrite(t *testing.T) {
	s := newSandbox(t)
	s.ok("profile", "add", "default")
	s.ok("node", "add", "k[00001-10000]", "--ipaddr", "10.20.0.1", "--netmask", "255.255.0.0")
	rng := rand.New(rand.NewSource(1))
	killed := 0
	for i := 0; i < 20; i++ {
		before, _ := os.ReadFile(s.nodesConf())
		cmd := exec.Command(wwctlBin, "node", "set", "k[00001-10000]", "--comment", fmt.Sprintf("round %d", i))
		cmd.Env = append(os.Environ(), "WW_CONFIG="+s.conf)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Intn(400)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err != nil {
			killed++
		}
		after, err := os.ReadFile(s.nodesConf())
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(after, before) {
			continue
		}
		db, err := node.Parse(after)
		if err != nil {
			t.Fatalf("round %d: nodes.conf broken after kill: %v", i, err)
		}
		if len(db.Nodes) != 10000 || db.Nodes["k10000"].Comment != fmt.Sprintf("round %d", i) {
			t.Fatalf("round %d: nodes.conf is neither old nor new", i)
		}
	}
	if killed == 0 {
		t.Error("no run was killed mid-way; the test proves nothing")
	}
	t.Logf("%d of 20 runs killed mid-way", killed)
}

func TestBadInputChangesNothing(t *testing.T) {
	s := newSandbox(t)
	s.ok("profile", "add", "default")
	s.ok("node", "add", "n1", "--hwaddr", "52:54:00:00:00:01", "--ipaddr", "10.10.0.1")
	s.ok("node", "add", "n2", "--ipaddr", "10.10.0.2")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"node", "set", "n2", "--hwaddr", "52:54:00:zz:00:01"}, "52:54:00:zz:00:01"},
		{[]string{"node", "set", "n2", "--ipaddr", "10.10.0.1"}, "10.10.0.1"},
		{[]string{"node", "add", "n3", "--netmask", "255.0.255.0"}, "255.0.255.0"},
		{[]string{"node", "add", "bad/name"}, "bad/name"},
		{[]string{"node", "set", "n2", "--fsname", "var", "--fspath", "/var"}, "var"},
		{[]string{"node", "set", "n2", "--partname", "p1", "--partnumber", "1"}, "--diskname"},
		{[]string{"node", "set", "n2", "--diskname", "/dev/vda", "--partname", "p1", "--partnumber", "one"}, "one"},
		{[]string{"node", "unset", "n2", "--fsformat"}, "--fsname"},
		{[]string{"node", "unset", "n2"}, "no fields"},
		{[]string{"node", "set", "n2", "--ipaddr", "10.10.1"}, "10.10.1"},
		{[]string{"node", "set", "n9", "--comment", "x"}, "n9"},
		{[]string{"node", "add", "n[5-1]"}, "n[5-1]"},
		{[]string{"node", "set", "n2", "--mtu", "huge"}, "huge"},
		{[]string{"node", "set", "n2", "--discoverable=maybe"}, "maybe"},
		{[]string{"profile", "delete", "default", "--yes"}, "n1"},
		{[]string{"node", "list", "-o", "xml"}, "xml"},
	}
	for _, c := range cases {
		before, _ := os.ReadFile(s.nodesConf())
		_, errs, code := s.run(c.args...)
		after, _ := os.ReadFile(s.nodesConf())
		if code == 0 {
			t.Errorf("%v: exit 0", c.args)
		}
		if lines := strings.Count(strings.TrimSpace(errs), "\n"); lines != 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: want one line naming %q, got %q", c.args, c.want, errs)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("%v: nodes.conf changed", c.args)
		}
	}
	// A malformed nodes.conf is reported and left alone.
	broken := []byte("nodes:\n  n1: [unclosed\n")
	os.WriteFile(s.nodesConf(), broken, 0o644)
	_, errs, code := s.run("node", "set", "n1", "--comment", "x")
	after, _ := os.ReadFile(s.nodesConf())
	if code == 0 || !strings.Contains(errs, "nodes.conf") || !bytes.Equal(after, broken) {
		t.Errorf("malformed nodes.conf: exit %d, %q", code, errs)
	}
}

func TestV4NodesConfSurvivesSet(t *testing.T) {
	s := newSandbox(t)
	data, err := os.ReadFile("../node/testdata/v4-nodes.conf")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.nodesConf(), data, 0o644)
	if out := s.ok("node", "list", "-l"); !strings.Contains(out, "n002") || !strings.Contains(out, "rocky-9") {
		t.Errorf("list: %s", out)
	}
	all := s.ok("node", "list", "--all", "n002")
	if !hasRow(all, "n002", "Tags[accel]", "gpu", "a100") || !hasRow(all, "n002", "AssetKey", "--", "ABC-123") {
		t.Errorf("list --all lacks sources or values:\n%s", all)
	}
	s.ok("node", "set", "n001", "--comment", "changed", "--yes")
	after, _ := os.ReadFile(s.nodesConf())
	for _, key := range []string{"primary network: default", "vfstype: ext4", "infiniband", "password: secret", "accel: a100", "comment: changed"} {
		if !bytes.Contains(after, []byte(key)) {
			t.Errorf("lost %q after set", key)
		}
	}
}

func TestUnsetEditImportExport(t *testing.T) {
	s := newSandbox(t)
	s.ok("profile", "add", "default", "--kernelargs", "quiet,console=ttyS0", "--system-overlays", "wwinit,hostname")
	s.ok("node", "add", "n1", "--kernelargs", "~quiet,debug", "--ipmiaddr", "10.30.0.1")
	all := s.ok("node", "list", "--all", "n1")
	if !hasRow(all, "n1", "Kernel.Args", "default,n1", "quiet,console=ttyS0,~quiet,debug") {
		t.Errorf("kernel args not listed as upstream does:\n%s", all)
	}
	if y := s.ok("node", "list", "-y", "n1"); !strings.Contains(y, "- console=ttyS0\n") || strings.Contains(y, "quiet") {
		t.Errorf("kernel args not merged:\n%s", y)
	}
	s.ok("node", "unset", "n1", "--kernelargs", "--ipmi", "--yes")
	if all := s.ok("node", "list", "--all", "n1"); strings.Contains(all, "debug") || strings.Contains(all, "Ipmi") {
		t.Errorf("unset left values:\n%s", all)
	}

	csv := filepath.Join(s.dir, "nodes.csv")
	os.WriteFile(csv, []byte("name,hwaddr,ipaddr,netmask\nx1,52:54:00:00:01:01,10.10.5.1,255.255.0.0\nx2,52:54:00:00:01:02,10.10.5.2,255.255.0.0\n"), 0o644)
	s.ok("node", "import", csv)
	exported := s.ok("node", "export", "x[1-2]")
	if !strings.Contains(exported, "52:54:00:00:01:02") {
		t.Errorf("export: %s", exported)
	}
	s.ok("node", "delete", "--yes", "x1", "x2")
	yml := filepath.Join(s.dir, "nodes.yaml")
	os.WriteFile(yml, []byte(exported), 0o644)
	s.ok("node", "import", yml)
	if out := s.ok("node", "list", "--net"); !strings.Contains(out, "10.10.5.2") {
		t.Errorf("YAML import lost x2: %s", out)
	}

	// edit: an editor that changes a comment.
	editor := filepath.Join(s.dir, "editor.sh")
	os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/^  ipmi:/  comment: edited\\n  ipmi:/; s/^x1:/x1:\\n  comment: edited/' \"$1\"\n"), 0o755)
	cmd := exec.Command(wwctlBin, "node", "edit", "x1")
	cmd.Env = append(os.Environ(), "WW_CONFIG="+s.conf, "EDITOR="+editor)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("edit: %v: %s", err, out)
	}
	db, _ := node.Load(s.nodesConf())
	if db.Nodes["x1"].Comment != "edited" {
		t.Errorf("edit did not apply: %+v", db.Nodes["x1"])
	}
	// An edit that breaks validation, answered "no" to re-edit, changes nothing.
	before, _ := os.ReadFile(s.nodesConf())
	bad := filepath.Join(s.dir, "bad.sh")
	os.WriteFile(bad, []byte("#!/bin/sh\nsed -i 's/10.10.5.1/10.10.5.2/' \"$1\"\n"), 0o755)
	cmd = exec.Command(wwctlBin, "node", "edit", "x1")
	cmd.Env = append(os.Environ(), "WW_CONFIG="+s.conf, "EDITOR="+bad)
	cmd.Stdin = strings.NewReader("n\n")
	out, err := cmd.CombinedOutput()
	after, _ := os.ReadFile(s.nodesConf())
	if err == nil || !strings.Contains(string(out), "already used") || !bytes.Equal(before, after) {
		t.Errorf("bad edit: err=%v out=%s changed=%v", err, out, !bytes.Equal(before, after))
	}
}

func TestDeleteAsks(t *testing.T) {
	s := newSandbox(t)
	s.ok("node", "add", "d1")
	cmd := exec.Command(wwctlBin, "node", "delete", "d1")
	cmd.Env = append(os.Environ(), "WW_CONFIG="+s.conf)
	cmd.Stdin = strings.NewReader("no\n")
	if err := cmd.Run(); err == nil {
		t.Error("delete answered no succeeded")
	}
	cmd = exec.Command(wwctlBin, "node", "delete", "d1")
	cmd.Env = append(os.Environ(), "WW_CONFIG="+s.conf)
	cmd.Stdin = strings.NewReader("y\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("delete answered yes: %v %s", err, out)
	}
	if out := s.ok("node", "list"); strings.Contains(out, "d1") {
		t.Error("d1 still listed")
	}
}

// hasRow finds a table row with exactly these cells.
func hasRow(table string, cells ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		if strings.Join(strings.Fields(line), " ") == strings.Join(cells, " ") {
			return true
		}
	}
	return false
}
