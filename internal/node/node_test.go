package node

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
)

func mustParse(t *testing.T, doc string) *DB {
	t.Helper()
	db, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestMergeRules(t *testing.T) {
	db := mustParse(t, `
nodeprofiles:
  base:
    image name: rocky
    kernel: {args: [quiet, console=ttyS0]}
    system overlay: [wwinit, hostname]
    tags: {rack: r1, role: compute}
    network devices:
      default: {device: eth0, netmask: 255.255.0.0}
  gpu:
    image name: rocky-gpu
    kernel: {args: [nouveau.modeset=0]}
    tags: {role: gpu}
nodes:
  n1:
    profiles: [base, gpu]
    kernel: {args: [~quiet]}
    system overlay: [~hostname, extra]
    network devices:
      default: {hwaddr: 52:54:00:AA:BB:CC, ipaddr: 10.0.0.1}
`)
	n, err := db.MergedFields("n1")
	if err != nil {
		t.Fatal(err)
	}
	if n.ImageName != "rocky-gpu" || n.Source["ImageName"] != "gpu" {
		t.Errorf("image: last profile should win, got %q from %q", n.ImageName, n.Source["ImageName"])
	}
	if got := n.KernelArgs(); got != "console=ttyS0 nouveau.modeset=0" {
		t.Errorf("kernel args = %q", got)
	}
	if !reflect.DeepEqual([]string(n.SystemOverlay), []string{"wwinit", "extra"}) {
		t.Errorf("system overlay = %v", n.SystemOverlay)
	}
	if n.Tags["rack"] != "r1" || n.Tags["role"] != "gpu" {
		t.Errorf("tags = %v", n.Tags)
	}
	d := n.NetDevs["default"]
	if d.Device != "eth0" || d.Netmask != "255.255.0.0" || d.Ipaddr != "10.0.0.1" || d.Hwaddr != "52:54:00:aa:bb:cc" {
		t.Errorf("netdev = %+v", d)
	}
	if n.Source["NetDevs[default].Device"] != "base" || n.Source["NetDevs[default].Ipaddr"] != "" {
		t.Errorf("sources = %v", n.Source)
	}
	// Merging must not write through to the profiles.
	if got := db.Profiles["base"].NetDevs["default"].Ipaddr; got != "" {
		t.Errorf("merge wrote into the profile: %q", got)
	}
	if len(db.Profiles["base"].SystemOverlay) != 2 {
		t.Errorf("merge changed the profile's list")
	}
}

func TestV4FileReadsLegacyKeys(t *testing.T) {
	data, err := os.ReadFile("testdata/v4-nodes.conf")
	if err != nil {
		t.Fatal(err)
	}
	db, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.Merged("n002")
	if err != nil {
		t.Fatal(err)
	}
	if n.KernelArgs() != "quiet crashkernel=no vga=791 net.naming-scheme=v238 nouveau.modeset=0" {
		t.Errorf("kernel args = %q", n.KernelArgs())
	}
	if n.Ipmi.UserName != "admin" || n.Ipmi.Ipaddr != "10.2.0.2" || n.Tags["accel"] != "a100" {
		t.Errorf("merged ipmi/tags wrong: %+v %v", n.Ipmi, n.Tags)
	}
	out, err := db.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Legacy keys are read into their current places (primary: true is
	// "primary network"); unknown ones are dropped, as upstream does.
	for _, key := range []string{"primary network: default", "vfstype: ext4", "asset key: ABC-123", "type: infiniband", `onboot: "true"`, `discoverable: "false"`} {
		if !strings.Contains(string(out), key) {
			t.Errorf("rewrite lost %q:\n%s", key, out)
		}
	}
	for _, key := range []string{"WW_INTERNAL", "primary: true"} {
		if strings.Contains(string(out), key) {
			t.Errorf("rewrite kept %q", key)
		}
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	out2, _ := again.Marshal()
	if string(out) != string(out2) {
		t.Error("marshal is not stable across a round trip")
	}
}

func TestValidation(t *testing.T) {
	cases := map[string]string{
		"bad mac":       "nodes: {n1: {network devices: {default: {hwaddr: 52:54:00:zz:00:01}}}}",
		"bad ip":        "nodes: {n1: {network devices: {default: {ipaddr: 10.0.0.300}}}}",
		"bad netmask":   "nodes: {n1: {network devices: {default: {netmask: 255.0.255.0}}}}",
		"bad mtu":       "nodes: {n1: {network devices: {default: {mtu: jumbo}}}}",
		"duplicate ip":  "nodes: {n1: {network devices: {default: {ipaddr: 10.0.0.1}}}, n2: {network devices: {x: {ipaddr: 10.0.0.1}}}}",
		"duplicate mac": "nodes: {n1: {network devices: {default: {hwaddr: 52:54:00:00:00:01}}}, n2: {network devices: {default: {hwaddr: 52:54:00:00:00:01}}}}",
		"bad onboot":    "nodes: {n1: {network devices: {default: {onboot: maybe}}}}",
		"bad name":      "nodes: {-n1: {}}",
		"bad ipv6":      "nodes: {n1: {network devices: {default: {ipaddr6: 10.0.0.1}}}}",
		"bad yaml":      "nodes: [",
		"bad root":      "nodes: {n1: {root: somewhere}}",
		"shell in root": `nodes: {n1: {root: "/dev/vda1; reboot"}}`,
		"shell in init": `nodes: {n1: {init: "/sbin/init $(reboot)"}}`,
		"quote in init": `nodes: {n1: {init: "/sbin/init'"}}`,
	}
	for name, doc := range cases {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
	}
}

func TestExpandNames(t *testing.T) {
	cases := map[string][]string{
		"n[001-003]":      {"n001", "n002", "n003"},
		"n[1-3,7]":        {"n1", "n2", "n3", "n7"},
		"a,b,a":           {"a", "b"},
		"r[1-2]n[08-09]":  {"r1n08", "r1n09", "r2n08", "r2n09"},
		"n[9-10]x":        {"n9x", "n10x"},
		"n1, n[2-3],gpu1": {"n1", "n2", "n3", "gpu1"},
	}
	for in, want := range cases {
		got, err := ExpandNames([]string{in})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"n[3-1]", "n[1-", "n]", "n[a-b]", "n[1-99999999]", "n[[1]]"} {
		if _, err := ExpandNames([]string{bad}); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestStepIP(t *testing.T) {
	for _, c := range []struct {
		ip   string
		n    int
		want string
	}{{"10.10.0.1", 499, "10.10.1.244"}, {"10.0.0.255", 1, "10.0.1.0"}, {"fd00::ff", 1, "fd00::100"}} {
		if got, err := StepIP(c.ip, c.n); err != nil || got != c.want {
			t.Errorf("StepIP(%s, %d) = %s, %v; want %s", c.ip, c.n, got, err, c.want)
		}
	}
	if _, err := StepIP("255.255.255.255", 1); err == nil {
		t.Error("overflow accepted")
	}
}

func TestUpdateFailureLeavesFileUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.conf")
	if err := Update(path, func(db *DB) error {
		db.Profiles["default"] = &Conf{}
		db.Nodes["n1"] = &Conf{Profiles: List{"default"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	err := Update(path, func(db *DB) error {
		db.Nodes["n2"] = &Conf{NetDevs: map[string]*NetDev{"default": {Ipaddr: "10.0.0.300"}}}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), `10.0.0.300`) {
		t.Fatalf("err = %v", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Error("a failed update changed nodes.conf")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestReadCSV(t *testing.T) {
	order, nodes, err := ReadCSV(strings.NewReader("name,hwaddr,ipaddr,netmask,profiles\n" +
		"n1,52:54:00:00:00:01,10.0.0.1,255.255.255.0,default\n" +
		"# a comment\n" +
		"n2,52:54:00:00:00:02,10.0.0.2,,\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(order, []string{"n1", "n2"}) || nodes["n2"].NetDevs["default"].Ipaddr != "10.0.0.2" ||
		nodes["n1"].Profiles[0] != "default" {
		t.Errorf("got %v %+v", order, nodes)
	}
	if _, _, err := ReadCSV(strings.NewReader("name,colour\nn1,red\n")); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown column: %v", err)
	}
}

func TestFieldsWithSources(t *testing.T) {
	data, _ := os.ReadFile("testdata/v4-nodes.conf")
	db, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := db.MergedFields("n001")
	found := map[string]Field{}
	for _, f := range n.Fields() {
		found[f.Field] = f
	}
	if f := found["Ipmi.UserName"]; f.Value != "admin" || f.Source != "default" {
		t.Errorf("Ipmi.UserName = %+v", f)
	}
	if f := found["NetDevs[ib0].Ipaddr"]; f.Value != "10.1.0.1" || f.Source != "" {
		t.Errorf("ib0 ipaddr = %+v", f)
	}
	if f := found["Ipmi.Netmask"]; f.Source != "default" {
		t.Errorf("Ipmi.Netmask = %+v", f)
	}
}

func TestNestedProfiles(t *testing.T) {
	db := mustParse(t, `
nodeprofiles:
  base: {kernel: {args: [quiet]}, image name: base, comment: base comment, tags: {a: base}}
  mid: {profiles: [base], image name: mid, kernel: {args: [mid]}, tags: {b: mid}}
  top: {profiles: [mid, ~base], runtime overlay: [r1]}
  loop1: {profiles: [loop2], tags: {l: "1"}}
  loop2: {profiles: [loop1], tags: {l: "2"}}
nodes:
  n1: {profiles: [top]}
  n2: {profiles: [mid, top]}
  n3: {profiles: [loop1]}
  n4: {profiles: [missing, mid]}
`)
	// base is negated by top: only mid and top count, mid first.
	n1, _ := db.Merged("n1")
	if got := db.ProfileChain("n1"); !reflect.DeepEqual(got, []string{"mid", "top"}) {
		t.Errorf("n1 chain %v", got)
	}
	if n1.ImageName != "mid" || n1.Tags["a"] != "" || n1.Comment != "" {
		t.Errorf("n1: %+v", n1.Conf)
	}
	n2, _ := db.Merged("n2")
	if got := db.ProfileChain("n2"); !reflect.DeepEqual(got, []string{"mid", "top"}) {
		t.Errorf("n2 chain %v", got)
	}
	if n2.KernelArgs() != "mid" {
		t.Errorf("n2 args %q", n2.KernelArgs())
	}
	// A loop is followed once, then warned about and cut.
	if got := db.ProfileChain("n3"); !reflect.DeepEqual(got, []string{"loop2", "loop1"}) {
		t.Errorf("n3 chain %v", got)
	}
	n3, _ := db.Merged("n3")
	if n3.Tags["l"] != "1" {
		t.Errorf("n3 tags %v", n3.Tags)
	}
	// A missing profile is skipped, the rest merged.
	n4, err := db.Merged("n4")
	if err != nil || n4.ImageName != "mid" || n4.Tags["a"] != "base" {
		t.Errorf("n4: %v %+v", err, n4)
	}
	if got := db.ProfileChain("n4"); !reflect.DeepEqual(got, []string{"base", "mid"}) {
		t.Errorf("n4 chain %v", got)
	}
}

func TestQuotedBooleansKeepTheirType(t *testing.T) {
	doc := "nodes:\n  n1:\n    discoverable: \"true\"\n    network devices:\n      default:\n        onboot: \"false\"\n"
	db := mustParse(t, doc)
	n, _ := db.Merged("n1")
	if !n.Discoverable.Bool() || n.NetDevs["default"].OnBoot.BoolDefaultTrue() {
		t.Errorf("values: %+v", n.Conf)
	}
	out, _ := db.Marshal()
	if !strings.Contains(string(out), `discoverable: "true"`) || !strings.Contains(string(out), `onboot: "false"`) {
		t.Errorf("rewrite changed the type:\n%s", out)
	}
}

func TestResourcesAppend(t *testing.T) {
	db := mustParse(t, `
nodeprofiles:
  p1: {resources: {fstab: [{spec: "warewulf:/home", file: /home}]}}
nodes:
  n1: {profiles: [p1], resources: {fstab: [{spec: "warewulf:/opt", file: /opt}]}}
`)
	n, _ := db.MergedFields("n1")
	if l, _ := n.Resources["fstab"].([]any); len(l) != 2 {
		t.Errorf("fstab %v", n.Resources["fstab"])
	}
	if n.Source["Resources[fstab]"] != "p1,n1" {
		t.Errorf("source %q", n.Source["Resources[fstab]"])
	}
	if l, _ := db.Profiles["p1"].Resources["fstab"].([]any); len(l) != 1 {
		t.Error("merge wrote into the profile")
	}
}

func TestEditClearsWithUnsetWords(t *testing.T) {
	c := &Conf{ImageName: "img", NetDevs: map[string]*NetDev{"default": {Ipaddr: "10.0.0.1"}}, Ipmi: &Ipmi{Write: "true"}}
	e := &Edit{Values: map[string]string{"image": "UNSET", "ipaddr": "0.0.0.0", "ipmiwrite": "UNDEF"},
		Order: []string{"image", "ipaddr", "ipmiwrite"}, Sel: Selector{Net: "default"}}
	if err := e.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(c, 0, nil); err != nil {
		t.Fatal(err)
	}
	if c.ImageName != "" || c.NetDevs != nil || c.Ipmi != nil {
		t.Errorf("not cleared: %+v", c)
	}
	bad := &Edit{Values: map[string]string{"ipaddr": "10.0.1"}, Order: []string{"ipaddr"}, Sel: Selector{Net: "default"}}
	if err := bad.Apply(&Conf{}, 0, nil); err == nil || !strings.Contains(err.Error(), "10.0.1") {
		t.Errorf("bad ip: %v", err)
	}
	fs := &Edit{Values: map[string]string{"fspath": "/var"}, Order: []string{"fspath"}, Sel: Selector{FS: "var"}}
	if err := fs.Prepare(); err == nil || !strings.Contains(err.Error(), "var") {
		t.Errorf("filesystem without a device: %v", err)
	}
}

func TestOverlayReplacesLists(t *testing.T) {
	dst := &Conf{Profiles: List{"default"}, SystemOverlay: List{"a"}, ImageName: "x"}
	Overlay(dst, &Conf{Profiles: List{"default"}, SystemOverlay: List{"b"}})
	if !reflect.DeepEqual(dst.Profiles, List{"default"}) || !reflect.DeepEqual(dst.SystemOverlay, List{"b"}) || dst.ImageName != "x" {
		t.Errorf("got %+v", dst)
	}
}

// TestSameInterfaceWarned: two network devices naming one interface load
// (upstream loads them), with one warning for all such nodes.
func TestSameInterfaceWarned(t *testing.T) {
	hook := logtest.NewGlobal()
	defer hook.Reset()
	_, err := Parse([]byte("nodes:\n  n1:\n    network devices:\n      a: {device: eth0, ipaddr: 10.0.0.1}\n      b: {device: eth0, ipaddr: 10.0.1.1}\n  n2:\n    network devices:\n      a: {device: eth0}\n      b: {device: eth1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "same interface") {
			warned = append(warned, e.Message)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "n1 (eth0: a, b)") || strings.Contains(warned[0], "n2") {
		t.Errorf("warnings: %q", warned)
	}
}
