package node

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Field is one set value of a node's effective record, as `wwctl node list
// -a` prints it: upstream's field name ("NetDevs[default].Ipaddr"), where
// the value came from, and the value.
type Field struct {
	Field string
	// Source is the profile the value came from; "" when the node set
	// it, SUPERSEDED when the node replaced a profile's value, and
	// "p1,p2,n1" for a list several layers added to.
	Source string
	Value  string
}

// Superseded marks a node value that replaced a profile's.
const Superseded = "SUPERSEDED"

type fieldMap struct {
	byName map[string]*Field
}

func (fm *fieldMap) source(name string) string {
	if f, ok := fm.byName[name]; ok {
		return f.Source
	}
	return ""
}

func (fm *fieldMap) set(name, src, value string) {
	if value == "" {
		return
	}
	f, ok := fm.byName[name]
	if !ok {
		f = &Field{Field: name}
		fm.byName[name] = f
	}
	f.Value = value
	if f.Source != "" && src == "" {
		f.Source = Superseded
	} else {
		f.Source = src
	}
}

// list returns the recorded fields in the order they appear in c.
func (fm *fieldMap) list(c *Conf) []Field {
	var out []Field
	seen := map[string]bool{}
	walkFields(reflect.ValueOf(c).Elem(), "", func(name string, _ reflect.Value) {
		if f, ok := fm.byName[name]; ok && !seen[name] {
			seen[name] = true
			out = append(out, *f)
		}
	})
	var rest []string
	for name := range fm.byName {
		if !seen[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for _, name := range rest {
		out = append(out, *fm.byName[name])
	}
	return out
}

// Fields returns the record's set fields with their sources, in
// upstream's order. Only a record from MergedFields or MergedProfile has
// them.
func (n *Node) Fields() []Field { return n.fields }

// walkFields calls emit for every leaf of a record with upstream's field
// name: structs by field (Kernel.Args), maps of records by key
// (NetDevs[default].Ipaddr), other maps by key (Tags[rack]).
func walkFields(v reflect.Value, prefix string, emit func(name string, v reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || strings.Contains(f.Tag.Get("yaml"), "inline") {
			continue
		}
		name := f.Tag.Get("name")
		if name == "" {
			name = f.Name
		}
		fv := v.Field(i)
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			if !fv.IsNil() {
				walkFields(fv.Elem(), prefix+name+".", emit)
			}
		case ft.Kind() == reflect.Struct:
			walkFields(fv, prefix+name+".", emit)
		case ft.Kind() == reflect.Map:
			if fv.Len() == 0 {
				continue
			}
			keys := fv.MapKeys()
			sort.Slice(keys, func(a, b int) bool { return keys[a].String() < keys[b].String() })
			for _, k := range keys {
				e := fv.MapIndex(k)
				key := fmt.Sprintf("%s%s[%s]", prefix, name, k.String())
				if ft.Elem().Kind() == reflect.Pointer && ft.Elem().Elem().Kind() == reflect.Struct {
					if !e.IsNil() {
						walkFields(e.Elem(), key+".", emit)
					}
					continue
				}
				emit(key, e)
			}
		default:
			emit(prefix+name, fv)
		}
	}
}

// Map renders a record as nested maps keyed like nodes.conf, for JSON.
func (c *Conf) Map() map[string]any {
	m, _ := toMap(reflect.ValueOf(*c)).(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m
}

func toMap(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return toMap(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			val := toMap(v.Field(i))
			if val == nil {
				continue
			}
			tag := f.Tag.Get("yaml")
			key, _, _ := strings.Cut(tag, ",")
			if strings.Contains(tag, "inline") {
				for k, x := range val.(map[string]any) {
					out[k] = x
				}
				continue
			}
			out[key] = val
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case reflect.Map:
		if v.Len() == 0 {
			return nil
		}
		out := make(map[string]any, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			if x := toMap(iter.Value()); x != nil {
				out[fmt.Sprint(iter.Key().Interface())] = x
			}
		}
		return out
	case reflect.Slice:
		if v.Len() == 0 {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = toMap(v.Index(i))
		}
		return out
	case reflect.String:
		if v.Len() == 0 {
			return nil
		}
		return v.String()
	case reflect.Invalid:
		return nil
	}
	return v.Interface()
}

// FieldDoc describes the field of record type rec (Conf, NetDev, Ipmi...)
// that upstream names name, for `wwctl overlay info`: its `node set` flag
// (or ""), the type tag (IP, MAC, uint, or "") and a short help. ok is
// false when rec has no such field.
func FieldDoc(rec reflect.Type, name string) (lopt, typ, help string, ok bool) {
	for i := 0; i < rec.NumField(); i++ {
		f := rec.Field(i)
		fn := f.Tag.Get("name")
		if fn == "" {
			fn = f.Name
		}
		if fn != name || !f.IsExported() {
			continue
		}
		help = f.Tag.Get("doc")
		if help == "" {
			help = f.Tag.Get("usage")
		}
		return f.Tag.Get("lopt"), f.Tag.Get("type"), help, true
	}
	return "", "", "", false
}
