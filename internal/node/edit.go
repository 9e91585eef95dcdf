package node

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
)

// The command line of `node set`, `profile set` and `unset` is generated
// from Conf's struct tags, as upstream generates it: one Spec per tagged
// field. Edit and Unset apply a command's flags to a record.

// Kind is how a field's flag reads its value.
type Kind int

const (
	KindString  Kind = iota // one value
	KindList                // comma separated
	KindBool                // an upstream boolean kept as text (WWbool)
	KindBoolPtr             // a YAML boolean, absent when unset
)

// Spec is one settable field.
type Spec struct {
	Lopt, Sopt, Usage string
	Kind              Kind
	// Scope is "" (the record), "net", "disk", "disk,part" or "fs": which
	// selector names the entry the field lives in.
	Scope string
	// Type is "IP", "MAC", "uint" or "".
	Type string
	// NodeOnly: profiles do not have the field.
	NodeOnly bool
	path     []step
}

type step struct {
	index int
	sel   string // for a map field: which selector picks the entry
}

// Selector names the network device, disk, partition and filesystem the
// scoped flags apply to.
type Selector struct {
	Net, Disk, Part, FS string
}

func (s Selector) key(sel string) string {
	switch sel {
	case "net":
		return s.Net
	case "disk":
		return s.Disk
	case "part":
		return s.Part
	case "fs":
		return s.FS
	}
	return ""
}

var mapSelectors = map[string]string{"NetDevs": "net", "Disks": "disk", "Partitions": "part", "FileSystems": "fs"}

// Specs lists the settable fields in upstream's order.
var Specs = buildSpecs(reflect.TypeOf(Conf{}), nil)

// SpecByFlag finds a field by its long flag name.
func SpecByFlag(lopt string) *Spec {
	for i := range Specs {
		if Specs[i].Lopt == lopt {
			return &Specs[i]
		}
	}
	return nil
}

func buildSpecs(t reflect.Type, prefix []step) []Spec {
	var out []Spec
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		path := append(append([]step(nil), prefix...), step{index: i})
		ft := f.Type
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			out = append(out, buildSpecs(ft.Elem(), path)...)
			continue
		}
		if ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Pointer && ft.Elem().Elem().Kind() == reflect.Struct {
			path[len(path)-1].sel = mapSelectors[f.Name]
			out = append(out, buildSpecs(ft.Elem().Elem(), path)...)
			continue
		}
		lopt := f.Tag.Get("lopt")
		if lopt == "" {
			continue
		}
		s := Spec{Lopt: lopt, Sopt: f.Tag.Get("sopt"), Usage: f.Tag.Get("usage"), Scope: f.Tag.Get("scope"),
			Type: f.Tag.Get("type"), NodeOnly: f.Tag.Get("only") == "node", path: path}
		switch {
		case ft == reflect.TypeOf(WWbool("")):
			s.Kind = KindBool
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Bool:
			s.Kind = KindBoolPtr
		case ft.Kind() == reflect.Slice:
			s.Kind = KindList
		}
		out = append(out, s)
	}
	return out
}

// field walks to the spec's field in c. With create, missing parents are
// made; without, a missing parent gives an invalid Value.
func (s *Spec) field(c *Conf, sel Selector, create bool) reflect.Value {
	v := reflect.ValueOf(c).Elem()
	for _, st := range s.path {
		f := v.Field(st.index)
		switch {
		case st.sel != "":
			key := reflect.ValueOf(sel.key(st.sel))
			if f.IsNil() {
				if !create {
					return reflect.Value{}
				}
				f.Set(reflect.MakeMap(f.Type()))
			}
			e := f.MapIndex(key)
			if !e.IsValid() || e.IsNil() {
				if !create {
					return reflect.Value{}
				}
				e = reflect.New(f.Type().Elem().Elem())
				f.SetMapIndex(key, e)
			}
			v = e.Elem()
		case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct:
			if f.IsNil() {
				if !create {
					return reflect.Value{}
				}
				f.Set(reflect.New(f.Type().Elem()))
			}
			v = f.Elem()
		default:
			v = f
		}
	}
	return v
}

