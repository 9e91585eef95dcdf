package node

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	log "github.com/sirupsen/logrus"
)

var labelRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$`)

// ValidName checks a node or profile name: letters, digits, '_', '-' and
// '.' (upstream sites use test_node1 and n1.rack2), at most 63, usable as
// a file name.
func ValidName(name string) error {
	if !labelRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%q is not a valid name (letters, digits, '_', '-' and '.', at most 63, starting with a letter, digit or '_')", name)
	}
	return nil
}

func errNotBool(s string) error { return fmt.Errorf("%q is not a boolean (true/false, yes/no)", s) }

// NormalizeMAC returns a MAC address in lowercase colon form, or an error
// naming the bad value.
func NormalizeMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("hwaddr %q is not a MAC address (want aa:bb:cc:dd:ee:ff)", s)
	}
	return hw.String(), nil
}

func checkIPv4(key, s string) error {
	if s != "" && net.ParseIP(s).To4() == nil {
		return fmt.Errorf("%s %q is not an IPv4 address", key, s)
	}
	return nil
}

func checkNetmask(s string) error {
	if s == "" {
		return nil
	}
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return fmt.Errorf("netmask %q is not a netmask", s)
	}
	if ones, bits := net.IPMask(ip).Size(); ones == 0 && bits == 0 {
		return fmt.Errorf("netmask %q is not a netmask (bits must be contiguous)", s)
	}
	return nil
}

// Validate checks every node and profile: names, formats, that profiles
// exist, and that no hwaddr or ipaddr is used twice. It normalizes MAC
// addresses to lowercase colon form.
func (db *DB) Validate() error {
	for _, name := range db.ProfileNames() {
		if err := ValidName(name); err != nil {
			return fmt.Errorf("profile %s", err)
		}
		if err := db.Profiles[name].check(); err != nil {
			return fmt.Errorf("profile %s: %w", name, err)
		}
	}
	macs := map[string]string{}
	ips := map[string]string{}
	folded := map[string]string{} // host names ignore case: n1 and N1 are one host
	sharedHW := map[string][]string{}
	var sameDevice []string // "n1 (eth0: a, b)"
	defer func() {
		for _, hw := range sortedKeys(sharedHW) {
			if nodes := sharedHW[hw]; len(nodes) > 1 {
				log.Warnf("nodes.conf: hwaddr %s comes from a profile and is shared by %d nodes: %s", hw, len(nodes), strings.Join(nodes, ", "))
			}
		}
		if len(sameDevice) > 0 {
			log.Warnf("nodes.conf: %d nodes have network devices that name the same interface (%s): overlays that write a file per interface keep the last of them", len(sameDevice), abbreviate(sameDevice, 5))
		}
	}()
	for _, name := range db.NodeNames() {
		if err := ValidName(name); err != nil {
			return fmt.Errorf("node %s", err)
		}
		if other, ok := folded[strings.ToLower(name)]; ok {
			return fmt.Errorf("node %s: the same name as node %s but for case", name, other)
		}
		folded[strings.ToLower(name)] = name
		c := db.Nodes[name]
		if c == nil {
			c = &Conf{}
			db.Nodes[name] = c
		}
		if err := c.check(); err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		if err := c.Discoverable.check("discoverable"); err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		n, err := db.Merged(name)
		if err != nil {
			return err
		}
		byDevice := map[string][]string{}
		for _, dev := range sortedKeys(n.NetDevs) {
			d := n.NetDevs[dev]
			if d.Device != "" {
				byDevice[d.Device] = append(byDevice[d.Device], dev)
			}
			own := c.NetDevs[dev]
			if own == nil {
				own = &NetDev{}
			}
			// An address a profile gives is shared by its nodes by design
			// (upstream loads such a nodes.conf): only the nodes' own
			// addresses must be unique.
			if d.Hwaddr != "" && own.Hwaddr == "" {
				sharedHW[d.Hwaddr] = append(sharedHW[d.Hwaddr], name)
			} else if d.Hwaddr != "" {
				if other, ok := macs[d.Hwaddr]; ok {
					return fmt.Errorf("node %s: network device %s: hwaddr %s is already used by %s", name, dev, d.Hwaddr, other)
				}
				macs[d.Hwaddr] = "node " + name
			}
			if d.Ipaddr != "" && own.Ipaddr == "" {
				continue
			}
			if d.Ipaddr != "" {
				if other, ok := ips[d.Ipaddr]; ok {
					return fmt.Errorf("node %s: network device %s: ipaddr %s is already used by %s", name, dev, d.Ipaddr, other)
				}
				ips[d.Ipaddr] = "node " + name
			}
		}
		for _, iface := range sortedKeys(byDevice) {
			if devs := byDevice[iface]; len(devs) > 1 {
				sameDevice = append(sameDevice, fmt.Sprintf("%s (%s: %s)", name, iface, strings.Join(devs, ", ")))
			}
		}
	}
	return nil
}

// abbreviate joins the first n items and counts the rest.
func abbreviate(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// check validates the values one node or profile sets on its own.
func (c *Conf) check() error {
	if err := c.checkInput(); err != nil {
		return err
	}
	for _, dev := range sortedKeys(c.NetDevs) {
		d := c.NetDevs[dev]
		if d == nil {
			c.NetDevs[dev] = &NetDev{}
			continue
		}
		if err := d.check(); err != nil {
			return fmt.Errorf("network device %s: %w", dev, err)
		}
	}
	if i := c.Ipmi; i != nil {
		if err := i.Write.check("ipmi write"); err != nil {
			return err
		}
		for key, v := range map[string]string{"ipmi ipaddr": i.Ipaddr, "ipmi gateway": i.Gateway} {
			if err := checkIPv4(key, v); err != nil {
				return err
			}
		}
		if err := checkNetmask(i.Netmask); err != nil {
			return fmt.Errorf("ipmi %w", err)
		}
		if i.Port != "" {
			if p, err := strconv.Atoi(i.Port); err != nil || p < 1 || p > 65535 {
				return fmt.Errorf("ipmi port %q is not a port number", i.Port)
			}
		}
	}
	switch c.Root {
	case "", "initramfs", "tmpfs":
	default:
		if !strings.HasPrefix(c.Root, "/dev/") || !shellSafePath.MatchString(c.Root) {
			return fmt.Errorf("root %q is not initramfs, tmpfs or a /dev/ path", c.Root)
		}
	}
	// wwinit reads root and init as shell variables on the node.
	if c.Init != "" && !isUnset(c.Init) && !shellSafePath.MatchString(c.Init) {
		return fmt.Errorf("init %q is not an absolute path of letters, digits and ._/+:@=-", c.Init)
	}
	return nil
}

// shellSafePath is a path that means the same to a shell unquoted.
var shellSafePath = regexp.MustCompile(`^/[A-Za-z0-9._/+:@=-]*$`)

func (b WWbool) check(key string) error {
	if _, ok := b.parse(); !ok && !isUnset(string(b)) {
		return fmt.Errorf("%s: %w", key, errNotBool(string(b)))
	}
	return nil
}

func (d *NetDev) check() error {
	if err := d.OnBoot.check("onboot"); err != nil {
		return err
	}
	if d.Hwaddr != "" {
		mac, err := NormalizeMAC(d.Hwaddr)
		if err != nil {
			return err
		}
		d.Hwaddr = mac
	}
	if err := checkIPv4("ipaddr", d.Ipaddr); err != nil {
		return err
	}
	if err := checkIPv4("gateway", d.Gateway); err != nil {
		return err
	}
	if err := checkNetmask(d.Netmask); err != nil {
		return err
	}
	for key, v := range map[string]string{"ipaddr6": d.Ipaddr6, "gateway6": d.Gateway6} {
		if v != "" {
			ip := net.ParseIP(v)
			if ip == nil || ip.To4() != nil {
				return fmt.Errorf("%s %q is not an IPv6 address", key, v)
			}
		}
	}
	if d.Prefixlen6 != "" {
		if p, err := strconv.Atoi(d.Prefixlen6); err != nil || p < 1 || p > 128 {
			return fmt.Errorf("prefixlen6 %q is not a prefix length (1-128)", d.Prefixlen6)
		}
	}
	if d.MTU != "" {
		if m, err := strconv.Atoi(d.MTU); err != nil || m < 68 || m > 65535 {
			return fmt.Errorf("mtu %q is not an MTU (68-65535)", d.MTU)
		}
	}
	return nil
}
