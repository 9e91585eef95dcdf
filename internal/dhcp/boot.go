package dhcp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// PXE client architectures (option 93, RFC 4578 and the IANA registry) that
// the boot rules name.
const (
	ArchBIOS       = 0
	ArchEFIx86_64  = 7
	ArchEFIBC      = 9
	ArchEFIArm64   = 11
	ArchHTTPx86_64 = 16
	ArchHTTPArm64  = 19
)

// Class names that steer the boot decision.
const (
	UserClassIPXE   = "iPXE"       // option 77 sent by a running iPXE
	VendorPXE       = "PXEClient"  // option 60 prefix of a PXE ROM
	VendorHTTPBoot  = "HTTPClient" // option 60 prefix of UEFI HTTP boot
	IpxeScriptPath  = "/ipxe/"     // warewulfd's per-node iPXE script
	EFIHTTPBootPath = "/efi/"      // warewulfd serves the iPXE EFI binaries here for HTTP boot
	EFIBootPath     = "/efiboot/"  // warewulfd serves shim, GRUB and grub.cfg here (upstream's route)
	TFTPGrubDir     = "warewulf/"  // warewulfd's TFTP names of shim and GRUB (upstream's)
)

// shimNames are the names of shim for each UEFI architecture, under
// TFTPGrubDir and EFIBootPath; shim then asks for GRUB beside itself.
var shimNames = []struct {
	tag       string
	http, pxe []int
	file      string
}{
	{"x86_64", []int{ArchHTTPx86_64}, []int{ArchEFIx86_64, ArchEFIBC}, "shim.efi"},
	{"arm64", []int{ArchHTTPArm64}, []int{ArchEFIArm64}, "shimaa64.efi"},
}

// BootRule is one line of the boot-file decision: a client that matches
// every condition that is set gets File. Rules are tried in order and the
// first match wins; the built-in server evaluates them with Match, and the
// dnsmasq and dhcpd templates render the same list, so all three answer a
// client alike.
type BootRule struct {
	// Tag names the rule (dnsmasq tag, log line).
	Tag string
	// UserClass, when set, must equal the client's option 77.
	UserClass string
	// VendorClass, when set, must prefix the client's option 60.
	VendorClass string
	// Arch, when >= 0, must equal the client's option 93.
	Arch int
	// File is a TFTP path (relative to the iPXE directory) or an http:// URL.
	File string
	// EchoVendorClass is sent back as option 60 (UEFI HTTP boot requires
	// "HTTPClient" in the answer).
	EchoVendorClass string
}

// HTTP reports whether the rule's file is fetched over HTTP, not TFTP.
func (r BootRule) HTTP() bool { return strings.HasPrefix(r.File, "http://") }

// ArchHex is Arch as the four hex digits dhcpd compares option 93 with.
func (r BootRule) ArchHex() string { return fmt.Sprintf("%02x:%02x", r.Arch>>8, r.Arch&0xff) }

// Conditions lists the rule's condition tags for dnsmasq: "uc-iPXE",
// "vc-HTTPClient", "arch-7".
func (r BootRule) Conditions() []string {
	var c []string
	if r.UserClass != "" {
		c = append(c, "uc-"+r.UserClass)
	}
	if r.VendorClass != "" {
		c = append(c, "vc-"+r.VendorClass)
	}
	if r.Arch >= 0 {
		c = append(c, "arch-"+strconv.Itoa(r.Arch))
	}
	return c
}

// Client is what a DHCP request tells about how it boots.
type Client struct {
	Arch        int // option 93, -1 when absent
	UserClass   []string
	VendorClass string
}

// ClientOf reads the boot-relevant options of a request.
func ClientOf(m *dhcpv4.DHCPv4) Client {
	c := Client{Arch: -1, VendorClass: m.ClassIdentifier()}
	if a := m.Options.Get(dhcpv4.OptionClientSystemArchitectureType); len(a) >= 2 {
		c.Arch = int(binary.BigEndian.Uint16(a))
	}
	c.UserClass = userClasses(m.Options.Get(dhcpv4.OptionUserClassInformation))
	return c
}

// userClasses decodes option 77, which iPXE sends as a bare string and
// RFC 3004 clients as length-prefixed strings; both readings are kept.
func userClasses(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	out := []string{string(bytes.TrimRight(b, "\x00"))}
	for rest := b; len(rest) > 0; {
		n := int(rest[0])
		if n == 0 || n+1 > len(rest) {
			break
		}
		out = append(out, string(rest[1:n+1]))
		rest = rest[n+1:]
	}
	return out
}

