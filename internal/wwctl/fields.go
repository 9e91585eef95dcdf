package wwctl

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// The value flags of `node|profile add|set|unset` come from node.Specs,
// the node model's struct tags, with upstream's names; this file only
// turns flags into a node.Edit or node.Unset.

// aliases are other names a flag answers to: upstream's older ones and
// this project's own.
var aliases = map[string]string{
	"container":   "image",
	"wwinit":      "system-overlays",
	"runtime":     "runtime-overlays",
	"ipmimask":    "ipminetmask",
	"ipmiaddress": "ipmiaddr",
}

// extraShort are this project's own shorthands, kept working.
var extraShort = map[string]string{"image": "C", "kernelversion": "K"}

// stepped flags advance by one per node of a range.
var stepped = map[string]bool{"ipaddr": true, "ipaddr6": true, "ipmiaddr": true}

// addValueFlags defines the value flags of add and set.
func addValueFlags(fs *pflag.FlagSet, forProfile bool) {
	for _, s := range node.Specs {
		if forProfile && s.NodeOnly {
			continue
		}
		short := s.Sopt
		if short == "" {
			short = extraShort[s.Lopt]
		}
		switch s.Kind {
		case node.KindList:
			// Split at commas by the spec, not by pflag's CSV reader,
			// which drops everything after a newline unseen.
			fs.StringArrayP(s.Lopt, short, nil, s.Usage)
		case node.KindBool, node.KindBoolPtr:
			fs.StringP(s.Lopt, short, "", s.Usage)
			fs.Lookup(s.Lopt).NoOptDefVal = "true"
		default:
			fs.StringP(s.Lopt, short, "", s.Usage)
		}
	}
	for alias, target := range aliases {
		if t := fs.Lookup(target); t != nil {
			fs.String(alias, "", "old name of --"+target)
			fs.Lookup(alias).Hidden = true
			if t.NoOptDefVal != "" {
				fs.Lookup(alias).NoOptDefVal = t.NoOptDefVal
			}
		}
	}
	fs.StringP("netname", "n", "default", "network device the network flags apply to")
	fs.String("diskname", "", "disk the disk and partition flags apply to (/dev/vda)")
	fs.String("partname", "", "partition the partition flags apply to (its label)")
	fs.String("fsname", "", "filesystem the filesystem flags apply to (a /dev path, or the partition's name)")
	fs.StringToString("tagadd", nil, "add tags: key=value[,key=value]")
	fs.StringSlice("tagdel", nil, "delete tags by key")
	fs.StringToString("nettagadd", nil, "add tags to the network device: key=value")
	fs.StringSlice("nettagdel", nil, "delete tags of the network device by key")
	fs.StringToString("ipmitagadd", nil, "add tags to the BMC: key=value")
	fs.StringSlice("ipmitagdel", nil, "delete tags of the BMC by key")
	fs.String("netdel", "", "delete this network device")
	fs.String("diskdel", "", "delete this disk")
	fs.String("partdel", "", "delete this partition (on --diskname, else on every disk)")
	fs.String("fsdel", "", "delete this filesystem")
	refuseControl(fs)
}

// readEdit turns the flags the user gave into an edit.
func readEdit(fs *pflag.FlagSet, profile bool) (*node.Edit, error) {
	e := &node.Edit{Values: map[string]string{}, Profile: profile}
	str := func(name string) string { v, _ := fs.GetString(name); return v }
	e.Sel = node.Selector{Net: str("netname"), Disk: str("diskname"), Part: str("partname"), FS: str("fsname")}
	fs.Visit(func(f *pflag.Flag) {
		name := f.Name
		if target, ok := aliases[name]; ok {
			if fs.Changed(target) {
				return
			}
			name = target
		}
		s := node.SpecByFlag(name)
		if s == nil {
			return
		}
		v := f.Value.String()
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			v = strings.Join(sv.GetSlice(), ",")
		}
		e.Values[name] = v
		e.Order = append(e.Order, name)
	})
	sort.SliceStable(e.Order, func(i, j int) bool { return specIndex(e.Order[i]) < specIndex(e.Order[j]) })
	e.TagsAdd, _ = fs.GetStringToString("tagadd")
	e.NetTagsAdd, _ = fs.GetStringToString("nettagadd")
	e.IpmiTagsAdd, _ = fs.GetStringToString("ipmitagadd")
	e.TagsDel, _ = fs.GetStringSlice("tagdel")
	e.NetTagsDel, _ = fs.GetStringSlice("nettagdel")
	e.IpmiTagsDel, _ = fs.GetStringSlice("ipmitagdel")
	e.NetDel, e.DiskDel, e.PartDel, e.FsDel = str("netdel"), str("diskdel"), str("partdel"), str("fsdel")
	return e, e.Prepare()
}

