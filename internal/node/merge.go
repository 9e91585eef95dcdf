package node

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// Merged returns the effective record of one node, as upstream merges it:
// its profiles (nested ones first, each once) in order, then the node
// itself. Scalars: the last one set wins. Lists: appended in order, then
// "~NAME" drops NAME wherever it came from. Maps: merged key by key, and
// a list inside resources is appended to. A profile's comment is not
// inherited. A missing profile or a loop is warned about, naming the
// chain, and skipped, as upstream does.
func (db *DB) Merged(name string) (*Node, error) {
	return db.merge(name, false)
}

// MergedFields is Merged with the record of where each field came from,
// for `node list -a`.
func (db *DB) MergedFields(name string) (*Node, error) {
	return db.merge(name, true)
}

func (db *DB) merge(name string, track bool) (*Node, error) {
	c, ok := db.Nodes[name]
	if !ok {
		return nil, fmt.Errorf("node %q does not exist", name)
	}
	if c == nil {
		c = &Conf{}
	}
	n := &Node{Name: name, Source: map[string]string{}}
	var fm *fieldMap
	if track {
		fm = &fieldMap{byName: map[string]*Field{}}
	}
	for _, p := range db.ProfileChain(name) {
		pc := db.Profiles[p]
		if pc == nil {
			continue
		}
		layer(&n.Conf, pc, p, p, fm)
	}
	layer(&n.Conf, c, "", name, fm)
	n.Profiles = append(List(nil), c.Profiles...)
	n.Comment = c.Comment
	if fm != nil {
		delete(fm.byName, "Profiles")
		delete(fm.byName, "Comment")
		if len(c.Profiles) > 0 {
			fm.set("Profiles", "", strings.Join(c.Profiles, ","))
			fm.byName["Profiles"].Source = ""
		}
		if c.Comment != "" {
			fm.set("Comment", "", c.Comment)
			fm.byName["Comment"].Source = ""
		}
		n.fields = fm.list(&n.Conf)
		for _, f := range n.fields {
			n.Source[f.Field] = f.Source
		}
	}
	n.SystemOverlay = cleanList(n.SystemOverlay)
	n.RuntimeOverlay = cleanList(n.RuntimeOverlay)
	if n.Kernel != nil {
		n.Kernel.Args = cleanList(n.Kernel.Args)
	}
	if _, ok := n.NetDevs[n.PrimaryNetwork]; !ok && len(n.NetDevs) > 0 {
		n.PrimaryNetwork = sortedKeys(n.NetDevs)[0]
	}
	return n, nil
}

// ProfileChain lists the profiles a node takes values from, in merge
// order: each profile's own profiles before it, each profile once, "~NAME"
// removing NAME. Missing profiles and loops are warned about.
func (db *DB) ProfileChain(name string) []string {
	c := db.Nodes[name]
	if c == nil {
		return nil
	}
	visited := map[string]bool{}
	var out []string
	var walk func(list []string, chain []string)
	walk = func(list []string, chain []string) {
		for _, p := range list {
			if strings.HasPrefix(p, "~") {
				out = append(out, p)
				continue
			}
			here := append(append([]string(nil), chain...), p)
			if visited[p] {
				if contains(chain, p) {
					warnOnce("profile loop: %s", strings.Join(here, " -> "))
				}
				continue
			}
			visited[p] = true
			pc, ok := db.Profiles[p]
			if !ok {
				warnOnce("profile %q does not exist (%s)", p, strings.Join(here, " -> "))
				continue
			}
			if pc != nil {
				walk(pc.Profiles, here)
			}
			out = append(out, p)
		}
	}
	walk(c.Profiles, []string{"node " + name})
	return cleanList(out)
}

var warned sync.Map

// warnOnce logs a warning once per process: a missing profile is merged
// for every command and every node that names it.
func warnOnce(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if _, dup := warned.LoadOrStore(msg, true); !dup {
		logrus.Warn(msg)
	}
}

