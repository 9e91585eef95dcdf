package overlay

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// pubKeys renders ssh.host_keys for a node: type -> public line.
func pubKeys(t *testing.T, b *Builder, db *node.DB, name string) map[string]string {
	t.Helper()
	outs, err := b.Render(db, "ssh.host_keys", "etc/ssh/ssh_host_keys.ww", name)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, o := range outs {
		if typ, ok := strings.CutSuffix(strings.TrimPrefix(o.Path, "etc/ssh/ssh_host_"), "_key.pub"); ok {
			keys[typ] = strings.TrimSpace(string(o.Data))
		}
	}
	if len(keys) != 2 {
		t.Fatalf("%s: public keys %v, want ed25519 and ecdsa", name, keys)
	}
	return keys
}

// TestKnownHostsRender: every node is listed under its names and addresses,
// once per key type, with the key ssh.host_keys installs on it.
func TestKnownHostsRender(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := sampleDB(t)
	outs, err := b.Render(db, "ssh.known_hosts", "etc/ssh/ssh_known_hosts.ww", "n1")
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || outs[0].Path != "etc/ssh/ssh_known_hosts" || outs[0].Mode != 0o644 {
		t.Fatalf("outputs %+v", outs)
	}
	got := string(outs[0].Data)
	hosts := map[string]string{
		"n1": "n1,n1.alpha,n1-default,n1-eth0,10.0.1.1,n1-ib,n1-ib0,10.1.1.1,fd00::1",
		"n2": "n2,n2-default,n2-eth0,10.0.1.2",
		"n3": "n3,n3-default,n3-eth0,10.0.1.3",
	}
	var want []string
	for _, n := range []string{"n1", "n2", "n3"} {
		keys := pubKeys(t, b, db, n)
		want = append(want, hosts[n]+" "+keys["ed25519"], hosts[n]+" "+keys["ecdsa"])
	}
	if lines := strings.Split(got, "\n"); strings.Join(lines[1:], "\n") != strings.Join(want, "\n")+"\n" {
		t.Fatalf("ssh_known_hosts:\n%s\nwant after the header:\n%s", got, strings.Join(want, "\n"))
	}
	// The same for every node: it never reads the node it is rendered for.
	for _, n := range []string{"n2", "n3"} {
		o, err := b.Render(db, "ssh.known_hosts", "etc/ssh/ssh_known_hosts.ww", n)
		if err != nil || string(o[0].Data) != got {
			t.Fatalf("rendered for %s: %v\n%s", n, err, o[0].Data)
		}
	}
	// A node not in nodes.conf is the controller (upstream): the same text.
	if o, err := b.Render(db, "ssh.known_hosts", "etc/ssh/ssh_known_hosts.ww", "n9"); err != nil || string(o[0].Data) != got {
		t.Fatalf("rendered for n9 (not in nodes.conf): %v", err)
	}
	// OpenSSH reads it: ssh-keygen finds n2 by address, n1 by cluster name.
	_, err = exec.LookPath("ssh-keygen")
	testenv.Need(t, "ssh-keygen is not installed (test/deps.sh installs openssh-client)", err == nil)
	file := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(file, outs[0].Data, 0o644)
	for host, key := range map[string]string{"10.0.1.2": pubKeys(t, b, db, "n2")["ed25519"], "n1.alpha": pubKeys(t, b, db, "n1")["ecdsa"]} {
		out, err := exec.Command("ssh-keygen", "-F", host, "-f", file).Output()
		fields := strings.Fields(key)
		if err != nil || !strings.Contains(string(out), fields[0]+" "+fields[1]) {
			t.Errorf("ssh-keygen -F %s: %v\n%s", host, err, out)
		}
	}
}

// extract unpacks a node's image as the kernel does (all parts into one
// tree) and returns the tree.
func extract(t *testing.T, parts []string) string {
	t.Helper()
	needCpio(t)
	dir := t.TempDir()
	for _, p := range parts {
		cmd := exec.Command("sh", "-c", `gzip -dc "$1" | cpio -i -d -u --quiet --no-absolute-filenames`, "sh", p)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cpio -i: %v: %s", err, out)
		}
	}
	return dir
}

func readNodeFile(t *testing.T, sb *sandbox, name, file string) string {
	t.Helper()
	parts, err := Parts(sb.cfg, name, System)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(extract(t, parts), file))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestKnownHostsBuild: built images carry one shared known_hosts listing
