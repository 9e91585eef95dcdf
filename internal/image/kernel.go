package image

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Kernel is a kernel found in an image.
type Kernel struct {
	Version string
	Path    string // the vmlinuz file on the controller
	Modules string // its modules directory inside the rootfs ("usr/lib/modules/6.1.0-9-amd64"), or ""
}

// FindKernels lists the kernels in rootfs, newest first: /boot/vmlinuz-*
// and /lib/modules/*/vmlinuz (symlinks are followed inside the rootfs;
// rescue kernels are skipped).
func FindKernels(rootfs string) ([]Kernel, error) {
	byVersion := map[string]Kernel{}
	modDir := resolveRel(rootfs, "lib/modules")
	modulesOf := func(v string) string {
		if modDir == "" {
			return ""
		}
		if st, err := os.Stat(filepath.Join(rootfs, modDir, v)); err == nil && st.IsDir() {
			return filepath.ToSlash(filepath.Join(modDir, v))
		}
		return ""
	}
	if modDir != "" {
		ents, _ := os.ReadDir(filepath.Join(rootfs, modDir))
		for _, e := range ents {
			p, err := securejoin.SecureJoin(rootfs, filepath.Join(modDir, e.Name(), "vmlinuz"))
			if err != nil {
				continue
			}
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				byVersion[e.Name()] = Kernel{Version: e.Name(), Path: p, Modules: modulesOf(e.Name())}
			}
		}
	}
	boots, _ := filepath.Glob(filepath.Join(rootfs, "boot", "vmlinuz-*"))
	for _, b := range boots {
		v := strings.TrimPrefix(filepath.Base(b), "vmlinuz-")
		if v == "" || strings.Contains(v, "rescue") {
			continue
		}
		p, err := securejoin.SecureJoin(rootfs, filepath.Join("boot", filepath.Base(b)))
		if err != nil {
			continue
		}
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			byVersion[v] = Kernel{Version: v, Path: p, Modules: modulesOf(v)} // /boot wins
		}
	}
	out := make([]Kernel, 0, len(byVersion))
	for _, k := range byVersion {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return compareVersions(out[i].Version, out[j].Version) > 0 })
	return out, nil
}

// resolveRel resolves rel inside rootfs, following symlinks as if rootfs
// were "/", and returns it relative to rootfs if it is a directory.
func resolveRel(rootfs, rel string) string {
	p, err := securejoin.SecureJoin(rootfs, rel)
	if err != nil {
		return ""
	}
	st, err := os.Stat(p)
	if err != nil || !st.IsDir() {
		return ""
	}
	r, err := filepath.Rel(rootfs, p)
	if err != nil || r == "." || strings.HasPrefix(r, "..") {
		return ""
	}
	return filepath.ToSlash(r)
}

// compareVersions orders kernel versions: runs of digits compare as
// numbers, everything else bytewise ("6.1.0-10" > "6.1.0-9").
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		ca, ra := chunk(a)
		cb, rb := chunk(b)
		da, db := isDigit(ca[0]), isDigit(cb[0])
		switch {
		case da && db:
			ca, cb = strings.TrimLeft(ca, "0"), strings.TrimLeft(cb, "0")
			if len(ca) != len(cb) {
				return sign(len(ca) - len(cb))
			}
			if c := strings.Compare(ca, cb); c != 0 {
				return c
			}
		case da != db:
			if da {
				return 1
			}
			return -1
		default:
			if c := strings.Compare(ca, cb); c != 0 {
				return c
			}
		}
		a, b = ra, rb
	}
	return sign(len(a) - len(b))
}

func chunk(s string) (string, string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func sign(n int) int {
	switch {
	case n > 0:
		return 1
	case n < 0:
		return -1
	}
	return 0
}
