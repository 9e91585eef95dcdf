package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// Loader is a network bootloader of the Secure Boot chain.
type Loader string

// The two loaders: shim (signed by Microsoft, holds the distribution's key)
// and GRUB (signed by the distribution).
const (
	Shim Loader = "shim"
	Grub Loader = "grub"
)

// Architectures a bootloader is looked up for, as uname -m names them.
const (
	ArchX86_64  = "x86_64"
	ArchAarch64 = "aarch64"
)

// loaderPaths lists, per loader and architecture, where distributions put
// their signed network bootloaders, most specific first. Debian's packages
// (shim-signed, grub-efi-*-signed) come first: their grubnet image is the
// one built to read its configuration from the network. Then upstream
// Warewulf's places and names (SUSE, Enterprise Linux, a grub-install'ed
// ESP). Names without an architecture suit any.
var loaderPaths = map[Loader]map[string][]string{
	Shim: {
		ArchX86_64: {
			"usr/lib/shim/shimx64.efi.signed",
			"usr/share/efi/*/shim.efi", "usr/share/efi/*/shim-sles.efi", "usr/share/efi/*/shimx64.efi", "usr/share/efi/*/shim-susesigned.efi",
			"usr/lib64/efi/shim.efi", "usr/lib64/efi/shim-sles.efi", "usr/lib64/efi/shimx64.efi", "usr/lib64/efi/shim-susesigned.efi",
			"boot/efi/EFI/*/shim.efi", "boot/efi/EFI/*/shim-sles.efi", "boot/efi/EFI/*/shimx64.efi", "boot/efi/EFI/*/shim-susesigned.efi",
		},
		ArchAarch64: {
			"usr/lib/shim/shimaa64.efi.signed",
			"usr/share/efi/*/shim.efi", "usr/share/efi/*/shimaa64.efi",
			"usr/lib64/efi/shim.efi", "usr/lib64/efi/shimaa64.efi",
			"boot/efi/EFI/*/shim.efi", "boot/efi/EFI/*/shimaa64.efi",
		},
	},
	Grub: {
		ArchX86_64: {
			"usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
			"usr/lib64/efi/grub-tpm.efi", "usr/lib64/efi/grub.efi", "usr/lib64/efi/grubx64.efi",
			"usr/share/grub2/*-efi/grub-tpm.efi", "usr/share/grub2/*-efi/grub.efi", "usr/share/grub2/*-efi/grubx64.efi",
			"usr/share/efi/*/grub-tpm.efi", "usr/share/efi/*/grub.efi", "usr/share/efi/*/grubx64.efi",
			"boot/efi/EFI/*/grub-tpm.efi", "boot/efi/EFI/*/grub.efi", "boot/efi/EFI/*/grubx64.efi",
		},
		ArchAarch64: {
			"usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed",
			"usr/lib64/efi/grub.efi", "usr/lib64/efi/grubaa64.efi",
			"usr/share/grub2/*-efi/grub.efi", "usr/share/grub2/*-efi/grubaa64.efi",
			"usr/share/efi/*/grub.efi", "usr/share/efi/*/grubaa64.efi",
			"boot/efi/EFI/*/grub.efi", "boot/efi/EFI/*/grubaa64.efi",
		},
	},
}

// ErrNoLoader is returned when neither the image nor the controller has
// the bootloader.
var ErrNoLoader = errors.New("no signed bootloader found")

// OpenBootloader opens the shim or GRUB binary that boots a node of image
// name: the image's own, as its signed kernel needs the loaders signed with
// the same key, else the controller's (also for a node with no image, as
// in discovery). An image that does not exist is an error, not a fallback.
// The image's rootfs is searched through os.Root, so a link inside it
// cannot lead out of it. It returns the file and where it came from.
func OpenBootloader(cfg *config.Config, name string, l Loader, arch string) (*os.File, string, error) {
	pats := loaderPaths[l][arch]
	if pats == nil {
		return nil, "", fmt.Errorf("no %s for architecture %q", l, arch)
	}
	if name != "" {
		if !Exists(cfg, name) {
			return nil, "", fmt.Errorf("image %q does not exist", name)
		}
		rootfs := cfg.ImageRootfs(name)
		root, err := os.OpenRoot(rootfs)
		if err != nil {
			return nil, "", err
		}
		defer root.Close()
		if f, rel := findLoader(root.FS(), pats, root.Open); f != nil {
			return f, filepath.Join(rootfs, rel), nil
		}
	}
	// The controller's own files, installed by root: links are followed.
	if f, rel := findLoader(os.DirFS("/"), pats, func(rel string) (*os.File, error) { return os.Open("/" + rel) }); f != nil {
		return f, "/" + rel, nil
	}
	if name != "" {
		return nil, "", fmt.Errorf("%w: no %s %s in image %q nor on this controller", ErrNoLoader, arch, l, name)
	}
	return nil, "", fmt.Errorf("%w: no %s %s on this controller", ErrNoLoader, arch, l)
}

// findLoader returns the first regular file matching pats in fsys, opened
// with open.
func findLoader(fsys fs.FS, pats []string, open func(string) (*os.File, error)) (*os.File, string) {
	for _, p := range pats {
		matches := []string{p}
		if strings.ContainsAny(p, "*?[") {
			matches, _ = fs.Glob(fsys, p)
		}
		for _, rel := range matches {
			f, err := open(rel)
			if err != nil {
				continue
			}
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				return f, rel
			}
			f.Close()
		}
	}
	return nil, ""
}
