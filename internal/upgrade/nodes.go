// Package upgrade rewrites the nodes.conf and warewulf.conf of earlier
// Warewulf 4 releases (4.2-4.6) into the current shape, as `wwctl upgrade`
// does upstream. The result is stable: upgrading it again changes nothing.
package upgrade

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// NodesOptions are upstream's flags of `wwctl upgrade nodes`.
type NodesOptions struct {
	// AddDefaults gives the default profile upstream's defaults (overlays,
	// kernel arguments, init, root, iPXE template, NFS mounts, IPMI
	// template) where it has none, and every node the default profile.
	AddDefaults bool
	// ReplaceOverlays splits the old wwinit and generic overlays into
	// the overlays that replaced them.
	ReplaceOverlays bool
	// Exports are the NFS exports of the legacy warewulf.conf that nodes
	// mounted (upstream's --with-warewulfconf); they become fstab
	// resources of the default profile.
	Exports []Export
	// ImageRootfs and ProvisionDir locate kernels, to resolve the 4.5
	// `kernel override` into a kernel version.
	ImageRootfs  func(image string) string
	ProvisionDir string
}

// Export is one NFS export a node mounts.
type Export struct {
	Path, MountOptions string
}

// The overlays the 4.5 wwinit and generic overlays were split into.
var (
	wwinitSplit  = []string{"wwinit", "wwclient", "fstab", "hostname", "ssh.host_keys", "issue", "resolv", "udev.netname", "systemd.netname", "ifcfg", "ifupdown", "NetworkManager", "wicked", "ignition"}
	genericSplit = []string{"hosts", "ssh.authorized_keys", "syncuser"}
)

// legacyRecord is what the node model no longer reads by itself: the
// kernel override, resolved here against the image's kernels.
type legacyRecord struct {
	ContainerName  string `yaml:"container name"`
	ImageName      string `yaml:"image name"`
	KernelOverride string `yaml:"kernel override"`
	KernelVersion  string `yaml:"kernel version"`
	Kernel         struct {
		Override string `yaml:"override"`
		Version  string `yaml:"version"`
		Args     any    `yaml:"args"`
	} `yaml:"kernel"`
}

// Nodes upgrades a nodes.conf document. Notes says what was changed or
// dropped, one line each.
func Nodes(data []byte, o NodesOptions) ([]byte, []string, error) {
	db, parsed, err := node.ParseLegacy(data)
	if err != nil {
		return nil, nil, err
	}
	notes := []string(parsed)
	var legacy struct {
		Profiles map[string]legacyRecord `yaml:"nodeprofiles"`
		Nodes    map[string]legacyRecord `yaml:"nodes"`
	}
	_ = yaml.Unmarshal(data, &legacy) // the shape was checked by ParseLegacy
	for _, sec := range []struct {
		noun   string
		recs   map[string]*node.Conf
		legacy map[string]legacyRecord
		prof   bool
	}{{"profile", db.Profiles, legacy.Profiles, true}, {"node", db.Nodes, legacy.Nodes, false}} {
		for name, c := range sec.recs {
			where := sec.noun + " " + name
			if c == nil {
				c = &node.Conf{}
				sec.recs[name] = c
			}
			if l, ok := sec.legacy[name]; ok {
				// 4.4 wrote the arguments as one string.
				if a, ok := l.Kernel.Args.(string); ok && c.Kernel != nil {
					c.Kernel.Args = strings.Fields(a)
				}
				override := l.Kernel.Override
				if override == "" {
					override = l.KernelOverride
				}
				if override != "" {
					v := resolveOverride(override, c.ImageName, o, where, &notes)
					if v == "" {
						if v = l.Kernel.Version; v == "" {
							v = l.KernelVersion
						}
					}
					if c.Kernel == nil {
						c.Kernel = &node.Kernel{}
					}
					c.Kernel.Version = v
				}
			}
			upgradeRecord(c, where, o, &notes)
		}
	}
	if len(o.Exports) > 0 {
		def := defaultProfile(db)
		var fstab []any
		for _, e := range o.Exports {
			entry := map[string]any{"spec": "warewulf:" + e.Path, "file": e.Path, "vfstype": "nfs"}
			if e.MountOptions != "" {
				entry["mntops"] = e.MountOptions
			}
			fstab = append(fstab, entry)
		}
		if def.Resources == nil {
			def.Resources = map[string]any{}
		}
		if prev, ok := def.Resources["fstab"]; ok {
			if l, ok := prev.([]any); ok {
				// An entry already there is not added again, so that
				// upgrading twice changes nothing.
				for _, e := range fstab {
					if !hasMount(l, e.(map[string]any)) {
						l = append(l, e)
					}
				}
				def.Resources["fstab"] = l
			} else {
				notes = append(notes, "profile default: resources: fstab is not a list: NFS mounts of warewulf.conf not added")
			}
		} else {
			def.Resources["fstab"] = fstab
		}
	}
	if o.AddDefaults {
		addDefaults(db, &notes)
	}
	for _, c := range db.Profiles {
		node.Flatten(c)
	}
	for _, c := range db.Nodes {
		node.Flatten(c)
	}
	out, err := db.Marshal()
	return out, notes, err
}

