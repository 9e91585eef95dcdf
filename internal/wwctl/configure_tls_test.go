package wwctl_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigureTLS: wwctl configure tls makes the keys once (--force
// replaces them), exports and imports them; a bad import is one line
// naming the path, a non-zero exit, and the keys stay as they were.
func TestConfigureTLS(t *testing.T) {
	s := newSandbox(t)
	out := s.ok("configure", "tls")
	if !strings.Contains(out, "IP Addresses:") || !strings.Contains(out, "10.10.255.254") {
		t.Fatalf("configure tls:\n%s", out)
	}
	tlsDir := filepath.Join(s.dir, "tls")
	key, err := os.ReadFile(filepath.Join(tlsDir, "warewulf.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(tlsDir, "warewulf.key")); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %o", st.Mode().Perm())
	}
	if out := s.ok("configure", "tls"); !strings.Contains(out, "already exist") {
		t.Errorf("a second run:\n%s", out)
	}
	exp := filepath.Join(t.TempDir(), "exp")
	s.ok("configure", "tls", "--export", exp)
	for _, bad := range [][]string{
		{"--import", filepath.Join(s.dir, "missing")},
		{"--import", filepath.Join(s.dir, "warewulf.conf")},
		{"--import", exp, "--export", exp},
	} {
		_, errs, code := s.run(append([]string{"configure", "tls"}, bad...)...)
		if code == 0 || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("configure tls %v: exit %d, %q: want one line and a failure", bad, code, errs)
		}
		if now, _ := os.ReadFile(filepath.Join(tlsDir, "warewulf.key")); string(now) != string(key) {
			t.Fatalf("configure tls %v changed the key", bad)
		}
	}
	s.ok("configure", "tls", "--force")
	if now, _ := os.ReadFile(filepath.Join(tlsDir, "warewulf.key")); string(now) == string(key) {
		t.Error("--force kept the old key")
	}
	s.ok("configure", "tls", "--import", exp)
	if now, _ := os.ReadFile(filepath.Join(tlsDir, "warewulf.key")); string(now) != string(key) {
		t.Error("--import did not bring the exported key back")
	}
}