// cleanList drops every "~NAME" entry and every NAME one of them negates.
func cleanList[L ~[]string](list L) L {
	var neg []string
	for _, e := range list {
		if s, ok := strings.CutPrefix(e, "~"); ok {
			neg = append(neg, s)
		}
	}
	if len(neg) == 0 {
		return list
	}
	var out L
	for _, e := range list {
		if strings.HasPrefix(e, "~") || contains(neg, e) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Overlay writes the values src sets into dst, as `node set` would: for
// bulk imports that update records in place. Unlike a merge, a list src
// sets replaces dst's.
func Overlay(dst, src *Conf) {
	mergeInto(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem(), false)
}

// MergedProfile returns a profile on its own, as a Node, for listing.
func (db *DB) MergedProfile(name string) (*Node, error) {
	c, ok := db.Profiles[name]
	if !ok {
		return nil, fmt.Errorf("profile %q does not exist", name)
	}
	if c == nil {
		c = &Conf{}
	}
	n := &Node{Name: name, Source: map[string]string{}}
	fm := &fieldMap{byName: map[string]*Field{}}
	layer(&n.Conf, c, "", name, fm)
	n.fields = fm.list(&n.Conf)
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

// OverlayUsers names the profiles and the nodes that list overlay name as
// a system or runtime overlay of their own, each sorted.
func (db *DB) OverlayUsers(name string) (profiles, nodes []string) {
	lists := func(c *Conf) bool {
		return c != nil && (slices.Contains(c.SystemOverlay, name) || slices.Contains(c.RuntimeOverlay, name))
	}
	for _, n := range db.ProfileNames() {
		if lists(db.Profiles[n]) {
			profiles = append(profiles, n)
		}
	}
	for _, n := range db.NodeNames() {
		if lists(db.Nodes[n]) {
			nodes = append(nodes, n)
		}
	}
	return profiles, nodes
}

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

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// layer merges src into dst and, when fm is given, records the fields src
// set: src named srcName for single values (empty for the node itself) and
// multiName where a list gathers values from several layers.
func layer(dst, src *Conf, srcName, multiName string, fm *fieldMap) {
	mergeInto(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem(), true)
	if fm == nil {
		return
	}
	destVals := map[string]string{}
	walkFields(reflect.ValueOf(dst).Elem(), "", func(name string, v reflect.Value) {
		destVals[name] = valueStr(v)
	})
	walkFields(reflect.ValueOf(src).Elem(), "", func(name string, v reflect.Value) {
		if valueStr(v) == "" {
			return
		}
		s := srcName
		if prev := fm.source(name); prev != "" && isMulti(v) {
			s = prev + "," + multiName
		}
		fm.set(name, s, destVals[name])
	})
}

func isMulti(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice:
		return true
	case reflect.Interface:
		_, ok := v.Interface().([]any)
		return ok
	}
	return false
}

// mergeInto layers src over dst, copying what it takes so that dst never
// shares memory with a profile. appendLists: lists add to dst's (a
// merge); else they replace them (a set).
func mergeInto(dst, src reflect.Value, appendLists bool) {
	var mergeValue func(dst, src reflect.Value)
	mergeValue = func(dst, src reflect.Value) { mergeWith(dst, src, appendLists, mergeValue) }
	mergeValue(dst, src)
}

func mergeWith(dst, src reflect.Value, appendLists bool, mergeValue func(dst, src reflect.Value)) {
	switch src.Kind() {
	case reflect.String:
		if src.Len() > 0 {
			dst.SetString(src.String())
		}
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		if src.Elem().Kind() != reflect.Struct {
			p := reflect.New(src.Type().Elem())
			p.Elem().Set(src.Elem())
			dst.Set(p)
			return
		}
		if dst.IsNil() {
			dst.Set(reflect.New(src.Type().Elem()))
		}
		mergeValue(dst.Elem(), src.Elem())
	case reflect.Struct:
		for i := 0; i < src.NumField(); i++ {
			if src.Type().Field(i).IsExported() {
				mergeValue(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Slice:
		if src.Len() == 0 {
			return
		}
		out := reflect.MakeSlice(src.Type(), 0, dst.Len()+src.Len())
		if appendLists {
			out = reflect.AppendSlice(out, dst)
		}
		dst.Set(reflect.AppendSlice(out, src))
	case reflect.Map:
		if src.Len() == 0 {
			return
		}
		if dst.IsNil() {
			dst.Set(reflect.MakeMap(src.Type()))
		}
		elem := src.Type().Elem()
		iter := src.MapRange()
		for iter.Next() {
			k, v := iter.Key(), iter.Value()
			switch {
			case elem.Kind() == reflect.Pointer && elem.Elem().Kind() == reflect.Struct:
				cur := dst.MapIndex(k)
				if !cur.IsValid() || cur.IsNil() {
					cur = reflect.New(elem.Elem())
				}
				if !v.IsNil() {
					mergeValue(cur.Elem(), v.Elem())
				}
				dst.SetMapIndex(k, cur)
			case elem.Kind() == reflect.Interface:
				var cur any
				if c := dst.MapIndex(k); c.IsValid() {
					cur = c.Interface()
				}
				merged := reflect.Zero(elem) // a null value (resources: {x: })
				if m := mergeAny(cur, v.Interface()); m != nil {
					merged = reflect.ValueOf(m).Convert(elem)
				}
				dst.SetMapIndex(k, merged)
			default:
				dst.SetMapIndex(k, v)
			}
		}
	}
}

// mergeAny merges free-form values (resources): maps key by key, lists
// appended, anything else replaced. The result shares nothing with src.
func mergeAny(dst, src any) any {
	switch s := src.(type) {
	case map[string]any:
		d, ok := dst.(map[string]any)
		if !ok {
			d = map[string]any{}
		} else {
			d = copyAny(d).(map[string]any)
		}
		for k, v := range s {
			d[k] = mergeAny(d[k], v)
		}
		return d
	case []any:
		if d, ok := dst.([]any); ok {
			return append(copyAny(d).([]any), copyAny(s).([]any)...)
		}
	}
	return copyAny(src)
}

func copyAny(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyAny(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyAny(e)
		}
		return out
	}
	return v
}

// valueStr is a field's value as `node list -a` prints it.
func valueStr(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return ""
		}
		if v.Kind() == reflect.Pointer {
			return valueStr(v.Elem())
		}
	case reflect.Slice, reflect.Map:
		if v.IsNil() || v.Len() == 0 {
			return ""
		}
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return fmt.Sprint(v.Bool())
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			parts := make([]string, v.Len())
			for i := range parts {
				parts[i] = v.Index(i).String()
			}
			return strings.Join(parts, ",")
		}
	}
	data, err := json.Marshal(v.Interface())
	if err != nil {
		return fmt.Sprint(v.Interface())
	}
	return string(data)
}

// ProfileLoop returns the chain by which profile p reaches itself through
// profiles' own `profiles:` lists ("p1 -> p2 -> p1"), or "" when it does
// not. Set and add refuse to make one; a file that has one still loads.
func (db *DB) ProfileLoop(p string) string {
	var path []string
	onPath := map[string]bool{}
	done := map[string]bool{}
	var walk func(q string) string
	walk = func(q string) string {
		q = strings.TrimPrefix(q, "~")
		if onPath[q] {
			return strings.Join(append(path, q), " -> ")
		}
		c, ok := db.Profiles[q]
		if !ok || c == nil || done[q] {
			return ""
		}
		onPath[q] = true
		path = append(path, q)
		for _, next := range c.Profiles {
			if strings.HasPrefix(next, "~") {
				continue
			}
			if loop := walk(next); loop != "" {
				return loop
			}
		}
		path = path[:len(path)-1]
		onPath[q] = false
		done[q] = true
		return ""
	}
	return walk(p)
}
