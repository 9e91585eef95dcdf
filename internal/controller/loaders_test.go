package controller

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// TestCopyLoaders: `configure tftp` with grubboot puts this controller's
// signed shim and GRUB (Debian's shim-signed, grub-efi-amd64-signed) into
// TFTPROOT/warewulf/ under the names DHCP and shim ask for, and the chain
// grub.cfg beside GRUB and in grub/ (Debian GRUB's prefix).
func TestCopyLoaders(t *testing.T) {
	const shim, grub = "/usr/lib/shim/shimx64.efi.signed", "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"
	_, err1 := os.Stat(shim)
	_, err2 := os.Stat(grub)
	testenv.Need(t, "needs shim-signed and grub-efi-amd64-signed (test/deps.sh)", err1 == nil && err2 == nil)
	cfg := testConfig(t, "tftp:\n  tftproot: tftp\n")
	chain := []byte("configfile (http,10.0.0.1:9873)/grub/${net_default_mac}\n")
	written, missing, err := CopyLoaders(cfg, chain)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %v; missing %v", written, missing)
	root := cfg.TftpRoot()
	for name, src := range map[string]string{"warewulf/shim.efi": shim, "warewulf/grubx64.efi": grub, "warewulf/grub.efi": grub} {
		want, _ := os.ReadFile(src)
		if got, err := os.ReadFile(filepath.Join(root, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v, %d bytes, want %s's %d", name, err, len(got), src, len(want))
		}
	}
	for _, name := range []string{"warewulf/grub.cfg", "grub/grub.cfg"} {
		if got, err := os.ReadFile(filepath.Join(root, name)); err != nil || !bytes.Equal(got, chain) {
			t.Errorf("%s: %v %q", name, err, got)
		}
	}
	// Debian's arm64 loaders do not install on amd64: reported, not fatal.
	if _, err := os.Stat("/usr/lib/shim/shimaa64.efi.signed"); err != nil && len(missing) == 0 {
		t.Error("missing arm64 loaders not reported")
	}
}
