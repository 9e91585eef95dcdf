package wwctl

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// wwctlRun runs the command tree in process and returns its output.
func wwctlRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	global = globalFlags{}
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// repoDir is the source checkout, whose overlays/ are the shipped ones.
func repoDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// configureSandbox writes a warewulf.conf with a dnsmasq DHCP server, its
// config file and TFTP root inside dir, and a nodes.conf with one node.
func configureSandbox(t *testing.T) (dir, conf string) {
	t.Helper()
	dir = t.TempDir()
	conf = filepath.Join(dir, "warewulf.conf")
	os.WriteFile(conf, []byte(`ipaddr: 10.0.0.1
netmask: 255.255.255.0
dhcp:
  enabled: true
  server: dnsmasq
  interfaces: [veth9]
  config file: out/dnsmasq.conf
tftp:
  enabled: true
  tftproot: tftp
nfs:
  enabled: true
  export paths:
    - path: /home
      export options: rw,sync
ssh:
  key types: [ed25519]
paths:
  datadir: share
  sysconfdir: etc
  localstatedir: state
  ipxesource: ipxe
`), 0o644)
	os.MkdirAll(filepath.Join(dir, "etc", "warewulf"), 0o755)
	os.MkdirAll(filepath.Join(dir, "share", "warewulf"), 0o755)
	os.Symlink(filepath.Join(repoDir(t), "overlays"), filepath.Join(dir, "share", "warewulf", "overlays"))
	os.WriteFile(filepath.Join(dir, "etc", "warewulf", "nodes.conf"), []byte(`nodes:
  n1:
    network devices:
      default: {hwaddr: "52:54:00:00:00:01", ipaddr: 10.0.0.11}
`), 0o644)
	os.MkdirAll(filepath.Join(dir, "ipxe"), 0o755)
	os.WriteFile(filepath.Join(dir, "ipxe", "undionly.kpxe"), []byte("bios"), 0o644)
	os.WriteFile(filepath.Join(dir, "ipxe", "snponly.efi"), []byte("efi"), 0o644)
	return dir, conf
}

func TestConfigureDHCPDryRunWritesNothing(t *testing.T) {
	dir, conf := configureSandbox(t)
	out, err := wwctlRun(t, "--config", conf, "configure", "dhcp", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"interface=veth9", "dhcp-host=52:54:00:00:00:01,set:ww-1,10.0.0.11,n1,3600", "port=0"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Error("--dry-run wrote the config")
	}
}

func TestConfigureAll(t *testing.T) {
	dir, conf := configureSandbox(t)
	hosts := filepath.Join(dir, "hosts")
	exports := filepath.Join(dir, "exports")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644)
	known := filepath.Join(dir, "ssh_known_hosts")
	os.WriteFile(known, []byte("gitlab.example ssh-ed25519 AAAAsite\n"), 0o644)
	out, err := wwctlRun(t, "--config", conf, "configure", "--all", "--no-reload", "--hosts-file", hosts, "--exports-file", exports, "--known-hosts-file", known)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	check := func(file string, want ...string) {
		t.Helper()
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(data), w) {
				t.Errorf("%s lacks %q:\n%s", file, w, data)
			}
		}
	}
	check(filepath.Join(dir, "out", "dnsmasq.conf"), "dhcp-host=52:54:00:00:00:01")
	// Through the host overlay: the file's own lines stay above upstream's marker.
	check(hosts, "127.0.0.1 localhost\n# Do not edit after this line\n", "\n10.0.0.11 n1 n1-default \n")
	check(exports, "# BEGIN warewulf", "\n/home 10.0.0.0/255.255.255.0(rw,sync)\n# END warewulf\n")
	check(filepath.Join(dir, "etc", "warewulf", "keys", "cluster.pub"), "ssh-ed25519 ")
	check(filepath.Join(dir, "etc", "warewulf", "keys", "cluster"), "OPENSSH PRIVATE KEY")
	// Upstream's default name, copied from Debian's snponly.efi: what DHCP hands out.
	check(filepath.Join(dir, "tftp", "ipxe-snponly-x86_64.efi"), "efi")
	check(known, "gitlab.example ssh-ed25519 AAAAsite\n# BEGIN warewulf", "\nn1,n1-default,10.0.0.11 ssh-ed25519 ", " root@n1\n# END warewulf\n")

	// Running again changes nothing and keeps the keys.
	key, _ := os.ReadFile(filepath.Join(dir, "etc", "warewulf", "keys", "cluster"))
	out, err = wwctlRun(t, "--config", conf, "configure", "--all", "--no-reload", "--hosts-file", hosts, "--exports-file", exports, "--known-hosts-file", known)
	if err != nil || strings.Count(out, "is up to date") != 3 {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "etc", "warewulf", "keys", "cluster")); !bytes.Equal(key, again) {
		t.Error("the cluster key changed")
	}
}

