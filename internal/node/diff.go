package node

import (
	"fmt"
	"reflect"
	"strings"
)

// Clone returns a deep copy of a record.
func Clone(c *Conf) *Conf {
	if c == nil {
		return nil
	}
	return deepCopy(reflect.ValueOf(c)).Interface().(*Conf)
}

func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(deepCopy(v.Elem()))
		return p
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				out.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			out.SetMapIndex(iter.Key(), deepCopy(iter.Value()))
		}
		return out
	case reflect.Interface:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		return reflect.ValueOf(copyAny(v.Interface()))
	}
	return v
}

// flat lists a record's set fields by upstream name.
func flat(c *Conf) map[string]string {
	out := map[string]string{}
	if c == nil {
		return out
	}
	walkFields(reflect.ValueOf(c).Elem(), "", func(name string, v reflect.Value) {
		if s := valueStr(v); s != "" {
			out[name] = s
		}
	})
	return out
}

// Diff describes what changed between the records in before and the same
// names in after, one line per field, for the confirmation of set and
// unset.
func Diff(before map[string]*Conf, after map[string]*Conf) string {
	var b strings.Builder
	for _, name := range sortedKeys(before) {
		old, cur := flat(before[name]), flat(after[name])
		keys := map[string]bool{}
		for k := range old {
			keys[k] = true
		}
		for k := range cur {
			keys[k] = true
		}
		for _, k := range sortedKeys(keys) {
			o, n := old[k], cur[k]
			if o == n {
				continue
			}
			fmt.Fprintf(&b, "  %s: %s: %s -> %s\n", name, k, orDash(o), orDash(n))
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "--"
	}
	return s
}
