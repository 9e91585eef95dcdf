package upgrade

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// legacyNFS is the nfs: section of 4.2-4.5 warewulf.conf files.
type legacyNFS struct {
	NFS struct {
		Exports     []string `yaml:"exports"`
		ExportPaths []struct {
			Path         string `yaml:"path"`
			MountOptions string `yaml:"mount options"`
			Mount        *bool  `yaml:"mount"`
		} `yaml:"export paths"`
	} `yaml:"nfs"`
}

// Exports lists the NFS exports a legacy warewulf.conf had nodes mount:
// every entry of the 4.2 `exports:` list, and the `export paths:` with
// `mount: true`. Upstream moved these to fstab resources.
func Exports(warewulfConf []byte) ([]Export, error) {
	var l legacyNFS
	if err := yaml.Unmarshal(warewulfConf, &l); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var out []Export
	for _, e := range l.NFS.Exports {
		out = append(out, Export{Path: e})
	}
	for _, e := range l.NFS.ExportPaths {
		if e.Mount != nil && *e.Mount {
			out = append(out, Export{Path: e.Path, MountOptions: e.MountOptions})
		}
	}
	return out, nil
}

// Config upgrades a warewulf.conf document in place, keeping its order,
// comments and every key this function does not change:
//   - WW_INTERNAL and warewulf: syslog are dropped (obsolete);
//   - ipv6net becomes ipaddr6 and prefixlen6 (an unparsable one is dropped
//     with a note, as upstream does), and prefixlen6 is a string;
//   - container mounts becomes image mounts;
//   - warewulf: datastore becomes paths: datadir;
//   - nfs: exports (a list of paths) becomes export paths, and an export's
//     mount and mount options are dropped (nodes mount through fstab
//     resources now: `wwctl upgrade nodes --with-warewulfconf`);
//   - keys with an empty or null value are dropped, as upstream's rewrite
//     omits empty fields.
func Config(data []byte) ([]byte, []string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return data, nil, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, nil, errors.New("invalid YAML: warewulf.conf must be a mapping")
	}
	var notes []string
	note := func(f string, a ...any) { notes = append(notes, fmt.Sprintf(f, a...)) }
	if del(root, "WW_INTERNAL") != nil {
		note("WW_INTERNAL: obsolete, removed")
	}
	if v := del(root, "ipv6net"); v != nil {
		if ip, n, err := net.ParseCIDR(v.Value); err == nil && ip.To4() == nil {
			ones, _ := n.Mask.Size()
			setIfAbsent(root, "ipaddr6", ip.String())
			setIfAbsent(root, "prefixlen6", strconv.Itoa(ones))
			note("ipv6net: now ipaddr6 and prefixlen6")
		} else if v.Value != "" {
			note("ipv6net: %q is not an IPv6 network: dropped", v.Value)
		}
	}
	if v := get(root, "prefixlen6"); v != nil && v.Kind == yaml.ScalarNode {
		v.Tag, v.Style = "!!str", yaml.DoubleQuotedStyle
	}
	if v := del(root, "container mounts"); v != nil {
		if get(root, "image mounts") == nil {
			add(root, "image mounts", v)
		}
		note("container mounts: now image mounts")
	}
	if ww := get(root, "warewulf"); ww != nil && ww.Kind == yaml.MappingNode {
		if del(ww, "syslog") != nil {
			note("warewulf: syslog: removed (logs go to stderr and the journal)")
		}
		if v := del(ww, "datastore"); v != nil && v.Value != "" {
			paths := get(root, "paths")
			if paths == nil {
				paths = &yaml.Node{Kind: yaml.MappingNode}
				add(root, "paths", paths)
			}
			setIfAbsent(paths, "datadir", v.Value)
			note("warewulf: datastore: now paths: datadir")
		}
	}
	if nfs := get(root, "nfs"); nfs != nil && nfs.Kind == yaml.MappingNode {
		if v := del(nfs, "exports"); v != nil {
			paths := get(nfs, "export paths")
			if paths == nil {
				paths = &yaml.Node{Kind: yaml.SequenceNode}
				add(nfs, "export paths", paths)
			}
			for _, e := range v.Content {
				m := &yaml.Node{Kind: yaml.MappingNode}
				add(m, "path", &yaml.Node{Kind: yaml.ScalarNode, Value: e.Value})
				paths.Content = append(paths.Content, m)
			}
			note("nfs: exports: now export paths")
		}
		if paths := get(nfs, "export paths"); paths != nil {
			for _, e := range paths.Content {
				if e.Kind != yaml.MappingNode {
					continue
				}
				m, o := del(e, "mount"), del(e, "mount options")
				if m != nil || o != nil {
					note("nfs: export paths: mount and mount options removed (`wwctl upgrade nodes --with-warewulfconf` makes them fstab resources)")
				}
			}
		}
	}
	dropEmpty(root)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	return buf.Bytes(), dedupe(notes), enc.Close()
}

// dropEmpty removes, at every depth, the keys whose value is an empty string
// or null.
func dropEmpty(n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); {
			v := n.Content[i+1]
			if v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Tag == "!!str" && v.Value == "") {
				del(n, n.Content[i].Value)
				continue
			}
			dropEmpty(v)
			i += 2
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			dropEmpty(c)
		}
	}
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func get(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func del(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			// A comment above the key stays, above the next one.
			if c := m.Content[i].HeadComment; c != "" && i+2 < len(m.Content) {
				next := m.Content[i+2]
				next.HeadComment = strings.TrimSpace(c + "\n" + next.HeadComment)
			}
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return v
		}
	}
	return nil
}

func add(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
}

func setIfAbsent(m *yaml.Node, key, value string) {
	if get(m, key) == nil {
		add(m, key, &yaml.Node{Kind: yaml.ScalarNode, Value: value})
	}
}