// isUnset reports upstream's words for "clear this value".
func isUnset(s string) bool { return s == "UNSET" || s == "UNDEF" }

// Set writes one flag's value into c. UNSET or UNDEF clears the field, as
// does 0.0.0.0 for an address.
func (s *Spec) Set(c *Conf, sel Selector, value string) error {
	if isUnset(value) {
		if f := s.field(c, sel, false); f.IsValid() {
			f.Set(reflect.Zero(f.Type()))
		}
		return nil
	}
	f := s.field(c, sel, true)
	switch s.Kind {
	case KindList:
		var list []string
		for _, e := range strings.Split(value, ",") {
			if e = strings.TrimSpace(e); e != "" {
				if isUnset(e) {
					list = nil
					break
				}
				list = append(list, e)
			}
		}
		v := reflect.MakeSlice(f.Type(), len(list), len(list))
		for i, e := range list {
			v.Index(i).SetString(e)
		}
		f.Set(v)
	case KindBool:
		b, err := ParseWWbool(value)
		if err != nil {
			return fmt.Errorf("--%s: %w", s.Lopt, err)
		}
		f.SetString(string(b))
	case KindBoolPtr:
		switch strings.ToLower(value) {
		case "unset", "delete", "undef", "--", "nil":
			f.Set(reflect.Zero(f.Type()))
			return nil
		}
		b, err := ParseWWbool(value)
		if err != nil {
			return fmt.Errorf("--%s: %w", s.Lopt, err)
		}
		v := b.Bool()
		f.Set(reflect.ValueOf(&v))
	default:
		v, err := s.check(value)
		if err != nil {
			return err
		}
		f.SetString(v)
	}
	return nil
}

// check validates and normalizes a scalar by the field's type.
func (s *Spec) check(value string) (string, error) {
	switch s.Type {
	case "IP":
		if value == "" {
			return "", nil
		}
		ip := net.ParseIP(value)
		if ip == nil {
			return "", fmt.Errorf("--%s: %q is not an IP address", s.Lopt, value)
		}
		if ip.IsUnspecified() {
			return "", nil
		}
		return ip.String(), nil
	case "MAC":
		if value == "" {
			return "", nil
		}
		mac, err := NormalizeMAC(value)
		if err != nil {
			return "", fmt.Errorf("--%s: %w", s.Lopt, err)
		}
		return mac, nil
	case "uint":
		if value == "" {
			return "", nil
		}
		if _, err := strconv.ParseUint(value, 10, 32); err != nil {
			return "", fmt.Errorf("--%s: %q is not a whole number", s.Lopt, value)
		}
	}
	return value, nil
}

// Clear empties one field; a missing parent is nothing to clear.
func (s *Spec) Clear(c *Conf, sel Selector) {
	if f := s.field(c, sel, false); f.IsValid() {
		f.Set(reflect.Zero(f.Type()))
	}
}

// Edit is one `set` or `add`: the field flags given (long name to value),
// the selectors, and the tag and entry operations.
type Edit struct {
	Values                           map[string]string
	Order                            []string // flags in the order given, for stable errors
	Sel                              Selector
	TagsAdd, IpmiTagsAdd, NetTagsAdd map[string]string
	TagsDel, IpmiTagsDel, NetTagsDel []string
	NetDel, DiskDel, PartDel, FsDel  string
	Profile                          bool // editing a profile
}

