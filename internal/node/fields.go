package node

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Field is one set value of a node's effective record, for
// `wwctl node list --all`.
type Field struct {
	Path   string // YAML key path, e.g. "network devices.default.ipaddr"
	Value  string
	Source string // "node", "profile:NAME", or several joined by "+"
}

// Fields flattens the record into its set values, sorted by path.
func (n *Node) Fields() []Field {
	var out []Field
	flatten(reflect.ValueOf(n.Conf), "", func(path, value string) {
		out = append(out, Field{Path: path, Value: value, Source: n.sourceOf(path)})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func flatten(v reflect.Value, path string, emit func(path, value string)) {
	join := func(key string) string {
		if path == "" {
			return key
		}
		if key == "" {
			return path
		}
		return path + "." + key
	}
	switch v.Kind() {
	case reflect.String:
		if v.Len() > 0 {
			emit(path, v.String())
		}
	case reflect.Bool:
		emit(path, fmt.Sprint(v.Bool()))
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			flatten(v.Elem(), path, emit)
		}
	case reflect.Struct:
		for _, f := range structFields(v.Type()) {
			flatten(v.Field(f.index), join(f.key), emit)
		}
	case reflect.Slice:
		if v.Len() == 0 {
			return
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		sep := ","
		if v.Type() == reflect.TypeOf(Args(nil)) {
			sep = " "
		}
		emit(path, strings.Join(parts, sep))
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			flatten(v.MapIndex(k), join(k.String()), emit)
		}
	default:
		if v.IsValid() {
			emit(path, fmt.Sprint(v.Interface()))
		}
	}
}

// sourceOf finds where a value came from; values inside free-form maps
// (resources, disks) are recorded at their top key.
func (n *Node) sourceOf(path string) string {
	for p := path; p != ""; {
		if s, ok := n.Source[p]; ok {
			return s
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return ""
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
		for _, f := range structFields(v.Type()) {
			val := toMap(v.Field(f.index))
			if val == nil {
				continue
			}
			if f.key == "" { // inline Extra
				for k, x := range val.(map[string]any) {
					out[k] = x
				}
				continue
			}
			out[f.key] = val
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
