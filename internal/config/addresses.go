package config

import (
	"fmt"
	"net"
	"strconv"
)

// resolveAddresses gives ipaddr, netmask, network and ipaddr6 upstream's
// meaning: `ipaddr: 10.0.0.1/24` carries the netmask and network, an
// `ipaddr6` with a prefix carries prefixlen6, and what is left empty comes
// from the machine's own interfaces, as upstream finds it.
func (c *Config) resolveAddresses(detect bool) error {
	if ip, n, err := net.ParseCIDR(c.Ipaddr); err == nil {
		if ip.To4() == nil {
			return fmt.Errorf("ipaddr: %q is not an IPv4 address", c.Ipaddr)
		}
		c.Ipaddr = ip.String()
		if c.Netmask == "" {
			c.Netmask = net.IP(n.Mask).String()
		}
		if c.Network == "" {
			c.Network = n.IP.String()
		}
	}
	if ip, n, err := net.ParseCIDR(c.Ipaddr6); err == nil {
		ones, _ := n.Mask.Size()
		c.Ipaddr6 = ip.String()
		if c.PrefixLen6 == "" {
			c.PrefixLen6 = strconv.Itoa(ones)
		}
	}
	if !detect {
		return nil
	}
	if c.Ipaddr == "" {
		if ip := outboundIP(); ip != nil {
			c.Ipaddr = ip.String()
		}
	}
	if c.Netmask == "" {
		if n := netOf(net.ParseIP(c.Ipaddr)); n != nil {
			c.Netmask = net.IP(n.Mask).String()
		}
	}
	return nil
}

// outboundIP is the IPv4 address of the interface the default route leaves
// by; connecting a UDP socket only asks the kernel for the route, no
// packet is sent. Without a default route: the first global IPv4 address.
func outboundIP() net.IP {
	if conn, err := net.Dial("udp4", "192.0.2.1:9"); err == nil {
		defer conn.Close()
		if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
			return a.IP.To4()
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.To4()
		}
	}
	return nil
}

// netOf finds the network of the interface holding ip.
func netOf(ip net.IP) *net.IPNet {
	if ip == nil {
		return nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return n
		}
	}
	return nil
}

// IpCIDR is the controller's address with its prefix length (10.0.0.1/24).
func (c *Config) IpCIDR() string {
	ip, mask := net.ParseIP(c.Ipaddr).To4(), net.ParseIP(c.Netmask).To4()
	if ip == nil || mask == nil {
		return ""
	}
	return (&net.IPNet{IP: ip, Mask: net.IPMask(mask)}).String()
}

// NetworkCIDR is the provisioning network (10.0.0.0/24).
func (c *Config) NetworkCIDR() string {
	ip, mask := net.ParseIP(c.Network).To4(), net.ParseIP(c.Netmask).To4()
	if ip == nil || mask == nil {
		return ""
	}
	return (&net.IPNet{IP: ip, Mask: net.IPMask(mask)}).String()
}
