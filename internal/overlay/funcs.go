package overlay

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

// systemdEscape escapes a string for use in a systemd unit name, as
// systemd-escape does: "/" becomes "-", and every byte other than ASCII
// letters, digits, ":", "_" and "." (and a "." in front) becomes \xNN.
func systemdEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ':', c == '_', c == '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// systemdEscapePath escapes a path for a unit name, as systemd-escape
// --path does: "/" alone is "-", otherwise the cleaned path without its
// leading and trailing slashes, escaped.
func systemdEscapePath(p string) string {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return "-"
	}
	return systemdEscape(p)
}

// The Ignition config IgnitionJson writes: version 3.1.0, storage only.
type ignitionConfig struct {
	Ignition struct {
		Version string `json:"version"`
	} `json:"ignition"`
	Storage ignitionStorage `json:"storage"`
}

type ignitionStorage struct {
	Disks       []ignitionDisk `json:"disks,omitempty"`
	Filesystems []ignitionFS   `json:"filesystems,omitempty"`
}

type ignitionDisk struct {
	Device     string              `json:"device"`
	Partitions []ignitionPartition `json:"partitions,omitempty"`
	WipeTable  *bool               `json:"wipeTable,omitempty"`
}

type ignitionPartition struct {
	GUID               *string `json:"guid,omitempty"`
	Label              *string `json:"label,omitempty"`
	Number             int     `json:"number,omitempty"`
	Resize             *bool   `json:"resize,omitempty"`
	ShouldExist        *bool   `json:"shouldExist,omitempty"`
	SizeMiB            *int    `json:"sizeMiB,omitempty"`
	StartMiB           *int    `json:"startMiB,omitempty"`
	TypeGUID           *string `json:"typeGuid,omitempty"`
	WipePartitionEntry *bool   `json:"wipePartitionEntry,omitempty"`
}

type ignitionFS struct {
	Device         string   `json:"device"`
	Format         *string  `json:"format,omitempty"`
	Label          *string  `json:"label,omitempty"`
	MountOptions   []string `json:"mountOptions,omitempty"`
	Options        []string `json:"options,omitempty"`
	Path           *string  `json:"path,omitempty"`
	UUID           *string  `json:"uuid,omitempty"`
	WipeFilesystem *bool    `json:"wipeFilesystem,omitempty"`
}

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func intp(s string) (*int, error) {
	if s == "" {
		return nil, nil
	}
	i, err := strconv.Atoi(s)
	return &i, err
}

// ignitionJSON is a node's disks and file systems as an Ignition config,
// "" when it has neither; a bad number renders as the error text, as
// upstream does, so ignition on the node reports it.
func ignitionJSON(n *TNode) string {
	if len(n.Disks) == 0 && len(n.FileSystems) == 0 {
		return ""
	}
	var c ignitionConfig
	c.Ignition.Version = "3.1.0"
	for _, dev := range sortedMapKeys(n.FileSystems) {
		f := n.FileSystems[dev]
		if f == nil {
			continue
		}
		p := f.Path
		fs := ignitionFS{Device: dev, Path: &p, Format: strp(f.Format), Label: strp(f.Label), UUID: strp(f.Uuid), Options: f.Options, WipeFilesystem: f.WipeFileSystemP}
		for _, o := range strings.Split(f.MountOptions, ",") {
			if o = strings.TrimSpace(o); o != "" {
				fs.MountOptions = append(fs.MountOptions, o)
			}
		}
		c.Storage.Filesystems = append(c.Storage.Filesystems, fs)
	}
	for _, dev := range sortedMapKeys(n.Disks) {
		d := n.Disks[dev]
		if d == nil {
			continue
		}
		disk := ignitionDisk{Device: dev, WipeTable: d.WipeTableP}
		for _, label := range sortedMapKeys(d.Partitions) {
			pt := d.Partitions[label]
			if pt == nil {
				continue
			}
			l := label
			p := ignitionPartition{Label: &l, ShouldExist: pt.ShouldExistP, WipePartitionEntry: pt.WipePartitionEntryP,
				GUID: strp(pt.Guid), Resize: pt.ResizeP, TypeGUID: strp(pt.TypeGuid)}
			var err error
			if pt.Number != "" {
				if p.Number, err = strconv.Atoi(pt.Number); err != nil {
					return fmt.Sprintf("disk %s: partition %s: number: %q is not a number", dev, label, pt.Number)
				}
			}
			if p.SizeMiB, err = intp(pt.SizeMiB); err != nil {
				return fmt.Sprintf("disk %s: partition %s: size_mib: %q is not a number", dev, label, pt.SizeMiB)
			}
			if p.StartMiB, err = intp(pt.StartMiB); err != nil {
				return fmt.Sprintf("disk %s: partition %s: start_mib: %q is not a number", dev, label, pt.StartMiB)
			}
			disk.Partitions = append(disk.Partitions, p)
		}
		// By number; among equal numbers, sized partitions first.
		sort.SliceStable(disk.Partitions, func(i, j int) bool {
			a, b := disk.Partitions[i], disk.Partitions[j]
			if a.Number != b.Number {
				return a.Number < b.Number
			}
			if (a.SizeMiB == nil) != (b.SizeMiB == nil) {
				return a.SizeMiB != nil
			}
			return a.SizeMiB != nil && *a.SizeMiB < *b.SizeMiB
		})
		c.Storage.Disks = append(c.Storage.Disks, disk)
	}
	data, err := json.Marshal(&c)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// numbered returns the values of the tags PREFIX1, PREFIX2, ... (DNS1,
// route1, ...) in the order of their numbers; PREFIX alone or with another
// suffix (DNSSEARCH) is not one of them. One call per device instead of a
// loop in the template: it runs for every node.
func numbered(prefix string, tags map[string]string) []string {
	type kv struct {
		n int
		v string
	}
	var found []kv
	for k, v := range tags {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || rest == "" {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			continue
		}
		found = append(found, kv{n, v})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].n < found[j].n })
	out := make([]string, len(found))
	for i, f := range found {
		out[i] = f.v
	}
	return out
}
