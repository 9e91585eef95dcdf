package dhcp

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/etc"
	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// ConfigData is what the dnsmasq and dhcpd templates see.
type ConfigData struct {
	Server     string // dnsmasq or dhcpd
	Template   string // the template file rendered
	Ipaddr     string // the controller: next-server, DNS server
	Netmask    string
	Network    string
	Port       int
	Interfaces []string
	RangeStart string // "" when unknown MACs get nothing
	RangeEnd   string
	LeaseTime  int // seconds
	Proxy      bool
	Domain     string // dhcp: domain ("" when unset)
	TFTP       bool   // the generated dnsmasq serves TFTP itself
	IpxeDir    string // where the iPXE binaries are (TFTP root)
	// Boot is the shared boot-file decision (BootRules), first match wins.
	Boot []BootLine
	// Matches are the distinct dnsmasq condition tags the rules use.
	Matches []Match
	// Hosts are the static leases of every node.
	Hosts []HostLine
	// HostGroups are the distinct per-host option sets (netmask, router,
	// domain); each host carries its group's tag, so a dnsmasq config
	// has a few option lines, not three per node.
	HostGroups []HostGroup
	// Subnets are the networks of the controller and of every node address.
	Subnets []Subnet
}

// BootLine is a BootRule with its condition spelled for each server.
type BootLine struct {
	BootRule
	// DnsmasqTags is "tag:arch-7,tag:!uc-iPXE": the rule's conditions and
	// the negation of every earlier class-only rule, so that the
	// order of the lines does not matter to dnsmasq.
	DnsmasqTags string
	// DhcpdCondition is the rule as an ISC dhcpd boolean expression.
	DhcpdCondition string
}

// Match is one dnsmasq condition tag and what sets it.
type Match struct {
	Tag   string
	Kind  string // userclass, vendorclass or arch
	Value string
}

// HostLine is a static lease as the templates print it.
type HostLine struct {
	Host
	Tag     string // the dnsmasq tag of the host's HostGroup
	MAC     string
	Address string
	Mask    string
	Router  string // "" when unset
}

// HostGroup is one set of per-host options, shared by the hosts whose Tag
// it is.
type HostGroup struct {
	Tag                  string // "ww-1", "ww-2", ...
	Mask, Router, Domain string
}

// Subnet is a network the DHCP server must know to answer on it.
type Subnet struct {
	Network, Netmask string
}

