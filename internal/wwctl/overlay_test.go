package wwctl

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// overlaySandbox is a controller in a temporary directory whose shipped
// overlays are the checkout's, with nodes n1 and n2.
func overlaySandbox(t *testing.T) *config.Config {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	dir := t.TempDir()
	cf, err := config.WriteSandbox(dir, config.SandboxOptions{Datadir: repo})
	if err != nil {
		t.Fatal(err)
	}
	nodes := `nodeprofiles:
  default:
    system overlay: [hostname, hosts, issue, networkd]
    runtime overlay: [hosts]
nodes:
  n1:
    profiles: [default]
    network devices:
      default: {device: eth0, hwaddr: "52:54:00:00:00:01", ipaddr: 192.168.200.11}
  n2:
    profiles: [default]
    network devices:
      default: {device: eth0, ipaddr: 192.168.200.12}
`
	os.MkdirAll(filepath.Join(dir, "etc", "warewulf"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "etc", "warewulf", "nodes.conf"), []byte(nodes), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvVar, cf)
	cfg, err := config.Load(cf)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func wwctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// treeOf lists a directory's files and their contents, to show nothing
// changed on disk.
func treeOf(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			data, _ := os.ReadFile(p)
			b.WriteString(p + " " + info.Mode().String() + " " + string(data) + "\n")
		}
		return nil
	})
	return b.String()
}

// hasRow reports whether a line of a table starts with want's words.
func hasRow(out, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.Join(strings.Fields(line), " ")+" ", want+" ") {
			return true
		}
	}
	return false
}

func TestOverlayShowRender(t *testing.T) {
	overlaySandbox(t)
	out, err := wwctl(t, "overlay", "show", "hostname", "etc/hostname.ww", "--render", "n1")
	if err != nil || out != "n1\n" {
		t.Fatalf("show --render n1: %q %v", out, err)
	}
	out, err = wwctl(t, "overlay", "show", "hostname", "etc/hostname.ww")
	if err != nil || !strings.Contains(out, "{{ .Id }}") {
		t.Fatalf("show: %q %v", out, err)
	}
	out, err = wwctl(t, "overlay", "show", "networkd", "etc/systemd/network/20-warewulf.network.ww", "-r", "n1")
	if err != nil || !strings.Contains(out, "==> /etc/systemd/network/20-warewulf-eth0.network (0644 0:0) <==") || !strings.Contains(out, "Address=192.168.200.11/24") {
		t.Fatalf("multi-file show: %q %v", out, err)
	}
	// A node not in nodes.conf: the controller's host name, as upstream.
	host, _ := os.Hostname()
	out, err = wwctl(t, "overlay", "show", "hostname", "etc/hostname", "--render", "nope")
	if err != nil || out != host+"\n" {
		t.Fatalf("show --render nope: %q %v", out, err)
	}
}

