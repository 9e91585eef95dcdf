package dhcp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// planLines is the plan as "TAGS FILE" lines, and its dhcpd conditions.
func planLines(t *testing.T, p *Plan) (tags, conds []string) {
	t.Helper()
	for _, r := range p.Rules {
		tags = append(tags, r.DnsmasqTags+" "+r.File)
		conds = append(conds, r.DhcpdCondition)
	}
	return tags, conds
}

func mustHave(t *testing.T, got []string, want ...string) {
	t.Helper()
	all := strings.Join(got, "\n")
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w {
				found = true
			}
		}
		if !found {
			t.Errorf("missing %q in:\n%s", w, all)
		}
	}
}

// TestPlan: the boot rules as dnsmasq tags (each rule excluding the
// earlier single-condition ones, so dnsmasq's order does not matter) and
// dhcpd conditions (option 93 under upstream's name architecture-type),
// with each condition tag listed once.
func TestPlan(t *testing.T) {
	p, err := NewPlan(testConfig(t, "  server: dnsmasq\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.NextServer != "10.0.0.1" {
		t.Errorf("next server %q", p.NextServer)
	}
	tags, conds := planLines(t, p)
	mustHave(t, tags,
		"tag:uc-iPXE http://10.0.0.1:9873/ipxe/${mac}?assetkey=${asset:uristring}",
		"tag:vc-HTTPClient,tag:arch-16,tag:!uc-iPXE http://10.0.0.1:9873/efi/ipxe-snponly-x86_64.efi",
		"tag:arch-0,tag:!uc-iPXE undionly.kpxe",
		"tag:arch-7,tag:!uc-iPXE ipxe-snponly-x86_64.efi",
		"tag:arch-11,tag:!uc-iPXE arm64-efi/snponly.efi",
	)
	mustHave(t, conds,
		`exists user-class and option user-class = "iPXE"`,
		`substring(option vendor-class-identifier, 0, 10) = "HTTPClient" and option architecture-type = 00:10`,
		"option architecture-type = 00:0b",
	)
	seen := map[string]bool{}
	for _, m := range p.Matches {
		if seen[m.Tag] {
			t.Errorf("tag %s listed twice", m.Tag)
		}
		seen[m.Tag] = true
	}
	want := map[string]Match{
		"uc-iPXE":       {"uc-iPXE", "userclass", "iPXE"},
		"vc-HTTPClient": {"vc-HTTPClient", "vendorclass", "HTTPClient"},
		"arch-9":        {"arch-9", "arch", "9"},
	}
	for _, m := range p.Matches {
		if w, ok := want[m.Tag]; ok && m != w {
			t.Errorf("match %+v, want %+v", m, w)
		}
		delete(want, m.Tag)
	}
	if len(want) != 0 {
		t.Errorf("matches %v lack %v", p.Matches, want)
	}

	cfg := testConfig(t, "")
	cfg.TFTP.IPXE["zz"] = "x.efi"
	if _, err := NewPlan(cfg); err == nil || !strings.Contains(err.Error(), `"zz"`) {
		t.Errorf("bad tftp: ipxe key: %v", err)
	}
}

// With `dhcp: tftp` dnsmasq serves ipxesource itself and knows no
// aliases: the plan names the file that is there (Debian's snponly.efi for
// upstream's default ipxe-snponly-x86_64.efi), and keeps upstream's name
// where warewulfd serves it (HTTP boot) or where no file matches.
func TestPlanTFTPNamesPresentFile(t *testing.T) {
	src := t.TempDir()
	for _, f := range []string{"undionly.kpxe", "snponly.efi"} {
		os.WriteFile(filepath.Join(src, f), []byte(f), 0o644)
	}
	cfg := testConfig(t, "  server: dnsmasq\n  tftp: true\n")
	cfg.Paths.IpxeSource = src
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tags, _ := planLines(t, p)
	mustHave(t, tags,
		"tag:arch-7,tag:!uc-iPXE snponly.efi",
		"tag:arch-9,tag:!uc-iPXE snponly.efi",
		"tag:arch-0,tag:!uc-iPXE undionly.kpxe",
		"tag:arch-11,tag:!uc-iPXE arm64-efi/snponly.efi",
		"tag:vc-HTTPClient,tag:arch-16,tag:!uc-iPXE http://10.0.0.1:9873/efi/ipxe-snponly-x86_64.efi",
	)
	cfg.DHCP.TFTP = false // another TFTP server serves `configure tftp`'s copies
	p, err = NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tags, _ = planLines(t, p)
	mustHave(t, tags, "tag:arch-7,tag:!uc-iPXE ipxe-snponly-x86_64.efi")
}
