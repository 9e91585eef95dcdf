package overlay

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
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

// Sprig's regex functions compile their pattern on every call; a
// template's patterns are nearly always constants, and a build calls them
// for every node (resolv.conf, shadow). These are the same functions
// (same results, same errors and panics) with the compiled patterns kept.
// A template that builds its patterns from node data could grow the cache
// without end: past regexCacheMax patterns it starts again.
const regexCacheMax = 1024

var regexCache struct {
	sync.Mutex
	m map[string]*regexp.Regexp
}

// compileRegex is regexp.Compile, remembered.
func compileRegex(pattern string) (*regexp.Regexp, error) {
	regexCache.Lock()
	r, ok := regexCache.m[pattern]
	regexCache.Unlock()
	if ok {
		return r, nil
	}
	r, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	regexCache.Lock()
	if regexCache.m == nil || len(regexCache.m) >= regexCacheMax {
		regexCache.m = map[string]*regexp.Regexp{}
	}
	regexCache.m[pattern] = r
	regexCache.Unlock()
	return r, nil
}

// mustCompileRegex is regexp.MustCompile, remembered: it panics as that
// does (text/template turns the panic into the render's error).
func mustCompileRegex(pattern string) *regexp.Regexp {
	r, err := compileRegex(pattern)
	if err != nil {
		return regexp.MustCompile(pattern)
	}
	return r
}

// regexFuncs replace sprig's functions of the same names.
var regexFuncs = map[string]any{
	"regexMatch": func(regex string, s string) bool {
		r, err := compileRegex(regex)
		return err == nil && r.MatchString(s)
	},
	"mustRegexMatch": func(regex string, s string) (bool, error) {
		r, err := compileRegex(regex)
		if err != nil {
			return false, err
		}
		return r.MatchString(s), nil
	},
	"regexFindAll": func(regex string, s string, n int) []string {
		return mustCompileRegex(regex).FindAllString(s, n)
	},
	"mustRegexFindAll": func(regex string, s string, n int) ([]string, error) {
		r, err := compileRegex(regex)
		if err != nil {
			return []string{}, err
		}
		return r.FindAllString(s, n), nil
	},
	"regexFind": func(regex string, s string) string {
		return mustCompileRegex(regex).FindString(s)
	},
	"mustRegexFind": func(regex string, s string) (string, error) {
		r, err := compileRegex(regex)
		if err != nil {
			return "", err
		}
		return r.FindString(s), nil
	},
	"regexReplaceAll": func(regex string, s string, repl string) string {
		return mustCompileRegex(regex).ReplaceAllString(s, repl)
	},
	"mustRegexReplaceAll": func(regex string, s string, repl string) (string, error) {
		r, err := compileRegex(regex)
		if err != nil {
			return "", err
		}
		return r.ReplaceAllString(s, repl), nil
	},
	"regexReplaceAllLiteral": func(regex string, s string, repl string) string {
		return mustCompileRegex(regex).ReplaceAllLiteralString(s, repl)
	},
	"mustRegexReplaceAllLiteral": func(regex string, s string, repl string) (string, error) {
		r, err := compileRegex(regex)
		if err != nil {
			return "", err
		}
		return r.ReplaceAllLiteralString(s, repl), nil
	},
	"regexSplit": func(regex string, s string, n int) []string {
		return mustCompileRegex(regex).Split(s, n)
	},
	"mustRegexSplit": func(regex string, s string, n int) ([]string, error) {
		r, err := compileRegex(regex)
		if err != nil {
			return []string{}, err
		}
		return r.Split(s, n), nil
	},
}
