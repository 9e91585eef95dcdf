package overlay

import (
	"reflect"
	"sort"
	"testing"
)

// names is what a template can write after a dot of type t: exported
// fields (those of embedded structs too) and methods, each with the type
// of its value (a method's first result).
func templateNames(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	var fields func(st reflect.Type)
	fields = func(st reflect.Type) {
		for i := 0; i < st.NumField(); i++ {
			f := st.Field(i)
			if f.Anonymous {
				fields(f.Type)
				continue
			}
			if f.IsExported() {
				out[f.Name] = f.Type
			}
		}
	}
	fields(t.Elem())
	for i := 0; i < t.NumMethod(); i++ {
		m := t.Method(i)
		out[m.Name] = m.Type.Out(0)
	}
	return out
}

// A node's renders see nodeData, the render for no node Data: the same
// names, of the same types, so a template reads alike in both.
func TestNodeDataMatchesData(t *testing.T) {
	data := templateNames(reflect.TypeFor[*Data]())
	nd := templateNames(reflect.TypeFor[*nodeData]())
	var names []string
	for n := range data {
		names = append(names, n)
	}
	for n := range nd {
		if _, ok := data[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if data[n] != nd[n] {
			t.Errorf("%s: %v in Data, %v in nodeData", n, data[n], nd[n])
		}
	}
}

// Every node field of nodeData is what Data's method gives for the node.
func TestNodeDataValues(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	db := sampleDB(t)
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	v, err := b.view(db, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range v.nodes {
		st := newRenderState(sb.cfg, sb.hostRoot, b.keys, v.nodes, v.views, Data{Cluster: v.ctl})
		st.reads = newReadCache()
		st.node = n
		d := &Data{Cluster: v.ctl, st: st}
		var nd nodeData
		nd.fill(v.ctl, st)
		dv, ndv := reflect.ValueOf(d), reflect.ValueOf(&nd).Elem()
		for i := 0; i < dv.NumMethod(); i++ {
			m := dv.Type().Method(i)
			if m.Name == "AllNodes" {
				continue
			}
			res := dv.Method(i).Call(nil)
			if len(res) == 2 && !res[1].IsNil() {
				t.Fatalf("%s: %v", m.Name, res[1])
			}
			got := ndv.FieldByName(m.Name)
			if !reflect.DeepEqual(res[0].Interface(), got.Interface()) {
				t.Errorf("node %s, %s: Data has %#v, nodeData %#v", n.Name, m.Name, res[0].Interface(), got.Interface())
			}
		}
	}
}