// NewConfigData gathers the template data from warewulf.conf and nodes.conf.
func NewConfigData(cfg *config.Config, db *node.DB) (*ConfigData, error) {
	d := &ConfigData{
		Server: cfg.DHCP.Server, Ipaddr: cfg.Ipaddr, Netmask: cfg.Netmask, Network: cfg.Network,
		Port: cfg.Warewulf.Port, Interfaces: cfg.DHCP.Interfaces,
		RangeStart: cfg.DHCP.RangeStart, RangeEnd: cfg.DHCP.RangeEnd, LeaseTime: cfg.DHCP.LeaseTime,
		Proxy: cfg.DHCP.Proxy, Domain: cfg.DHCP.Domain, TFTP: cfg.DHCP.TFTP, IpxeDir: cfg.IpxeSourceDir(),
	}
	if (d.RangeStart == "") != (d.RangeEnd == "") {
		return nil, errors.New("dhcp: range start and range end must be set together")
	}
	rules, err := BootRules(cfg, cfg.Ipaddr)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var negate []string
	for _, r := range rules {
		if d.TFTP && !r.HTTP() {
			// dnsmasq serves ipxesource itself and knows no aliases: name
			// the file that is there.
			if found, alias := cfg.IpxeBinary(r.File); alias {
				logrus.Debugf("dhcp: %s is not in %s: handing out %s, the same binary under another name", r.File, d.IpxeDir, found)
				r.File = found
			}
		}
		conds := r.Conditions()
		tags := make([]string, 0, len(conds)+len(negate))
		for _, c := range conds {
			tags = append(tags, "tag:"+c)
			if !seen[c] {
				seen[c] = true
				d.Matches = append(d.Matches, matchOf(c, r))
			}
		}
		for _, n := range negate {
			tags = append(tags, "tag:!"+n)
		}
		if len(conds) == 1 && r.Arch < 0 { // architectures exclude each other already
			negate = append(negate, conds[0])
		}
		d.Boot = append(d.Boot, BootLine{BootRule: r, DnsmasqTags: strings.Join(tags, ","), DhcpdCondition: dhcpdCondition(r)})
	}
	groups := map[HostGroup]string{}
	subnets := map[Subnet]bool{{cfg.Network, cfg.Netmask}: true}
	d.Subnets = []Subnet{{cfg.Network, cfg.Netmask}}
	for _, h := range Hosts(cfg, db) {
		hl := HostLine{Host: h, MAC: h.Hwaddr.String(), Address: h.IP.String(), Mask: net.IP(h.Netmask).String()}
		if h.Gateway != nil {
			hl.Router = h.Gateway.String()
		}
		g := HostGroup{Mask: hl.Mask, Router: hl.Router, Domain: h.Domain}
		if groups[g] == "" {
			g2 := g
			g2.Tag = fmt.Sprintf("ww-%d", len(d.HostGroups)+1)
			groups[g] = g2.Tag
			d.HostGroups = append(d.HostGroups, g2)
		}
		hl.Tag = groups[g]
		d.Hosts = append(d.Hosts, hl)
		sn := Subnet{h.IP.Mask(h.Netmask).String(), hl.Mask}
		if !subnets[sn] {
			subnets[sn] = true
			d.Subnets = append(d.Subnets, sn)
		}
	}
	return d, nil
}

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
		c = append(c, "option arch = "+r.ArchHex())
	}
	if len(c) == 0 {
		return "true"
	}
	return strings.Join(c, " and ")
}

// TemplateFile is the template `wwctl configure dhcp` renders:
// DHCPTemplateDir/<template>-<server>.conf.tmpl.
func TemplateFile(cfg *config.Config) (string, error) {
	t := cfg.DHCP.Template
	if t == "" || strings.ContainsAny(t, "/\\") || strings.Contains(t, "..") {
		return "", fmt.Errorf("dhcp: template: %q is not a template name", t)
	}
	return filepath.Join(cfg.DHCPTemplateDir(), t+"-"+cfg.DHCP.Server+".conf.tmpl"), nil
}

// RenderConfig renders the dnsmasq or dhcpd config that `dhcp: server`
// names. The template is read from the sysconfdir; the shipped default is
// used when the site has none.
func RenderConfig(cfg *config.Config, db *node.DB) ([]byte, error) {
	switch cfg.DHCP.Server {
	case "dnsmasq":
	case "dhcpd":
		if cfg.DHCP.Proxy {
			return nil, errors.New("dhcp: proxy: ISC dhcpd cannot do proxy DHCP; use server: builtin or dnsmasq")
		}
	default:
		return nil, fmt.Errorf("dhcp: server: %q has no config to generate (it is built into warewulfd)", cfg.DHCP.Server)
	}
	file, err := TemplateFile(cfg)
	if err != nil {
		return nil, err
	}
	text, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) && cfg.DHCP.Template == "default" {
		text, err = etc.FS.ReadFile(filepath.ToSlash(filepath.Join("dhcp", filepath.Base(file))))
	}
	if err != nil {
		return nil, fmt.Errorf("dhcp: template: %w", err)
	}
	tmpl, err := template.New(filepath.Base(file)).Option("missingkey=error").Funcs(template.FuncMap{
		"join": strings.Join,
	}).Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("dhcp: template %s: %w", file, err)
	}
	data, err := NewConfigData(cfg, db)
	if err != nil {
		return nil, err
	}
	data.Template = file
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("dhcp: template %s: %w", file, err)
	}
	return buf.Bytes(), nil
}
