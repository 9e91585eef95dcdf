package stage1

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// Params are what the iPXE script (etc/ipxe/twostage.ipxe) tells stage 1
// on the kernel command line.
type Params struct {
	Base    string // wwstage1.base: http://controller:port
	MAC     string // wwid: the MAC that booted, names the node and the NIC
	IP      net.IP // wwstage1.ip: the address iPXE got by DHCP
	Netmask net.IP // wwstage1.netmask
	Gateway net.IP // wwstage1.gateway (optional)
	// Compress is the compress= query of the image and kmods requests.
	Compress  string // wwstage1.compress
	Runtime   bool   // wwstage1.runtime=1: fetch the runtime overlay too (server not in secure mode)
	TmpfsSize string // wwinit.tmpfs.size (upstream's name): size= of the root tmpfs
	// AssetKey is the machine's SMBIOS asset tag, which warewulfd checks
	// on every route when the node has an asset key.
	AssetKey string
	// Root is the node's `root`: a /dev/ path (/dev/disk/by-partlabel/NAME
	// or a device) provisions the image onto that file system; anything
	// else, a tmpfs.
	Root string // wwstage1.root
}

// assetTagFile is where Linux shows the SMBIOS chassis asset tag.
var assetTagFile = "/sys/class/dmi/id/chassis_asset_tag"

func readAssetTag() string {
	b, err := os.ReadFile(assetTagFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ParseCmdline reads Params from a kernel command line; a missing or bad
// value is an error naming it.
func ParseCmdline(cmdline string) (*Params, error) {
	p := &Params{TmpfsSize: "100%"}
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "wwid":
			var hw net.HardwareAddr
			if hw, err = net.ParseMAC(strings.ReplaceAll(v, "-", ":")); err == nil {
				p.MAC = hw.String()
			}
		case "wwstage1.base":
			var u *url.URL
			if u, err = url.Parse(v); err == nil && (u.Scheme != "http" || u.Host == "") {
				err = fmt.Errorf("not an http://host:port URL")
			}
			p.Base = strings.TrimRight(v, "/")
		case "wwstage1.ip":
			p.IP, err = parseIPv4(v)
		case "wwstage1.netmask":
			p.Netmask, err = parseIPv4(v)
		case "wwstage1.gateway":
			if v != "" {
				p.Gateway, err = parseIPv4(v)
			}
		case "wwstage1.compress":
			p.Compress = v
		case "wwstage1.runtime":
			p.Runtime = v == "1" || v == "true" || v == "yes"
		case "wwinit.tmpfs.size":
			p.TmpfsSize = v
		case "wwstage1.root":
			if v != "" && v != "tmpfs" && v != "initramfs" && !strings.HasPrefix(v, "/dev/") {
				err = fmt.Errorf("not tmpfs, initramfs or a /dev/ path")
			}
			p.Root = v
		}
		if err != nil {
			return nil, fmt.Errorf("kernel command line: %s=%q: %v", k, v, err)
		}
	}
	var missing []string
	if p.Base == "" {
		missing = append(missing, "wwstage1.base")
	}
	if p.MAC == "" {
		missing = append(missing, "wwid")
	}
	if p.IP == nil {
		missing = append(missing, "wwstage1.ip")
	}
	if p.Netmask == nil {
		missing = append(missing, "wwstage1.netmask")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kernel command line lacks %s (boot with the twostage iPXE template)", strings.Join(missing, ", "))
	}
	return p, nil
}

func parseIPv4(s string) (net.IP, error) {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return nil, fmt.Errorf("not an IPv4 address")
	}
	return ip, nil
}

// URL is the address of one of the node's files (image, system, ...).
func (p *Params) URL(stage, compress string) string {
	q := url.Values{}
	if compress != "" {
		q.Set("compress", compress)
	}
	if p.AssetKey != "" {
		q.Set("assetkey", p.AssetKey)
	}
	u := p.Base + "/" + stage + "/" + p.MAC
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}
