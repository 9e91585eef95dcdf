package dhcp

import (
	"fmt"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// Plan is the boot-file decision (BootRules) as the dnsmasq and ISC dhcpd
// configs of the host overlay spell it: templates get it from the overlay
// function dhcpBoot, so a generated config answers each client as the
// built-in server does.
type Plan struct {
	// Rules are the rules in order; the first that matches wins.
	Rules []BootLine
	// Matches are the distinct dnsmasq condition tags the rules use, each
	// once, with what sets it.
	Matches []Match
	// NextServer is the controller's address: the next-server (TFTP
	// server) of the TFTP rules.
	NextServer string
}

// BootLine is a BootRule with its condition spelled for each server.
type BootLine struct {
	BootRule
	// DnsmasqTags is "tag:arch-7,tag:!uc-iPXE": the rule's conditions and
	// the negation of every earlier rule that has one condition only, so
	// that the order of dnsmasq's lines does not matter.
	DnsmasqTags string
	// DhcpdCondition is the rule as an ISC dhcpd boolean expression, with
	// option 93 under upstream's name for it, architecture-type.
	DhcpdCondition string
}

// Match is one dnsmasq condition tag and what sets it.
type Match struct {
	Tag   string // "uc-iPXE", "vc-HTTPClient", "arch-7"
	Kind  string // userclass, vendorclass or arch
	Value string
}

// NewPlan is the boot decision for the controller at `ipaddr`. With
// `dhcp: tftp` (dnsmasq serves ipxesource itself, and knows no aliases;
// ISC dhcpd serves no TFTP), a TFTP rule names the file that is there when
// the `tftp: ipxe` name is another distribution's (Debian's snponly.efi
// for upstream's ipxe-snponly-x86_64.efi).
func NewPlan(cfg *config.Config) (*Plan, error) {
	rules, err := BootRules(cfg, cfg.Ipaddr)
	if err != nil {
		return nil, err
	}
	p := &Plan{NextServer: cfg.Ipaddr}
	seen := map[string]bool{}
	var negate []string
	for _, r := range rules {
		if ServesTFTP(cfg) && !r.HTTP() {
			if found, alias := cfg.IpxeBinary(r.File); alias {
				logrus.Debugf("dhcp: %s is not in %s: handing out %s, the same binary under another name", r.File, cfg.IpxeSourceDir(), found)
				r.File = found
			}
		}
		conds := r.Conditions()
		tags := make([]string, 0, len(conds)+len(negate))
		for _, c := range conds {
			tags = append(tags, "tag:"+c)
			if !seen[c] {
				seen[c] = true
				p.Matches = append(p.Matches, matchOf(c, r))
			}
		}
		for _, n := range negate {
			tags = append(tags, "tag:!"+n)
		}
		if len(conds) == 1 && r.Arch < 0 { // architectures exclude each other already
			negate = append(negate, conds[0])
		}
		p.Rules = append(p.Rules, BootLine{BootRule: r, DnsmasqTags: strings.Join(tags, ","), DhcpdCondition: dhcpdCondition(r)})
	}
	return p, nil
}

// ServesTFTP reports whether the generated DHCP config serves the iPXE
// binaries by TFTP itself: `dhcp: tftp`, which a dnsmasq config acts on
// and an ISC dhcpd config cannot.
func ServesTFTP(cfg *config.Config) bool { return cfg.DHCP.TFTP && cfg.DHCP.Server != "dhcpd" }

func matchOf(tag string, r BootRule) Match {
	switch {
	case strings.HasPrefix(tag, "uc-"):
		return Match{tag, "userclass", r.UserClass}
	case strings.HasPrefix(tag, "vc-"):
		return Match{tag, "vendorclass", r.VendorClass}
	default:
		return Match{tag, "arch", fmt.Sprint(r.Arch)}
	}
}

func dhcpdCondition(r BootRule) string {
	var c []string
	if r.UserClass != "" {
		c = append(c, fmt.Sprintf("exists user-class and option user-class = %q", r.UserClass))
	}
	if r.VendorClass != "" {
		c = append(c, fmt.Sprintf("substring(option vendor-class-identifier, 0, %d) = %q", len(r.VendorClass), r.VendorClass))
	}
	if r.Arch >= 0 {
		c = append(c, "option architecture-type = "+r.ArchHex())
	}
	if len(c) == 0 {
		return "true"
	}
	return strings.Join(c, " and ")
}
