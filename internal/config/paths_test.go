package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStatusFile(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.StatusFile(); got != "/var/lib/warewulf/node-status.json" {
		t.Errorf("installed: %s", got)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "warewulf.conf")
	os.WriteFile(file, []byte("ipaddr: 10.0.0.1\n"), 0o644)
	if c, err = Load(file); err != nil {
		t.Fatal(err)
	}
	if got := c.StatusFile(); got != filepath.Join(dir, "state", "warewulf", "node-status.json") {
		t.Errorf("relocated: %s", got)
	}
}
