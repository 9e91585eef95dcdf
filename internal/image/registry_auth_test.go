package image

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(priv)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key
}

// TestImportTLSAndAuth pulls from a registry with a self-signed
// certificate and htpasswd authentication: refused without
// --tls-skip-verify or credentials, accepted with flags or an auth.json.
func TestImportTLSAndAuth(t *testing.T) {
	requireRoot(t)
	requireLong(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.DefaultCost)
	htpasswd := filepath.Join(dir, "htpasswd")
	os.WriteFile(htpasswd, []byte("ww:"+string(hash)+"\n"), 0o644)
	reg := startRegistryWith(t, fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n---auth---\nauth:\n  htpasswd:\n    realm: test\n    path: %s\n", cert, key, htpasswd))

	layout := filepath.Join(t.TempDir(), "layout")
	writeOCILayout(t, layout, "test")
	copyImage(t, "oci:"+layout+":test", "docker://"+reg+"/ww/auth:1", "--dest-creds", "ww:s3cret")

	cfg := sandbox(t)
	src := "docker://" + reg + "/ww/auth:1"
	authJSON := filepath.Join(dir, "auth.json")
	os.WriteFile(authJSON, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg, base64.StdEncoding.EncodeToString([]byte("ww:s3cret")))), 0o600)
	badAuth := filepath.Join(dir, "bad.json")
	os.WriteFile(badAuth, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg, base64.StdEncoding.EncodeToString([]byte("ww:wrong")))), 0o600)
	for _, c := range []struct {
		name string
		o    ImportOptions
		ok   bool
	}{
		{"no-tls-skip", ImportOptions{Username: "ww", Password: "s3cret", AuthFile: authJSON}, false},
		{"no-credentials", ImportOptions{TLSSkipVerify: true, AuthFile: filepath.Join(dir, "empty.json")}, false},
		{"wrong-password", ImportOptions{TLSSkipVerify: true, Username: "ww", Password: "nope"}, false},
		{"wrong-authfile", ImportOptions{TLSSkipVerify: true, AuthFile: badAuth}, false},
		{"flags", ImportOptions{TLSSkipVerify: true, Username: "ww", Password: "s3cret"}, true},
		{"authfile", ImportOptions{TLSSkipVerify: true, AuthFile: authJSON}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "no-credentials" {
				os.WriteFile(c.o.AuthFile, []byte(`{"auths":{}}`), 0o600)
			}
			_, err := Import(context.Background(), cfg, src, c.name, c.o)
			if c.ok != (err == nil) || Exists(cfg, c.name) != c.ok {
				t.Fatalf("import: %v (exists %v)", err, Exists(cfg, c.name))
			}
			if !c.ok && !strings.Contains(err.Error(), reg) {
				t.Fatalf("error does not name the source: %v", err)
			}
		})
	}
}
