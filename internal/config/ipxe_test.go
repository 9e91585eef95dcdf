package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// TestResolveIpxe: upstream's names find Debian's files and the other way
// round; a name that is there, or that is no known iPXE name, is kept.
func TestResolveIpxe(t *testing.T) {
	debian := t.TempDir() // the layout of Debian's ipxe package
	for _, f := range []string{"undionly.kpxe", "snponly.efi", "ipxe.efi"} {
		os.WriteFile(filepath.Join(debian, f), []byte(f), 0o644)
	}
	fedora := t.TempDir() // Fedora's ipxe-bootimgs-x86 and -aarch64
	os.MkdirAll(filepath.Join(fedora, "arm64-efi"), 0o755)
	for _, f := range []string{"undionly.kpxe", "ipxe-snponly-x86_64.efi", "ipxe-x86_64.efi", "arm64-efi/snponly.efi"} {
		os.WriteFile(filepath.Join(fedora, f), []byte(f), 0o644)
	}
	build := t.TempDir() // upstream's scripts/build-ipxe.sh
	os.WriteFile(filepath.Join(build, "bin-arm64-efi-snponly.efi"), nil, 0o644)
	os.Mkdir(filepath.Join(debian, "dir.efi"), 0o755)

	for _, c := range []struct {
		dir, name, want string
		alias           bool
	}{
		{debian, "ipxe-snponly-x86_64.efi", "snponly.efi", true},
		{debian, "bin-x86_64-efi-snponly.efi", "snponly.efi", true},
		{debian, "x86_64-efi/snponly.efi", "snponly.efi", true},
		{debian, "ipxe-x86_64.efi", "ipxe.efi", true},
		{debian, "bin-x86_64-pcbios-undionly.kpxe", "undionly.kpxe", true},
		{debian, "snponly.efi", "snponly.efi", false},
		{debian, "undionly.kpxe", "undionly.kpxe", false},
		// Debian ships no arm64 iPXE: the name stays, and is missing.
		{debian, "arm64-efi/snponly.efi", "arm64-efi/snponly.efi", false},
		{debian, "ipxe-snponly-arm64.efi", "ipxe-snponly-arm64.efi", false},
		// A site's own names are never replaced.
		{debian, "site/my-ipxe.efi", "site/my-ipxe.efi", false},
		{debian, "dir.efi", "dir.efi", false},
		{fedora, "snponly.efi", "ipxe-snponly-x86_64.efi", true},
		{fedora, "ipxe-snponly-x86_64.efi", "ipxe-snponly-x86_64.efi", false},
		{fedora, "ipxe-snponly-arm64.efi", "arm64-efi/snponly.efi", true},
		{fedora, "ipxe.efi", "ipxe-x86_64.efi", true},
		{build, "arm64-efi/snponly.efi", "bin-arm64-efi-snponly.efi", true},
		{build, "ipxe-snponly-x86_64.efi", "ipxe-snponly-x86_64.efi", false},
	} {
		got, alias := ResolveIpxe(c.dir, c.name)
		if got != c.want || alias != c.alias {
			t.Errorf("%s in %s: got %q, %v; want %q, %v", c.name, filepath.Base(c.dir), got, alias, c.want, c.alias)
		}
	}
}

// TestDefaultIpxeUpstream: left out, `tftp: ipxe` is upstream's map, and
// on a Debian controller every x86 name of it is found.
func TestDefaultIpxeUpstream(t *testing.T) {
	c, err := Parse([]byte("ipaddr: 10.0.0.1\nnetmask: 255.255.255.0\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"00:00": "undionly.kpxe", "00:07": "ipxe-snponly-x86_64.efi",
		"00:09": "ipxe-snponly-x86_64.efi", "00:0B": "arm64-efi/snponly.efi"}
	if len(c.TFTP.IPXE) != len(want) {
		t.Fatalf("tftp: ipxe = %v, want %v", c.TFTP.IPXE, want)
	}
	for k, v := range want {
		if c.TFTP.IPXE[k] != v {
			t.Errorf("tftp: ipxe: %s = %q, want %q", k, c.TFTP.IPXE[k], v)
		}
	}
	if got := c.SSH.KeyTypes; len(got) != 3 || got[0] != "ed25519" || got[1] != "ecdsa" || got[2] != "rsa" {
		t.Errorf("ssh: key types = %v, want upstream's [ed25519 ecdsa rsa]", got)
	}
	_, err = os.Stat("/usr/lib/ipxe/snponly.efi")
	testenv.Need(t, "needs Debian's ipxe package (test/deps.sh)", err == nil)
	for _, arch := range []string{"00:00", "00:07", "00:09"} {
		if found, _ := c.IpxeBinary(c.TFTP.IPXE[arch]); !isFile(filepath.Join(c.IpxeSourceDir(), found)) {
			t.Errorf("%s: %s not found in %s", arch, c.TFTP.IPXE[arch], c.IpxeSourceDir())
		}
	}
}
