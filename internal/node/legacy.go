package node

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Keys of Warewulf 4.2-4.5 nodes.conf files are read into the current
// fields, each with a warning; keys nobody knows are warned about and
// dropped when the file is next written, as upstream drops them.

// Notes collects what reading a file found to warn about.
type Notes []string

func (n *Notes) add(format string, args ...any) { *n = append(*n, fmt.Sprintf(format, args...)) }

// upgradeLegacy moves the legacy keys of every record into place.
func (db *DB) upgradeLegacy() Notes {
	var notes Notes
	for _, sec := range []struct {
		noun string
		recs map[string]*Conf
	}{{"profile", db.Profiles}, {"node", db.Nodes}} {
		for _, name := range sortedKeys(sec.recs) {
			c := sec.recs[name]
			if c == nil {
				continue
			}
			c.upgradeLegacy(sec.noun+" "+name, &notes)
			if sec.noun == "profile" {
				if c.Discoverable != "" {
					notes.add("profile %s: \"discoverable\" is a node setting: ignored", name)
					c.Discoverable = ""
				}
				if c.AssetKey != "" {
					notes.add("profile %s: \"asset key\" is a node setting: ignored", name)
					c.AssetKey = ""
				}
			}
		}
	}
	for _, k := range sortedKeys(db.Extra) {
		if k == "WW_INTERNAL" {
			notes.add("nodes.conf: WW_INTERNAL is obsolete: ignored")
			continue
		}
		notes.add("nodes.conf: unknown key %q: ignored", k)
	}
	db.Extra = nil
	return notes
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	}
	return fmt.Sprint(v)
}