func specIndex(lopt string) int {
	for i, s := range node.Specs {
		if s.Lopt == lopt {
			return i
		}
	}
	return len(node.Specs)
}

// changedAny reports whether the user gave any flag that changes a record.
func changedAny(fs *pflag.FlagSet) bool {
	any := false
	fs.Visit(func(fl *pflag.Flag) {
		switch fl.Name {
		case "netname", "yes", "all", "force", "diskname", "partname", "fsname":
		default:
			any = true
		}
	})
	return any
}

// addUnsetFlags defines `unset`'s flags: one boolean per field, the
// selectors, and the tags to delete.
func addUnsetFlags(cmd *cobra.Command, forProfile bool) {
	fs := cmd.Flags()
	for _, s := range node.Specs {
		if forProfile && s.NodeOnly {
			continue
		}
		short := s.Sopt
		if short == "" {
			short = extraShort[s.Lopt]
		}
		fs.BoolP(s.Lopt, short, false, "clear: "+s.Usage)
	}
	for alias, target := range aliases {
		if fs.Lookup(target) != nil {
			fs.Bool(alias, false, "old name of --"+target)
			fs.Lookup(alias).Hidden = true
		}
	}
	fs.StringP("netname", "n", "default", "network device to clear fields of; alone: remove the device")
	fs.String("diskname", "", "disk to clear fields of; alone: remove the disk")
	fs.String("partname", "", "partition to clear fields of; alone: remove the partition")
	fs.String("fsname", "", "filesystem to clear fields of; alone: remove the filesystem")
	fs.StringSlice("tag", nil, "tags to remove")
	fs.StringSlice("ipmitag", nil, "BMC tags to remove")
	fs.StringSlice("nettag", nil, "network device tags to remove")
	fs.Bool("tags", false, "clear all tags")
	fs.Bool("ipmi", false, "clear all BMC settings")
	fs.Bool("netdevs", false, "clear all network devices")
}

// readUnset turns unset's flags into a node.Unset.
func readUnset(fs *pflag.FlagSet) (*node.Unset, bool, bool, bool) {
	u := &node.Unset{}
	str := func(name string) string { v, _ := fs.GetString(name); return v }
	u.Sel = node.Selector{Net: str("netname"), Disk: str("diskname"), Part: str("partname"), FS: str("fsname")}
	u.NetGiven = fs.Changed("netname")
	u.Tags, _ = fs.GetStringSlice("tag")
	u.IpmiTags, _ = fs.GetStringSlice("ipmitag")
	u.NetTags, _ = fs.GetStringSlice("nettag")
	for _, s := range node.Specs {
		if v, err := fs.GetBool(s.Lopt); err == nil && v {
			u.Fields = append(u.Fields, s.Lopt)
		}
	}
	for alias, target := range aliases {
		if v, err := fs.GetBool(alias); err == nil && v {
			u.Fields = append(u.Fields, target)
		}
	}
	all := func(name string) bool { v, _ := fs.GetBool(name); return v }
	return u, all("tags"), all("ipmi"), all("netdevs")
}

// interactive reports whether questions can be asked on stdin.
func interactive() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

func parseYesNo(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "y", "true", "1", "on":
		return true, nil
	case "no", "n", "false", "0", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not yes or no", s)
}
