package controller

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// CopyIPXE copies the iPXE binaries that `tftp: ipxe:` names from the iPXE
// source directory into the TFTP root, for sites whose own TFTP server
// serves them. Every source is checked before anything is written. A
// binary missing from the source (Debian ships no arm64 iPXE, for one) is
// skipped and returned in missing; when none is there it is an error.
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
	for _, f := range files {
		st, err := os.Stat(filepath.Join(src, f))
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
		if err := copyFile(filepath.Join(src, f), target); err != nil {
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