func (c *Conf) upgradeLegacy(where string, notes *Notes) {
	extra := c.Extra
	c.Extra = nil
	moved := func(key, to string) { notes.add("%s: %q is the old name of %q: read as that", where, key, to) }
	ipmi := func() *Ipmi {
		if c.Ipmi == nil {
			c.Ipmi = &Ipmi{}
		}
		return c.Ipmi
	}
	kernel := func() *Kernel {
		if c.Kernel == nil {
			c.Kernel = &Kernel{}
		}
		return c.Kernel
	}
	setIf := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	for _, k := range sortedKeys(extra) {
		v := extra[k]
		switch k {
		case "container name":
			moved(k, "image name")
			setIf(&c.ImageName, str(v))
		case "kernel args":
			moved(k, "kernel: args")
			if len(kernel().Args) == 0 {
				kernel().Args = legacyArgs(v)
			}
		case "kernel version":
			moved(k, "kernel: version")
			setIf(&kernel().Version, str(v))
		case "kernel override":
			notes.add("%s: \"kernel override\" %q read as kernel version (`wwctl upgrade nodes` resolves it against the image's kernels)", where, str(v))
			setIf(&kernel().Version, str(v))
		case "ipmi escapechar", "ipmi gateway", "ipmi interface", "ipmi ipaddr", "ipmi netmask", "ipmi password",
			"ipmi port", "ipmi username", "ipmi write":
			field := strings.TrimPrefix(k, "ipmi ")
			moved(k, "ipmi: "+field)
			i := ipmi()
			switch field {
			case "escapechar":
				setIf(&i.EscapeChar, str(v))
			case "gateway":
				setIf(&i.Gateway, str(v))
			case "interface":
				setIf(&i.Interface, str(v))
			case "ipaddr":
				setIf(&i.Ipaddr, str(v))
			case "netmask":
				setIf(&i.Netmask, str(v))
			case "password":
				setIf(&i.Password, str(v))
			case "port":
				setIf(&i.Port, str(v))
			case "username":
				setIf(&i.UserName, str(v))
			case "write":
				if i.Write == "" {
					if b, err := ParseWWbool(str(v)); err == nil {
						i.Write = b
					}
				}
			}
		case "keys":
			moved(k, "tags")
			if m, ok := v.(map[string]any); ok {
				for tk, tv := range m {
					if _, set := c.Tags[tk]; !set {
						if c.Tags == nil {
							c.Tags = map[string]string{}
						}
						c.Tags[tk] = str(tv)
					}
				}
			}
		case "tagsdel":
			notes.add("%s: \"tagsdel\" applied and dropped", where)
			tagsDel(c.Tags, v)
		case "disabled":
			notes.add("%s: \"disabled\" is obsolete: ignored", where)
		default:
			notes.add("%s: unknown key %q: ignored", where, k)
		}
	}
	if c.Kernel != nil {
		for _, k := range sortedKeys(c.Kernel.Extra) {
			v := c.Kernel.Extra[k]
			if k == "override" {
				notes.add("%s: \"kernel: override\" %q read as kernel version (`wwctl upgrade nodes` resolves it against the image's kernels)", where, str(v))
				setIf(&c.Kernel.Version, str(v))
				continue
			}
			notes.add("%s: kernel: unknown key %q: ignored", where, k)
		}
		c.Kernel.Extra = nil
	}
	if c.Ipmi != nil {
		for _, k := range sortedKeys(c.Ipmi.Extra) {
			if k == "tagsdel" {
				notes.add("%s: ipmi: \"tagsdel\" applied and dropped", where)
				tagsDel(c.Ipmi.Tags, c.Ipmi.Extra[k])
				continue
			}
			notes.add("%s: ipmi: unknown key %q: ignored", where, k)
		}
		c.Ipmi.Extra = nil
	}
	for _, dev := range sortedKeys(c.NetDevs) {
		d := c.NetDevs[dev]
		if d == nil {
			continue
		}
		for _, k := range sortedKeys(d.Extra) {
			v := str(d.Extra[k])
			switch k {
			case "default", "primary":
				if b, _ := strconv.ParseBool(v); b && c.PrimaryNetwork == "" {
					notes.add("%s: network device %s: %q read as \"primary network: %s\"", where, dev, k, dev)
					c.PrimaryNetwork = dev
				} else {
					notes.add("%s: network device %s: %q is obsolete: ignored", where, dev, k)
				}
			case "ipcidr":
				moved("network devices: "+dev+": ipcidr", "ipaddr and netmask")
				if ip, n, err := net.ParseCIDR(v); err == nil {
					setIf(&d.Ipaddr, ip.String())
					setIf(&d.Netmask, net.IP(n.Mask).String())
				}
			case "ip6addr":
				moved("network devices: "+dev+": ip6addr", "ipaddr6")
				setIf(&d.Ipaddr6, v)
			case "prefix":
				notes.add("%s: network device %s: \"prefix\" is obsolete: ignored", where, dev)
			case "tagsdel":
				notes.add("%s: network device %s: \"tagsdel\" applied and dropped", where, dev)
				tagsDel(d.Tags, d.Extra[k])
			default:
				notes.add("%s: network device %s: unknown key %q: ignored", where, dev, k)
			}
		}
		d.Extra = nil
	}
	for _, name := range sortedKeys(c.Disks) {
		if d := c.Disks[name]; d != nil {
			for _, k := range sortedKeys(d.Extra) {
				notes.add("%s: disk %s: unknown key %q: ignored", where, name, k)
			}
			d.Extra = nil
			for _, pn := range sortedKeys(d.Partitions) {
				if p := d.Partitions[pn]; p != nil {
					for _, k := range sortedKeys(p.Extra) {
						notes.add("%s: disk %s: partition %s: unknown key %q: ignored", where, name, pn, k)
					}
					p.Extra = nil
				}
			}
		}
	}
	for _, name := range sortedKeys(c.FileSystems) {
		if f := c.FileSystems[name]; f != nil {
			for _, k := range sortedKeys(f.Extra) {
				notes.add("%s: filesystem %s: unknown key %q: ignored", where, name, k)
			}
			f.Extra = nil
		}
	}
}

// legacyArgs reads `kernel args` of 4.4: a string of space-separated
// arguments or a list.
func legacyArgs(v any) Args {
	switch x := v.(type) {
	case string:
		return strings.Fields(x)
	case []any:
		var out Args
		for _, e := range x {
			out = append(out, str(e))
		}
		return out
	}
	return nil
}

func tagsDel(tags map[string]string, v any) {
	if l, ok := v.([]any); ok {
		for _, t := range l {
			delete(tags, str(t))
		}
	}
}