func defaultProfile(db *node.DB) *node.Conf {
	def := db.Profiles["default"]
	if def == nil {
		def = &node.Conf{}
		db.Profiles["default"] = def
	}
	return def
}

func upgradeRecord(c *node.Conf, where string, o NodesOptions, notes *[]string) {
	if c.IpxeTemplate == "dracut" {
		if _, ok := c.Tags["IPXEMenuEntry"]; !ok {
			*notes = append(*notes, where+": ipxe template dracut replaced by default with tag IPXEMenuEntry=dracut")
			c.IpxeTemplate = "default"
			if c.Tags == nil {
				c.Tags = map[string]string{}
			}
			c.Tags["IPXEMenuEntry"] = "dracut"
		} else {
			*notes = append(*notes, where+": ipxe template dracut kept: tag IPXEMenuEntry is already set")
		}
	}
	if o.ReplaceOverlays {
		c.SystemOverlay = replaceOverlay(c.SystemOverlay, "wwinit", wwinitSplit)
		c.RuntimeOverlay = replaceOverlay(c.RuntimeOverlay, "generic", genericSplit)
	}
}

// replaceOverlay puts the split overlays where old was, leaving out those
// the list already has.
func replaceOverlay(list node.List, old string, split []string) node.List {
	at := -1
	have := map[string]bool{}
	for i, e := range list {
		if e == old && at < 0 {
			at = i
		}
		have[e] = true
	}
	if at < 0 {
		return list
	}
	var repl []string
	for _, e := range split {
		if !have[e] || e == old {
			repl = append(repl, e)
		}
	}
	out := append(node.List{}, list[:at]...)
	out = append(out, repl...)
	return append(out, list[at+1:]...)
}

// resolveOverride turns a 4.5 kernel override (a kernel imported with
// `wwctl kernel import`, or a path in the image) into a kernel version:
// the path of the image's kernel of that version.
func resolveOverride(override, image string, o NodesOptions, where string, notes *[]string) string {
	rootfs := ""
	if o.ImageRootfs != nil && image != "" {
		rootfs = o.ImageRootfs(image)
	}
	if o.ProvisionDir != "" && !strings.ContainsAny(override, "/") {
		if v, err := os.ReadFile(filepath.Join(o.ProvisionDir, "kernel", override, "version")); err == nil && rootfs != "" {
			want := strings.TrimSpace(string(v))
			for _, k := range kernelsIn(rootfs) {
				if k.version == want {
					*notes = append(*notes, fmt.Sprintf("%s: kernel override %s is kernel %s of image %s", where, override, k.path, image))
					return k.path
				}
			}
		}
	}
	if rootfs != "" && strings.HasPrefix(override, "/") {
		if st, err := os.Stat(filepath.Join(rootfs, override)); err == nil && st.Mode().IsRegular() {
			return override
		}
	}
	shown := image
	if shown == "" {
		shown = "unknown"
	}
	*notes = append(*notes, fmt.Sprintf("%s: kernel override %s not found (image %s): dropped", where, override, shown))
	return ""
}

