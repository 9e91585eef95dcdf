package wwctl

import (
	"os"
	"path/filepath"
	"testing"
)

// A sandbox's nodes.conf is 0640 from the start: it will hold asset keys
// and BMC passwords.
func TestSandboxNodesConfMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ww")
	if out, err := wwctlRun(t, "genconfig", "sandbox", dir); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	fi, err := os.Stat(filepath.Join(dir, "etc", "warewulf", "nodes.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("sandbox nodes.conf is %o, want 640", fi.Mode().Perm())
	}
}
