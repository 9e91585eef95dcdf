package dhcp

import (
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// TestBootFileGrub: with `grubboot: true`, UEFI clients of both
// architectures get shim (by TFTP from PXE, by URL with option 60 echoed
// for HTTP boot); legacy BIOS clients and iPXE still get iPXE.
func TestBootFileGrub(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Warewulf.GrubBoot = true
	db := testDB(t)
	s, err := New(cfg, func() *node.DB { return db })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		mods       []dhcpv4.Modifier
		file, echo string
	}{
		{"bios pxe", []dhcpv4.Modifier{arch(iana.INTEL_X86PC), vendor("PXEClient:Arch:00000:UNDI:002001")}, "undionly.kpxe", "PXEClient"},
		{"uefi x86_64", []dhcpv4.Modifier{arch(iana.EFI_X86_64), vendor("PXEClient:Arch:00007:UNDI:003016")}, "warewulf/shim.efi", "PXEClient"},
		{"uefi bc", []dhcpv4.Modifier{arch(iana.EFI_BC), vendor("PXEClient:Arch:00009:UNDI:003016")}, "warewulf/shim.efi", "PXEClient"},
		{"uefi arm64 0x0b", []dhcpv4.Modifier{arch(iana.EFI_ARM64), vendor("PXEClient:Arch:00011:UNDI:003000")}, "warewulf/shimaa64.efi", "PXEClient"},
		{"http boot x86_64", []dhcpv4.Modifier{arch(iana.EFI_X86_64_HTTP), vendor("HTTPClient:Arch:00016:UNDI:003001")}, "http://10.0.0.1:9873/efiboot/shim.efi", "HTTPClient"},
		{"http boot arm64 0x13", []dhcpv4.Modifier{arch(iana.EFI_ARM64_HTTP), vendor("HTTPClient:Arch:00019:UNDI:003001")}, "http://10.0.0.1:9873/efiboot/shimaa64.efi", "HTTPClient"},
		{"ipxe", []dhcpv4.Modifier{arch(iana.INTEL_X86PC), dhcpv4.WithUserClass("iPXE", false)}, "http://10.0.0.1:9873/ipxe/${mac}?assetkey=${asset:uristring}", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			offer, _ := exchange(t, s, discover(t, n1MAC, c.mods...), ServerPort)
			if offer == nil {
				t.Fatal("no OFFER")
			}
			if offer.BootFileName != c.file {
				t.Errorf("boot file %q, want %q", offer.BootFileName, c.file)
			}
			if got := offer.ClassIdentifier(); got != c.echo {
				t.Errorf("vendor class %q, want %q", got, c.echo)
			}
		})
	}

	// The plan the host overlay's dnsmasq and dhcpd configs render makes
	// the same decision (hostconfig_test.go checks the rendered files).
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tags, _ := planLines(t, p)
	mustHave(t, tags,
		"tag:vc-HTTPClient,tag:arch-16,tag:!uc-iPXE http://10.0.0.1:9873/efiboot/shim.efi",
		"tag:vc-HTTPClient,tag:arch-19,tag:!uc-iPXE http://10.0.0.1:9873/efiboot/shimaa64.efi",
		"tag:arch-7,tag:!uc-iPXE warewulf/shim.efi",
		"tag:arch-11,tag:!uc-iPXE warewulf/shimaa64.efi",
		"tag:arch-0,tag:!uc-iPXE undionly.kpxe",
	)
	for _, r := range p.Rules {
		if r.HTTP() && r.VendorClass == VendorHTTPBoot && r.EchoVendorClass != VendorHTTPBoot {
			t.Errorf("rule %s does not echo %s", r.Tag, VendorHTTPBoot)
		}
	}
}