// Prepare resolves the selectors as upstream does: a filesystem named
// after the partition it lives on is /dev/disk/by-partlabel/NAME; any
// other filesystem must be a /dev path; a partition needs its disk.
func (e *Edit) Prepare() error {
	if fs := e.Sel.FS; fs != "" && !strings.HasPrefix(fs, "/dev") {
		if fs != e.Sel.Part {
			return fmt.Errorf("--fsname %q: a filesystem needs a block device (/dev/...) or the name of the partition it lives on (--partname %s)", fs, fs)
		}
		e.Sel.FS = "/dev/disk/by-partlabel/" + e.Sel.Part
	}
	if e.Sel.Part != "" && e.Sel.Disk == "" {
		return fmt.Errorf("--partname %s: give the disk it is on with --diskname", e.Sel.Part)
	}
	for _, lopt := range e.Order {
		s := SpecByFlag(lopt)
		if s == nil {
			return fmt.Errorf("--%s: no such field", lopt)
		}
		if e.Profile && s.NodeOnly {
			return fmt.Errorf("--%s: profiles do not have this field", lopt)
		}
		if need := scopeNeeds(s.Scope, e.Sel); need != "" {
			return fmt.Errorf("--%s needs %s", lopt, need)
		}
	}
	return nil
}

func scopeNeeds(scope string, sel Selector) string {
	switch scope {
	case "disk":
		if sel.Disk == "" {
			return "--diskname"
		}
	case "disk,part":
		if sel.Disk == "" || sel.Part == "" {
			return "--diskname and --partname"
		}
	case "fs":
		if sel.FS == "" {
			return "--fsname"
		}
	}
	return ""
}

// Apply writes the edit into c; index is the record's position in a
// range, for stepping addresses (node add n[01-10] --ipaddr 10.0.0.1).
func (e *Edit) Apply(c *Conf, index int, step map[string]bool) error {
	for _, lopt := range e.Order {
		s := SpecByFlag(lopt)
		v := e.Values[lopt]
		if step[lopt] && v != "" && !isUnset(v) {
			var err error
			if v, err = StepIP(v, index); err != nil {
				return fmt.Errorf("--%s: %w", lopt, err)
			}
		}
		if err := s.Set(c, e.Sel, v); err != nil {
			return err
		}
	}
	if e.NetDel != "" {
		if _, ok := c.NetDevs[e.NetDel]; !ok {
			return fmt.Errorf("--netdel: network device %q does not exist", e.NetDel)
		}
		delete(c.NetDevs, e.NetDel)
	}
	if e.PartDel != "" {
		if err := deletePartition(c, e.Sel.Disk, e.PartDel); err != nil {
			return fmt.Errorf("--partdel: %w", err)
		}
	}
	if e.DiskDel != "" {
		if _, ok := c.Disks[e.DiskDel]; !ok {
			return fmt.Errorf("--diskdel: disk %q does not exist", e.DiskDel)
		}
		delete(c.Disks, e.DiskDel)
	}
	if e.FsDel != "" {
		if _, ok := c.FileSystems[e.FsDel]; !ok {
			return fmt.Errorf("--fsdel: filesystem %q does not exist", e.FsDel)
		}
		delete(c.FileSystems, e.FsDel)
	}
	addTags(&c.Tags, e.TagsAdd)
	for _, k := range e.TagsDel {
		delete(c.Tags, k)
	}
	if len(e.IpmiTagsAdd) > 0 && c.Ipmi == nil {
		c.Ipmi = &Ipmi{}
	}
	if c.Ipmi != nil {
		addTags(&c.Ipmi.Tags, e.IpmiTagsAdd)
		for _, k := range e.IpmiTagsDel {
			delete(c.Ipmi.Tags, k)
		}
	}
	if len(e.NetTagsAdd) > 0 {
		if c.NetDevs == nil {
			c.NetDevs = map[string]*NetDev{}
		}
		if c.NetDevs[e.Sel.Net] == nil {
			c.NetDevs[e.Sel.Net] = &NetDev{}
		}
	}
	if d := c.NetDevs[e.Sel.Net]; d != nil {
		addTags(&d.Tags, e.NetTagsAdd)
		for _, k := range e.NetTagsDel {
			delete(d.Tags, k)
		}
	}
	flattenRecord(reflect.ValueOf(c))
	return nil
}

