package node

import (
	"os"
	"path/filepath"
	"testing"
)

// nodes.conf holds asset keys and BMC passwords: every save leaves it
// 0640, whatever mode it had, or keeps a stricter one.
func TestSaveMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.conf")
	for _, c := range []struct{ had, want os.FileMode }{{0o644, 0o640}, {0o666, 0o640}, {0o600, 0o600}} {
		if err := os.WriteFile(path, []byte("nodes: {}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, c.had)
		// No change at all still tightens a loose mode.
		if err := Update(path, func(*DB) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := Update(path, func(db *DB) error {
			db.Nodes["n1"] = &Conf{}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.want {
			t.Errorf("nodes.conf %o after a save: %o, want %o", c.had, fi.Mode().Perm(), c.want)
		}
		os.Remove(path)
	}
}