func TestOverlayBuildAndList(t *testing.T) {
	cfg := overlaySandbox(t)
	out, err := wwctl(t, "overlay", "build", "n[1-2]")
	if err != nil || !strings.Contains(out, "4 node images: 4 built") {
		t.Fatalf("build: %q %v", out, err)
	}
	out, err = wwctl(t, "overlay", "build")
	if err != nil || !strings.Contains(out, "0 built, 4 unchanged") {
		t.Fatalf("rebuild: %q %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.ProvisionDir(), "overlays", "system.index")); err != nil {
		t.Fatal(err)
	}
	out, err = wwctl(t, "overlay", "list")
	if err != nil || !strings.Contains(out, "hostname") || !strings.Contains(out, "shipped") {
		t.Fatalf("list: %q %v", out, err)
	}
	out, err = wwctl(t, "overlay", "list", "--all", "--long", "hostname")
	if err != nil || !hasRow(out, "-rw-r--r-- (0644) 0 0 hostname etc/hostname.ww false") {
		t.Fatalf("list -al: %q %v", out, err)
	}
}

// TestOverlayEdit: the first edit of a shipped overlay makes the site copy
// and the build uses it; the shipped file is untouched.
func TestOverlayEdit(t *testing.T) {
	cfg := overlaySandbox(t)
	shipped := filepath.Join(cfg.DistOverlayDir(), "hostname", "rootfs", "etc", "hostname.ww")
	before, _ := os.ReadFile(shipped)
	t.Setenv("EDITOR", `printf '{{ .Id }}.edited\n' >`)
	if _, err := wwctl(t, "overlay", "edit", "hostname", "etc/hostname.ww"); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(shipped)
	if !bytes.Equal(before, after) {
		t.Fatal("the shipped overlay changed")
	}
	out, err := wwctl(t, "overlay", "show", "hostname", "etc/hostname.ww", "--render", "n2")
	if err != nil || out != "n2.edited\n" {
		t.Fatalf("after edit: %q %v", out, err)
	}
	out, _ = wwctl(t, "overlay", "list")
	if !strings.Contains(out, "site (shadows shipped)") {
		t.Fatalf("list after edit:\n%s", out)
	}
	// A broken edit is reported with file and line, and kept for fixing.
	t.Setenv("EDITOR", `printf 'ok\n{{ .Node.Name \n' >`)
	_, err = wwctl(t, "overlay", "edit", "hostname", "etc/hostname.ww")
	if err == nil || !strings.Contains(err.Error(), "overlay hostname, file etc/hostname.ww line") {
		t.Fatalf("broken edit: %v", err)
	}
	// Deleting the site copy brings back the shipped one.
	if _, err := wwctl(t, "overlay", "delete", "--force", "hostname"); err != nil {
		t.Fatal(err)
	}
	out, err = wwctl(t, "overlay", "show", "hostname", "etc/hostname.ww", "--render", "n2")
	if err != nil || out != "n2\n" {
		t.Fatalf("after delete: %q %v", out, err)
	}
}

func TestOverlayCreateImportChmodChown(t *testing.T) {
	cfg := overlaySandbox(t)
	if _, err := wwctl(t, "overlay", "create", "site1"); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "motd")
	os.WriteFile(src, []byte("hello\n"), 0o640)
	if _, err := wwctl(t, "overlay", "import", "--parents", "site1", src, "/etc/motd"); err != nil {
		t.Fatal(err)
	}
	if out, err := wwctl(t, "overlay", "import", "-o", "site1", src, "/etc/"); err != nil || !strings.Contains(out, "/etc/motd") {
		t.Fatalf("import into a directory: %q %v", out, err)
	}
	for _, args := range [][]string{
		{"overlay", "mkdir", "site1", "/var/lib/app", "--mode", "0750"},
		{"overlay", "chmod", "site1", "etc/motd", "0600"},
		{"overlay", "chown", "site1", "etc/motd", "1000:100"},
	} {
		if _, err := wwctl(t, args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	out, err := wwctl(t, "overlay", "list", "-al", "site1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-rw------- (0600) 1000 100 site1 etc/motd true 6", "drwxr-x--- (0750) 0 0 site1 var/lib/app/ true"} {
		if !hasRow(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	// Bad input: a clear error and nothing changed.
	site := cfg.SiteOverlayDir()
	before := treeOf(t, site)
	for _, args := range [][]string{
		{"overlay", "chmod", "site1", "etc/motd", "999"},
		{"overlay", "chown", "site1", "etc/motd", "alice"},
		{"overlay", "chmod", "site1", "etc/nope", "0644"},
		{"overlay", "chmod", "hostname", "etc/nope", "0644"},
		{"overlay", "create", "site1"},
		{"overlay", "create", "../x"},
		{"overlay", "import", "site1", "/nonexistent/file"},
		{"overlay", "import", "site1", src, "../../escape"},
		{"overlay", "delete", "hostname"},
		{"overlay", "show", "nope", "etc/x"},
		{"overlay", "show", "hostname", "etc/nope.ww", "--render", "n1"},
		{"overlay", "build", "n[1-"},
		{"overlay", "build", "nope"},
		{"overlay", "build", "--kind", "weird"},
	} {
		if _, err := wwctl(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error is not one line: %v", args, err)
		}
	}
	if after := treeOf(t, site); after != before {
		t.Fatalf("bad input changed the site overlays:\n%s\n---\n%s", before, after)
	}
	// An overlay in use is not deleted without --force.
	if _, err := wwctl(t, "overlay", "create", "used"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg.NodesConf(), []byte("nodeprofiles:\n  default:\n    system overlay: [used]\nnodes: {}\n"), 0o644)
	if _, err := wwctl(t, "overlay", "delete", "used"); err == nil || !strings.Contains(err.Error(), "profile default") {
		t.Fatalf("delete of a used overlay: %v", err)
	}
}

// TestOverlayInfo: wwdoc comments head the table, in the order of their
// keys; an inline {{/* VAR: help */}} gives a variable's help; types read
// as upstream's; a variable is matched to a node flag by where it is in
// the data, not by its last name (.Warewulf.Port is the server's port,
// $.Ipaddr the controller's address: no flag sets either); variables in a
// range or with are typed by what they range over; what names no field
// is left out; only templates have variables.
func TestOverlayInfo(t *testing.T) {
	cfg := overlaySandbox(t)
	tmpl := `{{- /* wwdoc-details: second line */ -}}
{{/* wwdoc: first line */}}
{{/* .Tags.rack: the rack the node is in */}}
{{ .Tags.rack }} {{ .Kernel.Args | join " " }} {{ .Warewulf.Port }} {{ $.Ipaddr }} {{ .NoSuchField }}
{{ .Ipmi.Ipaddr }} {{ .Node.Tags.x }} {{ .FileSystems }}
{{- range $name, $nd := .NetDevs }}{{ $nd.Device }} {{ $nd.Ipaddr.String }} {{ .Netmask }}{{ end }}
{{- with .ThisNode }}{{ range .DiskList }}{{ .WipeTable }}{{ end }}{{ end }}
`
	dir := filepath.Join(cfg.SiteOverlayDir(), "doc", "rootfs")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "t.ww"), []byte(tmpl), 0o644)
	os.WriteFile(filepath.Join(dir, "plain"), []byte("{{ .Id }}\n"), 0o644)
	out, err := wwctl(t, "overlay", "info", "doc", "t.ww")
	if err != nil {
		t.Fatal(err)
	}
	want := `first line
second line

VARIABLE        OPTION        TYPE                         HELP
--------        ------        ----                         ----
$.Ipaddr                      string                       
$nd.Device      --netdev      string                       the device for given network
$nd.Ipaddr      --ipaddr      IP                           IPv4 address in given network
.DiskList                     []*node.Disk                 
.FileSystems                  map[string]*node.FileSystem  
.Ipmi.Ipaddr    --ipmiaddr    IP                           the IPMI IP address
.Kernel.Args    --kernelargs  []string                     kernel arguments
.NetDevs                      map[string]*node.NetDev      
.Netmask        --netmask     IP                           the network's netmask
.Node.Tags.x                  string                       
.Tags.rack                    string                       the rack the node is in
.ThisNode                     *node.Node                   
.Warewulf.Port                int                          
.WipeTable      --diskwipe    bool                         whether or not the partition tables shall be wiped
`
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	if _, err := wwctl(t, "overlay", "info", "doc", "plain"); err == nil || !strings.Contains(err.Error(), "not a template") {
		t.Errorf("info of a plain file: %v", err)
	}
}

// TestOverlayInfoAndUpstreamFlags: overlay info names each variable's
// flag (a method of a value, .OnBoot.BoolDefaultTrue, stands for it); --render host renders for the controller; list --path and build
// --workers.
func TestOverlayInfoAndUpstreamFlags(t *testing.T) {
	overlaySandbox(t)
	out, err := wwctl(t, "overlay", "info", "ifcfg", "etc/sysconfig/network-scripts/ifcfg.ww")
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{"$d.Ipaddr --ipaddr IP", "$d.OnBoot --onboot wwtype.WWbool"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			found = found || strings.HasPrefix(strings.Join(strings.Fields(line), " "), row)
		}
		if !found {
			t.Errorf("no row %q:\n%s", row, out)
		}
	}
	host, _ := os.Hostname()
	if out, err := wwctl(t, "overlay", "show", "--render", "host", "hostname", "etc/hostname.ww"); err != nil || strings.TrimSpace(out) != host {
		t.Errorf("--render host: %q %v", out, err)
	}
	if out, err := wwctl(t, "overlay", "list", "--path", "hostname"); err != nil || !strings.Contains(out, filepath.Join("overlays", "hostname")) {
		t.Errorf("list --path: %q %v", out, err)
	}
	if out, err := wwctl(t, "overlay", "build", "--workers", "1", "n1"); err != nil || !strings.Contains(out, "0 failed") {
		t.Errorf("build --workers: %q %v", out, err)
	}
}