type kernelFile struct{ version, path string }

// kernelsIn lists /boot/vmlinuz-VERSION of an image.
func kernelsIn(rootfs string) []kernelFile {
	matches, _ := filepath.Glob(filepath.Join(rootfs, "boot", "vmlinuz-*"))
	var out []kernelFile
	for _, m := range matches {
		v := strings.TrimPrefix(filepath.Base(m), "vmlinuz-")
		out = append(out, kernelFile{version: v, path: "/boot/" + filepath.Base(m)})
	}
	return out
}

func addDefaults(db *node.DB, notes *[]string) {
	def := defaultProfile(db)
	if len(def.SystemOverlay) == 0 {
		def.SystemOverlay = append(node.List{}, wwinitSplit...)
	}
	if len(def.RuntimeOverlay) == 0 {
		def.RuntimeOverlay = append(node.List{}, genericSplit...)
	}
	if def.Kernel == nil {
		def.Kernel = &node.Kernel{}
	}
	if len(def.Kernel.Args) == 0 {
		def.Kernel.Args = node.Args{"quiet", "crashkernel=no", "net.ifnames=1"}
	}
	if def.Init == "" {
		def.Init = "/sbin/init"
	}
	if def.Root == "" {
		def.Root = "initramfs"
	}
	if def.IpxeTemplate == "" {
		def.IpxeTemplate = "default"
	}
	if _, ok := def.Resources["fstab"]; !ok {
		if def.Resources == nil {
			def.Resources = map[string]any{}
		}
		def.Resources["fstab"] = []any{
			map[string]any{"spec": "warewulf:/home", "file": "/home", "vfstype": "nfs", "mntops": "defaults,nofail"},
			map[string]any{"spec": "warewulf:/opt", "file": "/opt", "vfstype": "nfs", "mntops": "defaults,noauto,nofail,ro"},
		}
	}
	if def.Ipmi == nil {
		def.Ipmi = &node.Ipmi{}
	}
	if def.Ipmi.Template == "" {
		def.Ipmi.Template = "ipmitool.tmpl"
	}
	for _, name := range db.ProfileNames() {
		for _, d := range db.Profiles[name].NetDevs {
			if d == nil {
				continue
			}
			if d.Type == "" {
				d.Type = "ethernet"
			}
			if d.Netmask == "" {
				d.Netmask = "255.255.255.0"
			}
		}
	}
	for _, name := range db.NodeNames() {
		c := db.Nodes[name]
		if len(c.Profiles) == 0 {
			c.Profiles = node.List{"default"}
		}
		hasDefault := false
		for _, p := range c.Profiles {
			hasDefault = hasDefault || p == "default"
		}
		if !hasDefault {
			*notes = append(*notes, "node "+name+" does not include the default profile: verify default settings manually")
		}
		for _, dev := range sortedDevs(c.NetDevs) {
			d := c.NetDevs[dev]
			if d.Type == "" {
				*notes = append(*notes, fmt.Sprintf("node %s: NetDevs[%s].Type not specified: verify default settings manually", name, dev))
			}
			if d.Netmask == "" {
				*notes = append(*notes, fmt.Sprintf("node %s: NetDevs[%s].Netmask not specified: verify default settings manually", name, dev))
			}
		}
	}
}

func sortedDevs(m map[string]*node.NetDev) []string {
	var out []string
	for k, v := range m {
		if v != nil {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func hasMount(list []any, e map[string]any) bool {
	for _, x := range list {
		if m, ok := x.(map[string]any); ok && fmt.Sprint(m["spec"]) == fmt.Sprint(e["spec"]) && fmt.Sprint(m["file"]) == fmt.Sprint(e["file"]) {
			return true
		}
	}
	return false
}