func addTags(tags *map[string]string, add map[string]string) {
	for k, v := range add {
		if *tags == nil {
			*tags = map[string]string{}
		}
		(*tags)[k] = v
	}
}

func deletePartition(c *Conf, disk, part string) error {
	if disk != "" {
		d, ok := c.Disks[disk]
		if !ok || d == nil {
			return fmt.Errorf("disk %q does not exist", disk)
		}
		if _, ok := d.Partitions[part]; !ok {
			return fmt.Errorf("partition %q does not exist on disk %s", part, disk)
		}
		delete(d.Partitions, part)
		return nil
	}
	found := false
	for _, d := range c.Disks {
		if d == nil {
			continue
		}
		if _, ok := d.Partitions[part]; ok {
			delete(d.Partitions, part)
			found = true
		}
	}
	if !found {
		return fmt.Errorf("partition %q does not exist on any disk", part)
	}
	return nil
}

// Unset is one `unset`: the fields to clear (long flag names), the
// selectors, whether --netname was given, and the tags to delete.
type Unset struct {
	Fields                  []string
	Sel                     Selector
	NetGiven                bool
	Tags, IpmiTags, NetTags []string
}

// ErrNothingToUnset is returned when no field or selector was named.
var ErrNothingToUnset = errors.New("no fields specified to unset")

// Check refuses an unset that names nothing, or a scoped field without
// its selector.
func (u *Unset) Check() error {
	if len(u.Fields) == 0 && len(u.Tags)+len(u.IpmiTags)+len(u.NetTags) == 0 && !u.NetGiven &&
		u.Sel.Disk == "" && u.Sel.Part == "" && u.Sel.FS == "" {
		return ErrNothingToUnset
	}
	for _, lopt := range u.Fields {
		s := SpecByFlag(lopt)
		if s == nil {
			return fmt.Errorf("--%s: no such field", lopt)
		}
		if need := scopeNeeds(s.Scope, u.Sel); need != "" {
			return fmt.Errorf("%s must be specified with --%s", need, lopt)
		}
	}
	return nil
}

func (u *Unset) scoped(scope string) bool {
	for _, lopt := range u.Fields {
		if SpecByFlag(lopt).Scope == scope {
			return true
		}
	}
	return false
}

// Apply clears the fields in c. A selector given without any of its
// fields removes the whole entry (--netname eth1 drops that device).
func (u *Unset) Apply(c *Conf) error {
	for _, lopt := range u.Fields {
		SpecByFlag(lopt).Clear(c, u.Sel)
	}
	for _, k := range u.Tags {
		delete(c.Tags, k)
	}
	if c.Ipmi != nil {
		for _, k := range u.IpmiTags {
			delete(c.Ipmi.Tags, k)
		}
	}
	if d := c.NetDevs[u.Sel.Net]; d != nil {
		for _, k := range u.NetTags {
			delete(d.Tags, k)
		}
	}
	if u.NetGiven && !u.scoped("net") && len(u.NetTags) == 0 {
		delete(c.NetDevs, u.Sel.Net)
	}
	if u.Sel.Disk != "" && u.Sel.Part == "" && !u.scoped("disk") {
		delete(c.Disks, u.Sel.Disk)
	}
	if u.Sel.FS != "" && !u.scoped("fs") {
		delete(c.FileSystems, u.Sel.FS)
	}
	if u.Sel.Part != "" && !u.scoped("disk,part") {
		if err := deletePartition(c, u.Sel.Disk, u.Sel.Part); err != nil {
			return err
		}
	}
	flattenRecord(reflect.ValueOf(c))
	for name, d := range c.NetDevs {
		if d == nil || !flattenValue(reflect.ValueOf(d).Elem()) {
			delete(c.NetDevs, name)
		}
	}
	for name, d := range c.Disks {
		if d == nil || !flattenValue(reflect.ValueOf(d).Elem()) {
			delete(c.Disks, name)
		}
	}
	for name, f := range c.FileSystems {
		if f == nil || !flattenValue(reflect.ValueOf(f).Elem()) {
			delete(c.FileSystems, name)
		}
	}
	return nil
}

