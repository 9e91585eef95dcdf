package tlskeys

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMakeImportExport(t *testing.T) {
	dir := t.TempDir()
	if made, err := Make(dir, []net.IP{net.ParseIP("10.0.0.1")}, []string{"ctl"}, false); err != nil || !made {
		t.Fatalf("make: %v %v", made, err)
	}
	for f, want := range map[string]os.FileMode{KeyFile: 0o600, caKeyFile: 0o600, CertFile: 0o644, CAFile: 0o644} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v, want mode %o", f, err, want)
		}
	}
	// The server certificate verifies against the CA for its address.
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(dir, CAFile))
	pool.AppendCertsFromPEM(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "10.0.0.1"}); err != nil {
		t.Errorf("verify: %v", err)
	}
	if made, _ := Make(dir, nil, nil, false); made {
		t.Error("existing keys replaced without force")
	}
	exp := t.TempDir()
	if err := Export(dir, exp); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := Import(other, exp); err != nil {
		t.Fatal(err)
	}
	// A key that is not the certificate's is refused; nothing changes.
	Make(filepath.Join(exp, "new"), nil, nil, false)
	os.Rename(filepath.Join(exp, "new", KeyFile), filepath.Join(exp, KeyFile))
	before, _ := os.ReadFile(filepath.Join(other, KeyFile))
	if err := Import(other, exp); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("mismatched import: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(other, KeyFile)); string(after) != string(before) {
		t.Error("a refused import changed the keys")
	}
	if err := Import(other, filepath.Join(exp, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("import from nowhere: %v", err)
	}
}
