// Package tlskeys keeps warewulfd's TLS keys in SYSCONFDIR/warewulf/tls
// under upstream's names (warewulf.key, warewulf.crt): a CA made here
// (ca.key, ca.crt) signs the server certificate, and nodes trust ca.crt,
// which the wwclient overlay carries. A site's own key and certificate can
// be imported instead (then ca.crt is theirs, or the certificate itself).
package tlskeys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// The files in the key directory.
const (
	KeyFile    = "warewulf.key"
	CertFile   = "warewulf.crt"
	CAFile     = "ca.crt"
	caKeyFile  = "ca.key"
	validYears = 10
)

// Make creates a CA and a server certificate for the given addresses and
// names in dir, unless they exist (force replaces them). It reports
// whether it made them.
func Make(dir string, ips []net.IP, names []string, force bool) (bool, error) {
	if !force {
		if _, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
			return false, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	now := time.Now().Add(-time.Hour) // a node's clock may lag
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{Organization: []string{"Warewulf"}, CommonName: "Warewulf CA"},
		NotBefore: now, NotAfter: now.AddDate(validYears, 0, 0), IsCA: true, BasicConstraintsValid: true,
		MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return false, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, err
	}
	cn := "warewulf"
	if len(names) > 0 {
		cn = names[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{Organization: []string{"Warewulf"}, CommonName: cn},
		NotBefore: now, NotAfter: now.AddDate(validYears, 0, 0), IPAddresses: ips, DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return false, err
	}
	// Private keys first, root-only; the certificates are public.
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{caKeyFile, keyPEM(caKey), 0o600}, {KeyFile, keyPEM(key), 0o600},
		{CAFile, certPEM(caDER), 0o644}, {CertFile, certPEM(der), 0o644},
	} {
		if err := safefile.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return false, err
		}
	}
	return true, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func keyPEM(k *ecdsa.PrivateKey) []byte {
	der, _ := x509.MarshalECPrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// Import copies a site's warewulf.key and warewulf.crt (and ca.crt, if
// the directory has one) from src into dir, after checking that the key
// matches the certificate. Without ca.crt the certificate is its own
// trust anchor for the nodes.
func Import(dir, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("import: %s is not a directory holding %s and %s", src, KeyFile, CertFile)
	}
	key, err := os.ReadFile(filepath.Join(src, KeyFile))
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	cert, err := os.ReadFile(filepath.Join(src, CertFile))
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := matches(cert, key); err != nil {
		return fmt.Errorf("import: %s and %s: %w", filepath.Join(src, KeyFile), filepath.Join(src, CertFile), err)
	}
	ca, err := os.ReadFile(filepath.Join(src, CAFile))
	if errors.Is(err, fs.ErrNotExist) {
		ca, err = cert, nil
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	os.Remove(filepath.Join(dir, caKeyFile)) // not the signer of the imported certificate
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{{KeyFile, key, 0o600}, {CertFile, cert, 0o644}, {CAFile, ca, 0o644}} {
		if err := safefile.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

func matches(certPEMData, keyPEMData []byte) error {
	b, _ := pem.Decode(certPEMData)
	if b == nil {
		return errors.New("the certificate is not PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return err
	}
	kb, _ := pem.Decode(keyPEMData)
	if kb == nil {
		return errors.New("the key is not PEM")
	}
	var pub any
	if k, err := x509.ParsePKCS8PrivateKey(kb.Bytes); err == nil {
		pub = k.(crypto.Signer).Public()
	} else if k, err := x509.ParseECPrivateKey(kb.Bytes); err == nil {
		pub = k.Public()
	} else if k, err := x509.ParsePKCS1PrivateKey(kb.Bytes); err == nil {
		pub = k.Public()
	} else {
		return errors.New("the key is not a PKCS#1, PKCS#8 or EC private key")
	}
	if p, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !p.Equal(c.PublicKey) {
		return errors.New("the key does not belong to the certificate")
	}
	return nil
}

// Export copies the key and certificates to dst.
func Export(dir, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, f := range []string{KeyFile, CertFile, CAFile} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return fmt.Errorf("export: %w (run wwctl configure tls first)", err)
		}
		perm := os.FileMode(0o644)
		if f == KeyFile {
			perm = 0o600
		}
		if err := safefile.WriteFile(filepath.Join(dst, f), data, perm); err != nil {
			return err
		}
	}
	return nil
}

// Describe lists the key directory's certificate, for `wwctl configure tls`.
func Describe(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return "", err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return "", fmt.Errorf("%s is not PEM", filepath.Join(dir, CertFile))
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", err
	}
	var ips []string
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	var s strings.Builder
	fmt.Fprintf(&s, "Private Key:\t%s\n", filepath.Join(dir, KeyFile))
	fmt.Fprintf(&s, "Certificate:\t%s\n", filepath.Join(dir, CertFile))
	fmt.Fprintf(&s, "CA (nodes trust it):\t%s\n", filepath.Join(dir, CAFile))
	fmt.Fprintf(&s, "Issuer:\t%s\n", c.Issuer)
	fmt.Fprintf(&s, "Subject:\t%s\n", c.Subject)
	fmt.Fprintf(&s, "Valid From:\t%s\n", c.NotBefore)
	fmt.Fprintf(&s, "Valid Until:\t%s\n", c.NotAfter)
	fmt.Fprintf(&s, "Serial Nr:\t%s\n", c.SerialNumber)
	fmt.Fprintf(&s, "IP Addresses:\t%s\n", strings.Join(ips, ", "))
	fmt.Fprintf(&s, "DNS Names:\t%s\n", strings.Join(c.DNSNames, ", "))
	return s.String(), nil
}