// TestConfigureHostOverlay: configure renders the host overlay (a site
// overlay of that name shadows the shipped one), drops the marked block of
// earlier versions from /etc/hosts, writes nothing under --dry-run, and
// with `host overlay: false` skips hostfile and nfs and says so.
func TestConfigureHostOverlay(t *testing.T) {
	dir, conf := configureSandbox(t)
	hosts := filepath.Join(dir, "hosts")
	exports := filepath.Join(dir, "exports")
	orig := "127.0.0.1 localhost\n# BEGIN warewulf: generated by wwctl configure, edits inside are lost\n10.0.0.11 n1\n# END warewulf\n::1 ip6-localhost\n"
	os.WriteFile(hosts, []byte(orig), 0o600)
	out, err := wwctlRun(t, "--config", conf, "configure", "hostfile", "--dry-run", "--hosts-file", hosts)
	if err != nil || !strings.Contains(out, "# Entry for n1\n10.0.0.11 n1 n1-default") {
		t.Fatalf("--dry-run: %v\n%s", err, out)
	}
	if data, _ := os.ReadFile(hosts); string(data) != orig {
		t.Fatalf("--dry-run changed the hosts file:\n%s", data)
	}
	if _, err := wwctlRun(t, "--config", conf, "configure", "hostfile", "--hosts-file", hosts); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(hosts)
	if !strings.HasPrefix(string(data), "127.0.0.1 localhost\n::1 ip6-localhost\n# Do not edit after this line\n") || strings.Contains(string(data), "# BEGIN") {
		t.Errorf("hosts file:\n%s", data)
	}
	if st, _ := os.Stat(hosts); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want the file's own 0600", st.Mode().Perm())
	}

	// A site overlay named host shadows the shipped one.
	site := filepath.Join(dir, "state", "warewulf", "overlays", "host", "rootfs", "etc")
	os.MkdirAll(site, 0o755)
	os.WriteFile(filepath.Join(site, "hosts.ww"), []byte("site {{ $.Ipaddr }}\n"), 0o644)
	os.WriteFile(filepath.Join(site, "exports.ww"), []byte("/site {{ $.Network }}(ro)\n"), 0o644)
	if out, err := wwctlRun(t, "--config", conf, "configure", "hostfile", "--hosts-file", hosts); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := wwctlRun(t, "--config", conf, "configure", "nfs", "--no-reload", "--exports-file", exports); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if data, _ := os.ReadFile(hosts); string(data) != "site 10.0.0.1\n" {
		t.Errorf("site overlay: hosts file %q", data)
	}
	if data, _ := os.ReadFile(exports); !strings.Contains(string(data), "\n/site 10.0.0.0(ro)\n") {
		t.Errorf("site overlay: exports file %q", data)
	}

	// host overlay: false: acted on, not warned about.
	cfg, _ := os.ReadFile(conf)
	os.WriteFile(conf, append(cfg, "warewulf:\n  host overlay: false\n"...), 0o644)
	os.Remove(hosts)
	out, err = wwctlRun(t, "--config", conf, "configure", "hostfile", "--hosts-file", hosts)
	if err != nil || !strings.Contains(out, "hostfile: skipped: warewulf: host overlay is false") || strings.Contains(out, "not acted on") {
		t.Errorf("host overlay false: %v\n%s", err, out)
	}
	if _, err := os.Stat(hosts); !os.IsNotExist(err) {
		t.Error("host overlay false wrote the hosts file")
	}
}

func TestConfigureBadInput(t *testing.T) {
	dir, conf := configureSandbox(t)
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(filepath.Join(dir, "etc", "warewulf", "nodes.conf"), []byte("nodes:\n  n1:\n    network devices:\n      default: {ipaddr: 10.0.0.300}\n"), 0o644)
	_, err := wwctlRun(t, "--config", conf, "configure", "hostfile", "--hosts-file", hosts)
	if err == nil || !strings.Contains(err.Error(), "10.0.0.300") {
		t.Errorf("bad node address: %v", err)
	}
	if _, err := os.Stat(hosts); !os.IsNotExist(err) {
		t.Error("a failed run wrote the hosts file")
	}
	if _, err := wwctlRun(t, "--config", conf, "configure", "bogus"); err == nil {
		t.Error("an unknown service was accepted")
	}
}

func TestConfigureSSHDryRunWritesNothing(t *testing.T) {
	dir, conf := configureSandbox(t)
	known := filepath.Join(dir, "ssh_known_hosts")
	out, err := wwctlRun(t, "--config", conf, "configure", "ssh", "--dry-run", "--known-hosts-file", known)
	if err != nil || !strings.Contains(out, "would list the host keys of 1 nodes in "+known) {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, p := range []string{known, filepath.Join(dir, "etc", "warewulf", "keys")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("--dry-run wrote %s", p)
		}
	}
}