// PXE reports whether the client is a network-boot firmware or iPXE.
func (c Client) PXE() bool {
	return c.Arch >= 0 || strings.HasPrefix(c.VendorClass, VendorPXE) ||
		strings.HasPrefix(c.VendorClass, VendorHTTPBoot) || c.hasUserClass(UserClassIPXE)
}

func (c Client) hasUserClass(uc string) bool {
	for _, u := range c.UserClass {
		if u == uc {
			return true
		}
	}
	return false
}

// Match reports whether the client meets every condition of r.
func (r BootRule) Match(c Client) bool {
	if r.UserClass != "" && !c.hasUserClass(r.UserClass) {
		return false
	}
	if r.VendorClass != "" && !strings.HasPrefix(c.VendorClass, r.VendorClass) {
		return false
	}
	if r.Arch >= 0 && c.Arch != r.Arch {
		return false
	}
	return true
}

// Choose returns the first rule that matches c, or false.
func Choose(rules []BootRule, c Client) (BootRule, bool) {
	for _, r := range rules {
		if r.Match(c) {
			return r, true
		}
	}
	return BootRule{}, false
}

// BootRules is the boot-file decision for a controller reachable at
// serverIP: iPXE gets its per-node script, UEFI HTTP boot gets the EFI iPXE
// binary over HTTP, and PXE firmware gets the iPXE binary that the
// `tftp: ipxe:` map names for its architecture, by TFTP. With `grubboot`,
// UEFI clients get shim instead (by HTTP for HTTP boot, else by TFTP),
// which loads GRUB; legacy BIOS clients still get iPXE.
func BootRules(cfg *config.Config, serverIP string) ([]BootRule, error) {
	base := fmt.Sprintf("http://%s:%d", serverIP, cfg.Warewulf.Port)
	rules := []BootRule{{
		Tag: "ipxe", UserClass: UserClassIPXE, Arch: -1,
		// iPXE expands the settings: the MAC and the SMBIOS asset tag,
		// which warewulfd checks when the node has an asset key.
		File: base + IpxeScriptPath + "${mac}?assetkey=${asset:uristring}",
	}}
	if cfg.Warewulf.GrubBoot {
		for _, s := range shimNames {
			for _, a := range s.http {
				rules = append(rules, BootRule{Tag: "shim-http-" + s.tag, VendorClass: VendorHTTPBoot, Arch: a,
					File: base + EFIBootPath + s.file, EchoVendorClass: VendorHTTPBoot})
			}
			for _, a := range s.pxe {
				rules = append(rules, BootRule{Tag: "shim-" + strconv.Itoa(a), Arch: a, File: TFTPGrubDir + s.file})
			}
		}
	}
	arches := map[int]string{}
	for key, file := range cfg.TFTP.IPXE {
		arch, err := ParseArch(key)
		if err != nil {
			return nil, fmt.Errorf("tftp: ipxe: %w", err)
		}
		arches[arch] = file
	}
	for _, h := range []struct {
		tag       string
		http, pxe int
	}{{"http-x86_64", ArchHTTPx86_64, ArchEFIx86_64}, {"http-arm64", ArchHTTPArm64, ArchEFIArm64}} {
		if file, ok := arches[h.pxe]; ok {
			rules = append(rules, BootRule{
				Tag: h.tag, VendorClass: VendorHTTPBoot, Arch: h.http,
				File: base + EFIHTTPBootPath + file, EchoVendorClass: VendorHTTPBoot,
			})
		}
	}
	keys := make([]int, 0, len(arches))
	for a := range arches {
		keys = append(keys, a)
	}
	sort.Ints(keys)
	for _, a := range keys {
		rules = append(rules, BootRule{Tag: "pxe-" + strconv.Itoa(a), Arch: a, File: arches[a]})
	}
	return rules, nil
}

// ParseArch reads a `tftp: ipxe:` key: "00:0B" (two hex bytes, the form
// Warewulf uses), "000B" or "0x0b".
func ParseArch(key string) (int, error) {
	s := strings.ToLower(strings.ReplaceAll(key, ":", ""))
	s = strings.TrimPrefix(s, "0x")
	v, err := strconv.ParseUint(s, 16, 16)
	if err != nil || s == "" {
		return 0, fmt.Errorf("%q is not a client architecture (like \"00:07\")", key)
	}
	return int(v), nil
}
