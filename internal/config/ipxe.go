package config

import (
	"os"
	"path/filepath"
)

// ipxeAliases are the names under which distributions and iPXE builds
// ship the same iPXE binary: upstream Warewulf's default `tftp: ipxe` map
// names Fedora's files (ipxe-snponly-x86_64.efi), upstream's build script
// writes bin-<target>-<file>, Debian's `ipxe` package has snponly.efi. A
// name missing from ipxesource is served from the first alias present, so
// upstream's defaults boot from Debian's package and the other way round.
var ipxeAliases = [][]string{
	{"undionly.kpxe", "bin-x86_64-pcbios-undionly.kpxe", "bin-i386-pcbios-undionly.kpxe"},
	{"snponly.efi", "ipxe-snponly-x86_64.efi", "bin-x86_64-efi-snponly.efi", "x86_64-efi/snponly.efi"},
	{"ipxe.efi", "ipxe-x86_64.efi", "bin-x86_64-efi-ipxe.efi", "x86_64-efi/ipxe.efi"},
	{"arm64-efi/snponly.efi", "ipxe-snponly-arm64.efi", "bin-arm64-efi-snponly.efi"},
	{"arm64-efi/ipxe.efi", "ipxe-arm64.efi", "bin-arm64-efi-ipxe.efi"},
}

var ipxeAliasOf = func() map[string][]string {
	m := map[string][]string{}
	for _, group := range ipxeAliases {
		for _, n := range group {
			m[n] = group
		}
	}
	return m
}()

// IpxeBinary returns the name, relative to IpxeSourceDir, under which the
// iPXE binary that `tftp: ipxe` (or a client) calls name is found: name
// itself when it is there or is no known iPXE name (a site's own binaries
// keep their names), else the first alias present. alias reports that an
// alias was chosen. Every lookup of an iPXE binary in ipxesource goes
// through here. name must already be a checked relative name.
func (c *Config) IpxeBinary(name string) (found string, alias bool) {
	return ResolveIpxe(c.IpxeSourceDir(), name)
}

// ResolveIpxe is IpxeBinary for the iPXE directory dir.
func ResolveIpxe(dir, name string) (found string, alias bool) {
	key := filepath.Clean(name)
	group := ipxeAliasOf[key]
	if group == nil || isFile(filepath.Join(dir, name)) {
		return name, false
	}
	for _, a := range group {
		if a != key && isFile(filepath.Join(dir, a)) {
			return a, true
		}
	}
	return name, false
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