// flattenRecord is upstream's tidying after set: UNSET/UNDEF values are
// cleared, and a field that is empty is zeroed while nothing before it in
// the same record has content (so an emptied network device disappears
// from an otherwise empty node, and an emptied disk stays as {} beside
// other values, as upstream writes them). ptr points to a struct.
func flattenRecord(ptr reflect.Value) bool {
	if ptr.IsNil() {
		return false
	}
	v := ptr.Elem()
	has := false
	for i := 0; i < v.NumField(); i++ {
		if !v.Type().Field(i).IsExported() {
			continue
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Map:
			iter := f.MapRange()
			for iter.Next() {
				e := iter.Value()
				if e.Kind() == reflect.Pointer && e.Type().Elem().Kind() == reflect.Struct {
					has = flattenRecord(e) || has
				} else {
					has = has || !e.IsZero()
				}
			}
		case reflect.Pointer:
			if f.Type().Elem().Kind() != reflect.Struct {
				has = has || !f.IsNil()
			} else {
				ret := flattenRecord(f)
				if !ret {
					f.Set(reflect.Zero(f.Type()))
				}
				has = has || ret
			}
		case reflect.Struct:
			has = flattenRecord(f.Addr()) || has
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.String {
				for j := 0; j < f.Len(); j++ {
					if isUnset(f.Index(j).String()) {
						f.SetLen(0)
						break
					}
				}
			}
			has = has || f.Len() > 0
		case reflect.String:
			if isUnset(f.String()) {
				f.SetString("")
			}
			has = has || f.Len() > 0
		default:
			has = has || !f.IsZero()
		}
		if !has {
			f.Set(reflect.Zero(f.Type()))
		}
	}
	return has
}

// Flatten clears UNSET/UNDEF values and drops what is left empty (a
// network device, disk or filesystem with nothing set, an empty ipmi: or
// kernel:), so nodes.conf stays as tidy as upstream writes it.
func Flatten(c *Conf) {
	flattenValue(reflect.ValueOf(c).Elem())
}

// flattenValue reports whether v has content after flattening.
func flattenValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		if isUnset(v.String()) {
			v.SetString("")
		}
		return v.Len() > 0
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			for i := 0; i < v.Len(); i++ {
				if isUnset(v.Index(i).String()) {
					v.Set(reflect.Zero(v.Type()))
					return false
				}
			}
		}
		if v.Len() == 0 && !v.IsNil() {
			v.Set(reflect.Zero(v.Type()))
		}
		return v.Len() > 0
	case reflect.Pointer:
		if v.IsNil() {
			return false
		}
		if v.Elem().Kind() != reflect.Struct {
			return true
		}
		if !flattenValue(v.Elem()) {
			v.Set(reflect.Zero(v.Type()))
			return false
		}
		return true
	case reflect.Struct:
		has := false
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() && flattenValue(v.Field(i)) {
				has = true
			}
		}
		return has
	case reflect.Map:
		if v.Len() == 0 {
			if !v.IsNil() {
				v.Set(reflect.Zero(v.Type()))
			}
			return false
		}
		if v.Type().Elem().Kind() == reflect.Pointer && v.Type().Elem().Elem().Kind() == reflect.Struct {
			for _, k := range v.MapKeys() {
				if e := v.MapIndex(k); e.IsNil() || !flattenValue(e.Elem()) {
					v.SetMapIndex(k, reflect.Value{})
				}
			}
			if v.Len() == 0 {
				v.Set(reflect.Zero(v.Type()))
				return false
			}
		}
		return true
	case reflect.Interface:
		return !v.IsNil()
	}
	return !v.IsZero()
}
