package image

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeLoader(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readLoader(t *testing.T, f *os.File) string {
	t.Helper()
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOpenBootloader: the image's loaders for its architecture, in the
// order of the search list (Debian's, then upstream's places); never
// through a link out of the image; the controller's when the image has
// none; an error for an image that does not exist.
func TestOpenBootloader(t *testing.T) {
	cfg := sandbox(t)
	root := cfg.ImageRootfs("el")
	writeLoader(t, filepath.Join(root, "boot/efi/EFI/rocky/shimx64.efi"), "rocky shim")
	writeLoader(t, filepath.Join(root, "boot/efi/EFI/rocky/grubx64.efi"), "rocky grub")
	writeLoader(t, filepath.Join(root, "usr/lib/shim/shimaa64.efi.signed"), "debian arm64 shim")
	for _, c := range []struct {
		l          Loader
		arch, want string
	}{
		{Shim, ArchX86_64, "rocky shim"},
		{Grub, ArchX86_64, "rocky grub"},
		{Shim, ArchAarch64, "debian arm64 shim"},
	} {
		f, from, err := OpenBootloader(cfg, "el", c.l, c.arch)
		if err != nil {
			t.Fatalf("%s %s: %v", c.arch, c.l, err)
		}
		if got := readLoader(t, f); got != c.want || !strings.HasPrefix(from, root) {
			t.Errorf("%s %s: %q from %s, want %q", c.arch, c.l, got, from, c.want)
		}
	}
	// Debian's place comes first.
	writeLoader(t, filepath.Join(root, "usr/lib/shim/shimx64.efi.signed"), "debian shim")
	if f, _, err := OpenBootloader(cfg, "el", Shim, ArchX86_64); err != nil || readLoader(t, f) != "debian shim" {
		t.Errorf("Debian's shim not preferred: %v", err)
	}

	// A link out of the image is not followed: the controller's is used,
	// or none.
	escape := cfg.ImageRootfs("escape")
	os.MkdirAll(filepath.Join(escape, "usr/lib/grub/arm64-efi-signed"), 0o755)
	secret := filepath.Join(t.TempDir(), "secret")
	writeLoader(t, secret, "controller secret")
	if err := os.Symlink(secret, filepath.Join(escape, "usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed")); err != nil {
		t.Fatal(err)
	}
	f, from, err := OpenBootloader(cfg, "escape", Grub, ArchAarch64)
	if err == nil {
		got := readLoader(t, f)
		if got == "controller secret" || strings.HasPrefix(from, escape) {
			t.Fatalf("followed a link out of the image: %s", from)
		}
	} else if !errors.Is(err, ErrNoLoader) {
		t.Errorf("escape: %v", err)
	}

	if _, _, err := OpenBootloader(cfg, "missing", Shim, ArchX86_64); err == nil || !strings.Contains(err.Error(), `"missing" does not exist`) {
		t.Errorf("missing image: %v", err)
	}
	if _, _, err := OpenBootloader(cfg, "el", Shim, "riscv64"); err == nil {
		t.Error("unknown architecture accepted")
	}
	// No image: the controller's own (Debian's shim-signed here, when
	// installed).
	if _, err := os.Stat("/usr/lib/shim/shimx64.efi.signed"); err == nil {
		f, from, err := OpenBootloader(cfg, "", Shim, ArchX86_64)
		if err != nil || from != "/usr/lib/shim/shimx64.efi.signed" {
			t.Errorf("controller's shim: %s, %v", from, err)
		} else {
			f.Close()
		}
	}
}
