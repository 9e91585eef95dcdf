package controller

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// TestKnownHostsBlock: the controller gets the nodes' known_hosts, with
// the keys the ssh.host_keys overlay installs (the one key store).
func TestKnownHostsBlock(t *testing.T) {
	_, src, _, _ := runtime.Caller(0)
	dir := t.TempDir()
	file := filepath.Join(dir, "warewulf.conf")
	os.WriteFile(file, []byte("ipaddr: 10.0.0.1\nnetmask: 255.255.255.0\nssh:\n  key types: [ed25519, ecdsa]\npaths:\n  sysconfdir: etc\n  localstatedir: state\n  datadir: "+testenv.RepoDatadir(t, filepath.Join(filepath.Dir(src), "..", ".."))+"\n"), 0o644)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	db, err := node.Parse([]byte(`
nodeprofiles:
  p:
    cluster name: c1
nodes:
  n1:
    profiles: [p]
    network devices:
      default: {ipaddr: 10.0.0.11}
      ib: {ipaddr: 10.1.0.11}
  n2:
    network devices:
      eth0: {ipaddr: 10.0.0.12}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := KnownHostsBlock(cfg, db)
	if err != nil {
		t.Fatal(err)
	}
	// The keys are those kept for the nodes' own images.
	store, err := os.ReadFile(overlay.HostKeysFile(cfg))
	if err != nil {
		t.Fatal(err)
	}
	pub := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(store)), "\n") {
		f := strings.Fields(l)
		data, _ := base64.StdEncoding.DecodeString(f[3])
		pub[f[0]+" "+f[1]] = strings.TrimSpace(string(data))
	}
	if len(pub) != 4 {
		t.Fatalf("key store holds %d keys, want 4:\n%s", len(pub), store)
	}
	want := "# Written by warewulf: every node's ssh host keys.\n" +
		"n1,n1.c1,n1-default,10.0.0.11,n1-ib,10.1.0.11 " + pub["n1 ed25519"] + "\n" +
		"n1,n1.c1,n1-default,10.0.0.11,n1-ib,10.1.0.11 " + pub["n1 ecdsa"] + "\n" +
		"n2,n2-eth0,10.0.0.12 " + pub["n2 ed25519"] + "\n" +
		"n2,n2-eth0,10.0.0.12 " + pub["n2 ecdsa"] + "\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	again, err := KnownHostsBlock(cfg, db)
	if err != nil || again != got {
		t.Fatalf("second call: %v\n%s", err, again)
	}
}
