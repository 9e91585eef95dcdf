package controller

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/image"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// CopyIPXE copies the iPXE binaries that `tftp: ipxe:` names from the iPXE
// source directory into the TFTP root, for sites whose own TFTP server
// serves them. Every source is checked before anything is written. A
// binary missing from the source (Debian ships no arm64 iPXE, for one) is
// skipped and returned in missing; when none is there it is an error.
// Each is found as IpxeBinary finds it and written under its `tftp: ipxe`
// name, the one DHCP hands out.
func CopyIPXE(cfg *config.Config) (written, missing []string, err error) {
	seen := map[string]bool{}
	var files []string
	for _, f := range cfg.TFTP.IPXE {
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	sort.Strings(files)
	src, dst := cfg.IpxeSourceDir(), cfg.TftpRoot()
	var present []string
	from := map[string]string{} // name in tftproot -> name in ipxesource
	for _, f := range files {
		// Copied under the name DHCP hands out, from wherever it is.
		found, alias := cfg.IpxeBinary(f)
		if alias {
			logrus.Debugf("tftp: %s is not in %s: copying %s, the same binary under another name", f, src, found)
		}
		from[f] = found
		st, err := os.Stat(filepath.Join(src, found))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, filepath.Join(src, f))
			continue
		case err != nil:
			return nil, nil, err
		case !st.Mode().IsRegular():
			return nil, nil, fmt.Errorf("tftp: ipxe: %q is not a regular file", filepath.Join(src, f))
		}
		present = append(present, f)
	}
	if len(present) == 0 {
		return nil, missing, fmt.Errorf("tftp: ipxe: none of %v is in %s (install the ipxe package or set paths: ipxesource)", files, src)
	}
	for _, f := range present {
		target := filepath.Join(dst, f)
		if err := copyFile(filepath.Join(src, from[f]), target); err != nil {
			return written, missing, err
		}
		written = append(written, target)
	}
	return written, missing, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return safefile.WriteFrom(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// loaderCopies are the TFTP names (under TFTPROOT/warewulf/) of the
// controller's shim and GRUB, per architecture: the names DHCP hands out
// with `grubboot` and the ones shim asks for beside itself (and upstream's
// grub.efi).
var loaderCopies = []struct {
	arch  string
	l     image.Loader
	names []string
}{
	{image.ArchX86_64, image.Shim, []string{"shim.efi"}},
	{image.ArchX86_64, image.Grub, []string{"grubx64.efi", "grub.efi"}},
	{image.ArchAarch64, image.Shim, []string{"shimaa64.efi"}},
	{image.ArchAarch64, image.Grub, []string{"grubaa64.efi"}},
}

// CopyLoaders copies this controller's signed shim and GRUB into
// TFTPROOT/warewulf/, for `grubboot` sites whose own TFTP server serves
// them (upstream's `configure tftp`), and writes chain, the first grub.cfg,
// as warewulf/grub.cfg and grub/grub.cfg. Such a server serves only these
// static files, so the chain must go on over HTTP: that needs a GRUB with
// the http module (not Debian's signed one; warewulfd's own TFTP serves
// those). An architecture the controller has no loaders for is returned in
// missing; having none at all is an error.
func CopyLoaders(cfg *config.Config, chain []byte) (written, missing []string, err error) {
	dir := filepath.Join(cfg.TftpRoot(), "warewulf")
	type copyJob struct{ src, dst string }
	var jobs []copyJob
	for _, c := range loaderCopies {
		f, src, err := image.OpenBootloader(cfg, "", c.l, c.arch)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s %s", c.arch, c.l))
			continue
		}
		f.Close()
		for _, n := range c.names {
			jobs = append(jobs, copyJob{src, filepath.Join(dir, n)})
		}
	}
	if len(jobs) == 0 {
		return nil, missing, fmt.Errorf("grubboot: this controller has no signed shim and GRUB (Debian: apt install shim-signed grub-efi-amd64-signed)")
	}
	for _, j := range jobs {
		if err := copyFile(j.src, j.dst); err != nil {
			return written, missing, err
		}
		written = append(written, j.dst)
	}
	for _, p := range []string{filepath.Join(dir, "grub.cfg"), filepath.Join(cfg.TftpRoot(), "grub", "grub.cfg")} {
		if err := safefile.WriteFile(p, chain, 0o644); err != nil {
			return written, missing, err
		}
		written = append(written, p)
	}
	return written, missing, nil
}
