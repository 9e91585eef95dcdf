package image

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Kernel is a kernel found in an image.
type Kernel struct {
	Version string
	Path    string // the vmlinuz file on the controller
	Rel     string // the same inside the image ("/boot/vmlinuz-6.1.0-9-amd64")
	Modules string // its modules directory inside the rootfs ("usr/lib/modules/6.1.0-9-amd64"), or ""
	Rescue  bool   // a rescue kernel (ListKernels only: never built nor booted by default)
}

// IsDebug reports a debug build of a kernel ("5.14.0-427.31.1.el9_4.aarch64+debug"),
// which, as upstream, is never an image's default.
func (k Kernel) IsDebug() bool { return isDebugVersion(k.Version) }

// ShortVersion is the kernel's version as upstream shows and matches it:
// the leading X.Y.Z[-N.N...] ("5.14.0-427.18.1"), "" if there is none
// (a rescue kernel).
func (k Kernel) ShortVersion() string { return shortVersion(k.Version) }

func isDebugVersion(v string) bool { return strings.Contains(v, "+debug") }

func isRescueVersion(v string) bool { return strings.Contains(v, "rescue") }

var shortVersionRE = regexp.MustCompile(`\d+\.\d+\.\d+(-[\d.]+)?`)

func shortVersion(v string) string {
	for _, m := range shortVersionRE.FindAllString(v, -1) {
		m = strings.TrimSuffix(m, ".")
		if !strings.Contains(m, "..") && !strings.HasSuffix(m, "-") {
			return m
		}
	}
	return ""
}

// FindKernels lists the kernels in rootfs that can be built and booted,
// newest first: /boot/vmlinuz-*, /boot/Image-* (SUSE's aarch64 name) and
// /lib/modules/*/vmlinuz (symlinks are followed inside the rootfs; rescue
// kernels are skipped). DefaultKernel picks the one a node boots.
func FindKernels(rootfs string) ([]Kernel, error) {
	return findKernels(rootfs, false)
}

// ListKernels is FindKernels with the rescue kernels of /boot too, for
// listing (as upstream's `image kernels` does).
func ListKernels(rootfs string) ([]Kernel, error) {
	return findKernels(rootfs, true)
}

func findKernels(rootfs string, rescue bool) ([]Kernel, error) {
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
				byVersion[e.Name()] = Kernel{Version: e.Name(), Path: p, Rel: "/lib/modules/" + e.Name() + "/vmlinuz", Modules: modulesOf(e.Name())}
			}
		}
	}
	for _, prefix := range []string{"Image-", "vmlinuz-"} { // vmlinuz- wins over Image-
		boots, _ := filepath.Glob(filepath.Join(rootfs, "boot", prefix+"*"))
		for _, b := range boots {
			v := strings.TrimPrefix(filepath.Base(b), prefix)
			isRescue := isRescueVersion(v)
			if v == "" || (isRescue && !rescue) {
				continue
			}
			p, err := securejoin.SecureJoin(rootfs, filepath.Join("boot", filepath.Base(b)))
			if err != nil {
				continue
			}
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				k := Kernel{Version: v, Path: p, Rel: "/boot/" + filepath.Base(b), Rescue: isRescue}
				if !isRescue {
					k.Modules = modulesOf(v)
				}
				byVersion[v] = k // /boot wins
			}
		}
	}
	out := make([]Kernel, 0, len(byVersion))
	for _, k := range byVersion {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return compareVersions(out[i].Version, out[j].Version) > 0 })
	return out, nil
}

// DefaultKernel is the kernel a node that names none boots: as upstream,
// the newest that is neither a debug nor a rescue kernel. ok is false when
// there is none (no kernel, or only debug ones: a node must name one).
func DefaultKernel(ks []Kernel) (k Kernel, ok bool) {
	i := pickKernel(len(ks), func(i int) string { return ks[i].Version }, "")
	if i < 0 {
		return Kernel{}, false
	}
	return ks[i], true
}

// ChooseKernel is the kernel of ks a node whose `kernel version` is want
// boots (want "": DefaultKernel). See pickKernel for what want may be.
func ChooseKernel(ks []Kernel, want string) (Kernel, bool) {
	i := pickKernel(len(ks), func(i int) string { return ks[i].Version }, want)
	if i < 0 {
		return Kernel{}, false
	}
	return ks[i], true
}

// pickKernel chooses among n kernels, newest first, given by version. want
// is, as upstream accepts in a node's `kernel version`:
//   - "": the newest kernel that is not a debug or rescue one;
//   - a version as this project names it ("6.1.0-9-amd64"): that kernel,
//     debug ones included;
//   - a path in the image ("/boot/vmlinuz-6.1.0-9-amd64",
//     "/lib/modules/6.1.0-9-amd64/vmlinuz"): the kernel of that file;
//   - the start of upstream's short version ("5.14.0-427.18.1", "5.14"):
//     the newest such kernel that is not a debug or rescue one.
//
// It returns -1 when none fits.
func pickKernel(n int, version func(int) string, want string) int {
	plain := func(i int) bool { v := version(i); return !isDebugVersion(v) && !isRescueVersion(v) }
	if want == "" {
		for i := 0; i < n; i++ {
			if plain(i) {
				return i
			}
		}
		return -1
	}
	for i := 0; i < n; i++ {
		if version(i) == want {
			return i
		}
	}
	if strings.HasPrefix(want, "/") {
		v := versionOfPath(want)
		for i := 0; v != "" && i < n; i++ {
			if version(i) == v {
				return i
			}
		}
		return -1
	}
	for i := 0; i < n; i++ {
		if plain(i) && strings.HasPrefix(shortVersion(version(i)), want) {
			return i
		}
	}
	return -1
}

// versionOfPath is the version of the kernel at an image path FindKernels
// looks at: /boot/vmlinuz-V, /boot/Image-V, /lib/modules/V/vmlinuz (and
// /usr/lib/modules/V/vmlinuz, where /lib usually points).
func versionOfPath(p string) string {
	p = path.Clean(p)
	dir, base := path.Split(p)
	switch {
	case dir == "/boot/" && strings.HasPrefix(base, "vmlinuz-"):
		return strings.TrimPrefix(base, "vmlinuz-")
	case dir == "/boot/" && strings.HasPrefix(base, "Image-"):
		return strings.TrimPrefix(base, "Image-")
	case base == "vmlinuz":
		for _, pre := range []string{"/lib/modules/", "/usr/lib/modules/"} {
			if v := strings.TrimSuffix(strings.TrimPrefix(dir, pre), "/"); strings.HasPrefix(dir, pre) && v != "" && !strings.Contains(v, "/") {
				return v
			}
		}
	}
	return ""
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
