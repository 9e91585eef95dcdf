package node

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Merged returns the effective record of one node: its profiles in order,
// then the node itself. Scalars: the last one set wins. Lists: appended in
// order, "~NAME" drops an inherited entry. Maps: merged key by key.
func (db *DB) Merged(name string) (*Node, error) {
	c, ok := db.Nodes[name]
	if !ok || c == nil {
		return nil, fmt.Errorf("node %q does not exist", name)
	}
	n := &Node{Name: name, Source: map[string]string{}}
	for _, p := range c.Profiles {
		pc, ok := db.Profiles[p]
		if !ok || pc == nil {
			return nil, fmt.Errorf("node %s: profile %q does not exist", name, p)
		}
		mergeValue(reflect.ValueOf(&n.Conf).Elem(), reflect.ValueOf(pc).Elem(), "profile:"+p, "", n.Source)
	}
	mergeValue(reflect.ValueOf(&n.Conf).Elem(), reflect.ValueOf(c).Elem(), "node", "", n.Source)
	n.Profiles = append(List(nil), c.Profiles...)
	delete(n.Source, "profiles")
	if len(c.Profiles) > 0 {
		n.Source["profiles"] = "node"
	}
	return n, nil
}

// Overlay layers the values src sets onto dst with the merge rules, for
// bulk imports that update records in place.
func Overlay(dst, src *Conf) {
	mergeValue(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem(), "", "", map[string]string{})
}

// MergedProfile returns a profile on its own, as a Node, for listing.
func (db *DB) MergedProfile(name string) (*Node, error) {
	c, ok := db.Profiles[name]
	if !ok || c == nil {
		return nil, fmt.Errorf("profile %q does not exist", name)
	}
	n := &Node{Name: name, Source: map[string]string{}}
	mergeValue(reflect.ValueOf(&n.Conf).Elem(), reflect.ValueOf(c).Elem(), "profile:"+name, "", n.Source)
	return n, nil
}

// AllMerged returns every node's effective record, sorted by name.
func (db *DB) AllMerged() ([]*Node, error) {
	out := make([]*Node, 0, len(db.Nodes))
	for _, name := range db.NodeNames() {
		n, err := db.Merged(name)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// NodeNames returns the node names, sorted.
func (db *DB) NodeNames() []string { return sortedKeys(db.Nodes) }

// ProfileNames returns the profile names, sorted.
func (db *DB) ProfileNames() []string { return sortedKeys(db.Profiles) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// mergeValue layers src over dst. path is the YAML key path of dst, used to
// record in sources where each value came from.
func mergeValue(dst, src reflect.Value, source, path string, sources map[string]string) {
	switch src.Kind() {
	case reflect.String:
		if src.Len() > 0 {
			dst.SetString(src.String())
			sources[path] = source
		}
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		if dst.IsNil() {
			dst.Set(reflect.New(src.Type().Elem()))
		}
		mergeValue(dst.Elem(), src.Elem(), source, path, sources)
	case reflect.Bool:
		dst.SetBool(src.Bool())
		sources[path] = source
	case reflect.Struct:
		for _, f := range structFields(src.Type()) {
			p := f.key
			if path != "" && p != "" {
				p = path + "." + p
			} else if path != "" {
				p = path
			}
			mergeValue(dst.Field(f.index), src.Field(f.index), source, p, sources)
		}
	case reflect.Slice:
		if src.Len() == 0 {
			return
		}
		merged := mergeList(dst.Interface(), src)
		dst.Set(merged)
		if prev, ok := sources[path]; ok && prev != source {
			sources[path] = prev + "+" + source
		} else {
			sources[path] = source
		}
	case reflect.Map:
		if src.Len() == 0 {
			return
		}
		if dst.IsNil() {
			dst.Set(reflect.MakeMap(src.Type()))
		}
		iter := src.MapRange()
		for iter.Next() {
			k, v := iter.Key(), iter.Value()
			p := k.String()
			if path != "" {
				p = path + "." + p
			}
			elem := src.Type().Elem()
			if elem.Kind() == reflect.Pointer && elem.Elem().Kind() == reflect.Struct {
				cur := dst.MapIndex(k)
				if !cur.IsValid() || cur.IsNil() {
					cur = reflect.New(elem.Elem())
				}
				if !v.IsNil() {
					mergeValue(cur.Elem(), v.Elem(), source, p, sources)
				}
				dst.SetMapIndex(k, cur)
				continue
			}
			dst.SetMapIndex(k, v)
			sources[p] = source
		}
	}
}

// mergeList appends src's entries to cur, dropping "~NAME" targets and
// exact repeats.
func mergeList(cur any, src reflect.Value) reflect.Value {
	out := reflect.MakeSlice(src.Type(), 0, src.Len())
	var have []string
	if cur != nil {
		have = reflect.ValueOf(cur).Convert(reflect.TypeOf([]string(nil))).Interface().([]string)
	}
	list := append([]string(nil), have...)
	for i := 0; i < src.Len(); i++ {
		e := src.Index(i).String()
		if drop, ok := strings.CutPrefix(e, "~"); ok {
			list = remove(list, drop)
			continue
		}
		if !contains(list, e) {
			list = append(list, e)
		}
	}
	for _, e := range list {
		out = reflect.Append(out, reflect.ValueOf(e).Convert(src.Type().Elem()))
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func remove(list []string, s string) []string {
	out := list[:0:0]
	for _, e := range list {
		if e != s {
			out = append(out, e)
		}
	}
	return out
}

type fieldInfo struct {
	index int
	key   string // YAML key; "" for an inline field
}

var fieldCache = map[reflect.Type][]fieldInfo{}

// structFields lists a struct's YAML-visible fields. The cache is filled by
// init for the node types, so concurrent readers never write to it.
func structFields(t reflect.Type) []fieldInfo {
	if f, ok := fieldCache[t]; ok {
		return f
	}
	return computeFields(t)
}

func computeFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" || !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(tag, ",")
		if strings.Contains(tag, "inline") {
			key = ""
		}
		out = append(out, fieldInfo{index: i, key: key})
	}
	return out
}

func init() {
	for _, v := range []any{Conf{}, Kernel{}, NetDev{}, Ipmi{}} {
		t := reflect.TypeOf(v)
		fieldCache[t] = computeFields(t)
	}
}