// the keys each node has in its own image; a new node appears after a
// rebuild that builds that node's images alone.
func TestKnownHostsBuild(t *testing.T) {
	needCpio(t)
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	withKnownHosts := func() *node.DB {
		db := buildDB(t, sb)
		p := db.Profiles["default"]
		// ssh.host_keys in the system overlay too, as upstream lists it:
		// the public keys land there, the private ones are withheld.
		p.SystemOverlay = append(p.SystemOverlay, "ssh.known_hosts", "ssh.host_keys")
		return db
	}
	db := withKnownHosts()
	if st := mustBuild(t, b, db); st.Built != 6 || st.HostKeys != 6 || st.Withheld != 6 || len(st.WithheldFrom) != 1 || st.WithheldFrom[0] != "ssh.host_keys" {
		t.Fatalf("first build %+v, want 6 images, 6 host keys, 6 private keys withheld from ssh.host_keys", st)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		parts, err := Parts(sb.cfg, n, System)
		if err != nil {
			t.Fatal(err)
		}
		dir := extract(t, parts)
		for _, typ := range []string{"ed25519", "ecdsa"} {
			if _, err := os.Stat(filepath.Join(dir, "etc/ssh/ssh_host_"+typ+"_key")); err == nil {
				t.Fatalf("%s: the system overlay holds the private %s host key", n, typ)
			}
		}
	}
	known := readNodeFile(t, sb, "n1", "etc/ssh/ssh_known_hosts")
	for _, n := range []string{"n1", "n2", "n3"} {
		if got := readNodeFile(t, sb, n, "etc/ssh/ssh_known_hosts"); got != known {
			t.Fatalf("%s has another known_hosts:\n%s", n, got)
		}
		for _, typ := range []string{"ed25519", "ecdsa"} {
			pub := strings.TrimSpace(readNodeFile(t, sb, n, "etc/ssh/ssh_host_"+typ+"_key.pub"))
			if !strings.Contains(known, " "+pub+"\n") {
				t.Fatalf("known_hosts lacks %s's %s key %q:\n%s", n, typ, pub, known)
			}
		}
	}
	// Rendered once for all: the file is in the shared cluster archive.
	parts, _ := Parts(sb.cfg, "n1", System)
	own := extract(t, parts[len(parts)-1:])
	if _, err := os.Stat(filepath.Join(own, "etc/ssh/ssh_known_hosts")); err == nil {
		t.Fatal("known_hosts is in n1's own archive, not the shared one")
	}
	if st := mustBuild(t, NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot}), withKnownHosts()); st.Built != 0 || st.Shared != 0 {
		t.Fatalf("unchanged rebuild: %+v", st)
	}

	// A new node: its two images are built, every node's file lists it.
	db2 := withKnownHosts()
	db2.Nodes["n4"] = &node.Conf{Profiles: node.List{"default"}, NetDevs: map[string]*node.NetDev{"default": {Hwaddr: "52:54:00:00:00:04", Ipaddr: "10.0.1.4"}}}
	st := mustBuild(t, b, db2)
	if st.Built != 2 || st.Unchanged != 6 || st.HostKeys != 2 {
		t.Fatalf("n4 added: %+v, want n4's 2 images and 2 keys", st)
	}
	pub := strings.TrimSpace(readNodeFile(t, sb, "n4", "etc/ssh/ssh_host_ed25519_key.pub"))
	if got := readNodeFile(t, sb, "n1", "etc/ssh/ssh_known_hosts"); !strings.Contains(got, "n4,n4-default,n4-eth0,10.0.1.4 "+pub+"\n") {
		t.Fatalf("n1's known_hosts after adding n4:\n%s", got)
	}

	// Deleting a node's keys gives it new ones, in its image and everywhere.
	data, _ := os.ReadFile(HostKeysFile(sb.cfg))
	var kept []string
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if !strings.HasPrefix(l, "n2 ") {
			kept = append(kept, l)
		}
	}
	os.WriteFile(HostKeysFile(sb.cfg), []byte(strings.Join(kept, "")), 0o600)
	st = mustBuild(t, NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot}), db2)
	if st.Built != 2 || st.HostKeys != 2 {
		t.Fatalf("n2's keys deleted: %+v, want n2's system and runtime images and 2 keys", st)
	}
	pub = strings.TrimSpace(readNodeFile(t, sb, "n2", "etc/ssh/ssh_host_ecdsa_key.pub"))
	if got := readNodeFile(t, sb, "n3", "etc/ssh/ssh_known_hosts"); !strings.Contains(got, "n2,n2-default,n2-eth0,10.0.1.2 "+pub+"\n") {
		t.Fatalf("n3's known_hosts after n2's new keys:\n%s", got)
	}
}
