package wwctl_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// TestUpstreamDefaultFiles runs the README's cluster commands on the files
// upstream installs, unchanged: they load without a warning, and the
// nodes come out as upstream merges them.
func TestUpstreamDefaultFiles(t *testing.T) {
	s := newSandbox(t)
	os.WriteFile(s.conf, []byte(testenv.UpstreamWarewulfConf), 0o644)
	os.WriteFile(s.nodesConf(), []byte(testenv.UpstreamNodesConf), 0o644)
	steps := [][]string{
		{"profile", "set", "default", "--image", "rocky-9", "--kernelargs", "console=ttyS0"},
		{"node", "add", "n[001-100]", "--netdev", "eth0", "--ipaddr", "10.0.1.1", "--netmask", "255.255.0.0"},
		{"node", "set", "n001", "--hwaddr", "52:54:00:00:00:01"},
		{"node", "set", "n[001-100]", "--discoverable=true"},
	}
	for _, args := range steps {
		_, errs, code := s.run(args...)
		if code != 0 || strings.Contains(errs, "warning") {
			t.Fatalf("wwctl %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
	}
	all := s.ok("node", "list", "-a", "n100")
	for _, row := range [][]string{
		{"n100", "Discoverable", "--", "true"},
		{"n100", "ImageName", "default", "rocky-9"},
		{"n100", "Kernel.Args", "default", "console=ttyS0"},
		{"n100", "NetDevs[default].Ipaddr", "--", "10.0.1.100"},
		{"n100", "Ipmi.Template", "default", "ipmitool.tmpl"},
	} {
		if !hasRow(all, row...) {
			t.Errorf("no row %v:\n%s", row, all)
		}
	}
	if strings.Contains(all, "Comment") {
		t.Errorf("the profile's comment was inherited:\n%s", all)
	}
	data, _ := os.ReadFile(s.nodesConf())
	if !bytes.Contains(data, []byte(`discoverable: "true"`)) {
		t.Errorf("discoverable not written as upstream writes it")
	}
	// configure renders the host overlay: point datadir at this checkout's
	// overlays (installed, upstream's default /usr/share/warewulf has them).
	os.WriteFile(s.conf, []byte(testenv.UpstreamWarewulfConf+"paths:\n  datadir: "+testenv.RepoDatadir(t, "../..")+"\n"), 0o644)
	hosts, exports := filepath.Join(s.dir, "hosts"), filepath.Join(s.dir, "exports")
	s.ok("configure", "hostfile", "--hosts-file", hosts)
	s.ok("configure", "nfs", "--exports-file", exports, "--no-reload")
	h, _ := os.ReadFile(hosts)
	e, _ := os.ReadFile(exports)
	if !bytes.Contains(h, []byte("10.0.1.1")) || !bytes.Contains(h, []byte("n001")) || !bytes.Contains(e, []byte("/home")) {
		t.Errorf("configure: hosts %q exports %q", h, e)
	}
}

// TestUpgrade45 takes a 4.5-era nodes.conf and warewulf.conf through
// `wwctl upgrade` and checks the merged nodes upstream documents.
func TestUpgrade45(t *testing.T) {
	s := newSandbox(t)
	legacyConf := filepath.Join(s.dir, "legacy-warewulf.conf")
	os.WriteFile(legacyConf, []byte(`WW_INTERNAL: 45
ipaddr: 10.0.0.1
netmask: 255.255.0.0
warewulf:
  port: 9873
  syslog: false
  datastore: /usr/share
container mounts:
  - source: /etc/resolv.conf
    dest: /etc/resolv.conf
nfs:
  enabled: true
  export paths:
  - path: /home
    export options: rw,sync
    mount options: defaults
    mount: true
  - path: /opt
    export options: ro,sync
    mount: false
`), 0o644)
	legacyNodes := filepath.Join(s.dir, "legacy-nodes.conf")
	os.WriteFile(legacyNodes, []byte(`WW_INTERNAL: 45
nodeprofiles:
  default:
    comment: default profile
    container name: rocky-8
    kernel:
      args: quiet crashkernel=no
    system overlay:
    - wwinit
    runtime overlay:
    - generic
    ipmi:
      username: admin
      netmask: 255.255.255.0
    keys:
      rack: r1
nodes:
  n1:
    profiles:
    - default
    ipmi ipaddr: 10.1.0.1
    network devices:
      eth0:
        device: eth0
        ipaddr: 10.0.1.1
        netmask: 255.255.0.0
        default: "true"
        onboot: true
`), 0o644)
	out := filepath.Join(s.dir, "nodes.conf")
	args := []string{"upgrade", "nodes", "--add-defaults=false", "--replace-overlays=true",
		"-i", legacyNodes, "-o", out, "--with-warewulfconf", legacyConf}
	_, errs, code := s.run(args...)
	if code != 0 {
		t.Fatalf("upgrade nodes: %s", errs)
	}
	if !strings.Contains(errs, "container name") {
		t.Errorf("the upgrade did not say what it changed: %s", errs)
	}
	first, _ := os.ReadFile(out)
	var merged map[string]map[string]any
	if err := yaml.Unmarshal([]byte(s.ok("node", "list", "-y", "n1")), &merged); err != nil {
		t.Fatal(err)
	}
	n1 := merged["n1"]
	get := func(path ...string) any {
		var v any = n1
		for _, k := range path {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		return v
	}
	checks := map[string][2]any{
		"image":    {get("image name"), "rocky-8"},
		"args":     {strings.Join(toStrings(get("kernel", "args")), " "), "quiet crashkernel=no"},
		"ipmi":     {get("ipmi", "ipaddr"), "10.1.0.1"},
		"ipmiuser": {get("ipmi", "username"), "admin"},
		"primary":  {get("primary network"), "eth0"},
		"onboot":   {get("network devices", "eth0", "onboot"), "true"},
		"tag":      {get("tags", "rack"), "r1"},
		"comment":  {get("comment"), nil},
		"system":   {strings.Join(toStrings(get("system overlay")), ","), "wwinit,wwclient,fstab,hostname,ssh.host_keys,issue,resolv,udev.netname,systemd.netname,ifcfg,ifupdown,NetworkManager,wicked,ignition"},
		"runtime":  {strings.Join(toStrings(get("runtime overlay")), ","), "hosts,ssh.authorized_keys,syncuser"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s: got %v, want %v", name, c[0], c[1])
		}
	}
	if fstab := get("resources", "fstab"); len(toAny(fstab)) != 1 {
		t.Errorf("fstab from the mounted NFS export: %v", fstab)
	}
	// Again: byte-stable.
	again := append(args[:0:0], args...)
	again[5] = out
	again[7] = filepath.Join(s.dir, "again.conf")
	s.ok(again...)
	second, _ := os.ReadFile(filepath.Join(s.dir, "again.conf"))
	if !bytes.Equal(first, second) {
		t.Errorf("a second upgrade changed the file:\n%s\n---\n%s", first, second)
	}
	// A bad input writes nothing.
	bad := filepath.Join(s.dir, "bad.conf")
	os.WriteFile(bad, []byte("nodes: [\n"), 0o644)
	before, _ := os.ReadFile(out)
	if _, errs, code := s.run("upgrade", "nodes", "--add-defaults=false", "--replace-overlays=false", "-i", bad, "-o", out, "--with-warewulfconf", legacyConf); code == 0 || !strings.Contains(errs, "bad.conf") {
		t.Errorf("bad input: exit %d %s", code, errs)
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(before, after) {
		t.Error("a bad input changed the output")
	}
	// warewulf.conf: legacy keys moved, the rest kept; it then loads.
	upConf := filepath.Join(s.dir, "up-warewulf.conf")
	s.ok("upgrade", "config", "-i", legacyConf, "-o", upConf)
	data, _ := os.ReadFile(upConf)
	for _, want := range []string{"image mounts:", "datadir: /usr/share", "path: /home"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("upgraded warewulf.conf lacks %q:\n%s", want, data)
		}
	}
	for _, gone := range []string{"WW_INTERNAL", "container mounts", "syslog", "mount: true", "datastore"} {
		if bytes.Contains(data, []byte(gone)) {
			t.Errorf("upgraded warewulf.conf keeps %q:\n%s", gone, data)
		}
	}
	s.ok("upgrade", "config", "-i", upConf, "-o", upConf+"2")
	if again, _ := os.ReadFile(upConf + "2"); !bytes.Equal(again, data) {
		t.Error("upgrade config is not stable")
	}
}

func toAny(v any) []any { l, _ := v.([]any); return l }

func toStrings(v any) []string {
	var out []string
	for _, e := range toAny(v) {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// TestUpstreamFlags runs the upstream names this project answers to.
func TestUpstreamFlags(t *testing.T) {
	s := newSandbox(t)
	s.ok("profile", "add", "default")
	s.ok("node", "create", "n1", "--ipaddr", "10.10.0.1", "--netname", "eth0")
	s.ok("node", "new", "n2", "n3")
	s.ok("node", "set", "--all", "--yes", "-e", "--ipminetmask", "255.255.0.0", "--ipmiaddr", "10.20.0.1",
		"--tagadd", "rack=r1", "--ipmitagadd", "a=b", "--nettagadd", "vlan=7", "--netname", "eth0")
	db := s.ok("node", "list", "-y")
	for _, want := range []string{`discoverable: "true"`, "netmask: 255.255.0.0", "rack: r1", "vlan: \"7\""} {
		if !strings.Contains(db, want) {
			t.Errorf("set --all: no %q in\n%s", want, db)
		}
	}
	// A range steps the address by one per node (upstream's set would give
	// every node the same one).
	if out := s.ok("node", "list", "--ipmi"); !hasRow(out, "n3", "10.20.0.3", "--", "--", "--") {
		t.Errorf("--ipmi:\n%s", out)
	}
	if out := s.ok("node", "list", "--net", "n1"); !hasRow(out, "n1", "eth0", "--", "10.10.0.1", "<nil>", "--") {
		t.Errorf("--net:\n%s", out)
	}
	if out := s.ok("node", "list", "--long", "n1"); !strings.Contains(out, "OVERLAYS (S/R)") {
		t.Errorf("--long:\n%s", out)
	}
	if out := s.ok("node", "list", "--json", "n1"); !strings.Contains(out, `"discoverable": "true"`) {
		t.Errorf("--json:\n%s", out)
	}
	s.ok("node", "unset", "n1", "--tag", "rack", "--ipmitag", "a", "--nettag", "vlan", "--netname", "eth0", "--yes")
	if out := s.ok("node", "list", "-a", "n1"); strings.Contains(out, "Tags[") {
		t.Errorf("unset --tag/--ipmitag/--nettag left tags:\n%s", out)
	}
	s.ok("node", "set", "n1", "--netdel", "eth0", "--yes")
	if out := s.ok("node", "list", "--net", "n1"); strings.Contains(out, "eth0") {
		t.Errorf("--netdel:\n%s", out)
	}
	s.ok("node", "set", "n2", "--diskname", "/dev/vda", "--diskwipe", "--partname", "scratch", "--partnumber", "1",
		"--partsize", "1024", "--parttype", "0fc63daf-8483-4772-8e79-3d69d8477de4", "--partcreate", "--partwipe",
		"--fsname", "scratch", "--fsformat", "ext4", "--fspath", "/scratch", "--fswipe")
	y := s.ok("node", "list", "-y", "n2")
	for _, want := range []string{"wipe_table: true", "size_mib: \"1024\"", "should_exist: true", "wipe_partition_entry: true",
		"/dev/disk/by-partlabel/scratch:", "format: ext4", "wipe_filesystem: true"} {
		if !strings.Contains(y, want) {
			t.Errorf("disk flags: no %q in\n%s", want, y)
		}
	}
	s.ok("node", "unset", "n2", "--fsname", "/dev/disk/by-partlabel/scratch", "--fsformat")
	s.ok("node", "set", "n2", "--partdel", "scratch", "--fsdel", "/dev/disk/by-partlabel/scratch")
	s.ok("node", "set", "n2", "--diskdel", "/dev/vda")
	if y := s.ok("node", "list", "-y", "n2"); strings.Contains(y, "disks") || strings.Contains(y, "filesystems") {
		t.Errorf("deletes left:\n%s", y)
	}
	// The global names of the configuration.
	for _, env := range [][]string{{"--warewulfconf", s.conf}} {
		cmd := exec.Command(wwctlBin, append(env, "node", "list")...)
		cmd.Env = os.Environ()
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "n3") {
			t.Errorf("--warewulfconf: %v %s", err, out)
		}
	}
	cmd := exec.Command(wwctlBin, "node", "list")
	cmd.Env = append(os.Environ(), "WW_CONFIG=", "WAREWULFCONF="+s.conf)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "n3") {
		t.Errorf("WAREWULFCONF: %v %s", err, out)
	}
	if out := s.ok("version", "--full"); !strings.Contains(out, "NODESCONF") || !strings.Contains(out, s.nodesConf()) {
		t.Errorf("version --full:\n%s", out)
	}
	if out := s.ok("configure", "warewulfd", "--dry-run"); !strings.Contains(out, "warewulfd: would (re)start") {
		t.Errorf("configure warewulfd: %s", out)
	}
	s.ok("vnfs", "list")
	s.ok("container", "list")
	if _, errs, code := s.run("image", "remove", "--yes", "nope"); code == 0 || !strings.Contains(errs, `"nope"`) {
		t.Errorf("image remove --yes: exit %d %s", code, errs)
	}
	if _, errs, code := s.run("image", "import", "--arch", "linux", "--passwd", "x", "oci:/nonexistent", "x"); code == 0 || usageError.MatchString(errs) {
		t.Errorf("image import --arch --passwd: exit %d %s", code, errs)
	}
	edit := exec.Command(wwctlBin, "node", "edit", "--noheader", "n1")
	edit.Env = append(os.Environ(), "WW_CONFIG="+s.conf, "EDITOR=true")
	if out, err := edit.CombinedOutput(); err != nil {
		t.Errorf("node edit --noheader: %v %s", err, out)
	}
	for _, verb := range []string{"rm", "del", "remove"} {
		s.ok("node", "add", "x-"+verb)
		s.ok("node", verb, "--yes", "x-"+verb)
	}
	// clean removes the built overlays of a node that is gone.
	// clean empties the cache, keeping its directory.
	stale := filepath.Join(s.dir, "srv", "warewulf", "overlays", "gone")
	os.MkdirAll(stale, 0o755)
	cfg, err := config.Load(s.conf)
	if err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(cfg.CacheDir(), "blobs", "x")
	os.MkdirAll(filepath.Dir(cached), 0o755)
	os.WriteFile(cached, []byte("x"), 0o644)
	if out := s.ok("clean"); !strings.Contains(out, stale) {
		t.Errorf("clean: %s", out)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("clean left the overlays of a deleted node")
	}
	if _, err := os.Stat(cached); err == nil {
		t.Error("clean left the cache")
	}
	if _, err := os.Stat(cfg.CacheDir()); err != nil {
		t.Errorf("clean removed the cache directory: %v", err)
	}
	// Shell completion: node and profile names.
	if out := s.ok("__complete", "node", "set", "n"); !strings.Contains(out, "n1\nn2\nn3\n") {
		t.Errorf("node completion:\n%s", out)
	}
	if out := s.ok("__complete", "node", "set", "n1", "--profile", ""); !strings.Contains(out, "default\n") {
		t.Errorf("profile completion:\n%s", out)
	}
}

// TestProfileChainWarnings: a loop and a missing profile each give one
// warning naming the chain, and the rest of the chain still merges.
func TestProfileChainWarnings(t *testing.T) {
	s := newSandbox(t)
	os.WriteFile(s.nodesConf(), []byte(`nodeprofiles:
  p1: {profiles: [p2], image name: img1}
  p2: {profiles: [p1], tags: {from: p2}}
nodes:
  n1: {profiles: [p1, missing]}
`), 0o644)
	out, errs, code := s.run("node", "list", "-y", "n1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"profile loop: node n1 -> p1 -> p2 -> p1", `profile \"missing\" does not exist (node n1 -> missing)`} {
		if strings.Count(errs, want) != 1 {
			t.Errorf("want one warning %q, got:\n%s", want, errs)
		}
	}
	if !strings.Contains(out, "image name: img1") || !strings.Contains(out, "from: p2") {
		t.Errorf("the chain did not merge:\n%s", out)
	}
}

// TestProfileLoopRefused: set refuses a --profile that makes a loop,
// naming the chain, and changes nothing.
func TestProfileLoopRefused(t *testing.T) {
	s := newSandbox(t)
	s.ok("profile", "add", "p1")
	s.ok("profile", "add", "p2", "--profile", "p1")
	before, _ := os.ReadFile(s.nodesConf())
	_, errs, code := s.run("profile", "set", "p1", "--profile", "p2", "--yes")
	if code == 0 || !strings.Contains(errs, "p1 -> p2 -> p1") {
		t.Errorf("loop: exit %d %s", code, errs)
	}
	if after, _ := os.ReadFile(s.nodesConf()); !bytes.Equal(before, after) {
		t.Error("a refused loop changed nodes.conf")
	}
	// A missing profile is accepted, as upstream does, with a warning.
	if _, errs, code := s.run("node", "add", "n1", "--profile", "p2,nosuch"); code != 0 {
		t.Errorf("missing profile: exit %d %s", code, errs)
	}
}
