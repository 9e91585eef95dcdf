package overlay

import (
	"reflect"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// TemplateInfo is what `wwctl overlay info` shows of a template: its
// documentation and the variables it reads.
type TemplateInfo struct {
	// Doc is the text of the template's {{/* wwdoc...: text */}}
	// comments, in the order of their keys (wwdoc, wwdoc-details, wwdoc1).
	Doc  []string
	Vars []VarInfo // sorted by name
}

// VarInfo is one variable a template reads.
type VarInfo struct {
	Name   string // as the template writes it: ".Kernel.Args", "$netdev.Ipaddr"
	Option string // the `node set` flag that sets it ("--kernelargs"), or ""
	Type   string // upstream's name for its type ("[]string", "IP"), or ""
	Help   string // the template's {{/* NAME: help */}}, else the field's
}

// Describe finds the variables a template reads by walking its parse tree
// with the types of the data it is rendered with (nodeData): a variable is
// known by where it is in that data, so `.Warewulf.Port` (the server's
// port) is not the IPMI port and `$.Ipaddr` (the controller's address) is
// not a network device's. What names no field of the data is left out; a
// method of a value (`.OnBoot.BoolDefaultTrue`) stands for that value.
func Describe(name string, text []byte) (*TemplateInfo, error) {
	// Parse as a render does, for its errors (unknown functions too) ...
	if _, err := template.New(name).Funcs(stubFuncs).Parse(string(text)); err != nil {
		return nil, err
	}
	// ... and again keeping the comments, which text/template drops.
	tr := parse.New(name)
	tr.Mode = parse.ParseComments | parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := tr.Parse(string(text), "", "", trees); err != nil {
		return nil, err
	}
	w := &infoWalker{found: map[string]*foundVar{}, comments: map[string]string{}}
	root := reflect.TypeOf(nodeData{})
	names := make([]string, 0, len(trees))
	for n := range trees {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// A defined template is taken to be called with the dot, as
		// {{ template "x" . }} nearly always is.
		w.walk(trees[n].Root, root, map[string]reflect.Type{"$": root})
	}

	info := &TemplateInfo{}
	var keys []string
	for k := range w.comments {
		if strings.Contains(k, "wwdoc") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		info.Doc = append(info.Doc, w.comments[k])
	}
	for name, f := range w.found {
		help, commented := w.comments[name]
		if f.typ == nil && !commented {
			continue // a plain $variable: only shown with a comment
		}
		v := VarInfo{Name: name}
		if f.typ != nil {
			v.Type = upstreamTypeName(f.typ)
			if n, ok := upstreamFieldTypes[[2]any{f.rec, f.field}]; ok {
				v.Type = n
			}
			if rec, ok := nodeRecords[f.rec]; ok {
				if lopt, typ, h, ok := fieldDoc(rec, f.field); ok {
					if lopt != "" {
						v.Option = "--" + lopt
					}
					if typ != "" {
						v.Type = typ
					}
					v.Help = h
				}
			}
		}
		if commented {
			v.Help = help
		}
		info.Vars = append(info.Vars, v)
	}
	sort.Slice(info.Vars, func(i, j int) bool { return info.Vars[i].Name < info.Vars[j].Name })
	return info, nil
}

// fieldDoc looks a field up in the node model; a P on the end is the
// template view's pointer field behind a method (WipeTableP, WipeTable).
func fieldDoc(rec reflect.Type, field string) (lopt, typ, help string, ok bool) {
	if lopt, typ, help, ok = node.FieldDoc(rec, field); !ok && strings.HasSuffix(field, "P") {
		lopt, typ, help, ok = node.FieldDoc(rec, strings.TrimSuffix(field, "P"))
	}
	return
}

// nodeRecords maps the template view's types to the node model's records
// they are made from, whose tags name the flags.
var nodeRecords = map[reflect.Type]reflect.Type{
	reflect.TypeOf(nodeData{}):    reflect.TypeOf(node.Conf{}),
	reflect.TypeOf(TNode{}):       reflect.TypeOf(node.Conf{}),
	reflect.TypeOf(TKernel{}):     reflect.TypeOf(node.Kernel{}),
	reflect.TypeOf(TIpmi{}):       reflect.TypeOf(node.Ipmi{}),
	reflect.TypeOf(TNetDev{}):     reflect.TypeOf(node.NetDev{}),
	reflect.TypeOf(TDisk{}):       reflect.TypeOf(node.Disk{}),
	reflect.TypeOf(TPartition{}):  reflect.TypeOf(node.Partition{}),
	reflect.TypeOf(TFileSystem{}): reflect.TypeOf(node.FileSystem{}),
}

// upstreamTypeNames are upstream's names of the types the template view
// mirrors, so that the TYPE column reads as upstream's does.
var upstreamTypeNames = map[reflect.Type]string{
	reflect.TypeOf(TNode{}):        "node.Node",
	reflect.TypeOf(TKernel{}):      "node.KernelConf",
	reflect.TypeOf(TIpmi{}):        "node.IpmiConf",
	reflect.TypeOf(TNetDev{}):      "node.NetDev",
	reflect.TypeOf(TDisk{}):        "node.Disk",
	reflect.TypeOf(TPartition{}):   "node.Partition",
	reflect.TypeOf(TFileSystem{}):  "node.FileSystem",
	reflect.TypeOf(WWbool("")):     "wwtype.WWbool",
	reflect.TypeOf(DhcpData{}):     "config.DHCPConf",
	reflect.TypeOf(NfsData{}):      "config.NFSConf",
	reflect.TypeOf(NfsExport{}):    "config.NFSExportConf",
	reflect.TypeOf(SshData{}):      "config.SSHConf",
	reflect.TypeOf(WarewulfData{}): "config.WarewulfConf",
	reflect.TypeOf(TftpData{}):     "config.TFTPConf",
	reflect.TypeOf(PathsData{}):    "config.BuildConfig",
}

// upstreamFieldTypes are upstream's types of the fields the view types
// otherwise (a method for a field, a pointer, any for node.Resource).
var upstreamFieldTypes = map[[2]any]string{
	{reflect.TypeOf(nodeData{}), "AllNodes"}:  "[]node.Node",
	{reflect.TypeOf(nodeData{}), "Node"}:      "node.Node",
	{reflect.TypeOf(nodeData{}), "Resources"}: "map[string]node.Resource",
	{reflect.TypeOf(TNode{}), "Resources"}:    "map[string]node.Resource",
}

func upstreamTypeName(t reflect.Type) string {
	if n, ok := upstreamTypeNames[t]; ok {
		return n
	}
	if t.Name() == "" {
		switch t.Kind() {
		case reflect.Pointer:
			return "*" + upstreamTypeName(t.Elem())
		case reflect.Slice:
			return "[]" + upstreamTypeName(t.Elem())
		case reflect.Map:
			return "map[" + upstreamTypeName(t.Key()) + "]" + upstreamTypeName(t.Elem())
		}
	}
	return t.String()
}

// foundVar is a variable the template reads: the type of its value and
// the struct and field it is, or a nil typ for a plain $variable.
type foundVar struct {
	typ   reflect.Type
	rec   reflect.Type
	field string
}

type infoWalker struct {
	found    map[string]*foundVar
	comments map[string]string // {{/* key: value */}}
}

// walk visits n with dot of type dot (nil: not known) and the template
// variables in scope; a nil type is a variable of unknown type.
func (w *infoWalker) walk(n parse.Node, dot reflect.Type, vars map[string]reflect.Type) {
	switch x := n.(type) {
	case *parse.ListNode:
		if x == nil {
			return
		}
		for _, c := range x.Nodes {
			w.walk(c, dot, vars)
		}
	case *parse.CommentNode:
		w.comment(x.Text)
	case *parse.ActionNode:
		w.pipe(x.Pipe, dot, vars)
	case *parse.TemplateNode:
		w.pipe(x.Pipe, dot, vars)
	case *parse.IfNode:
		inner := copyVars(vars)
		w.pipe(x.Pipe, dot, inner)
		w.walk(x.List, dot, inner)
		w.walk(x.ElseList, dot, inner)
	case *parse.WithNode:
		inner := copyVars(vars)
		w.pipe(x.Pipe, dot, inner)
		w.walk(x.List, pipeType(x.Pipe, dot, vars), inner)
		w.walk(x.ElseList, dot, copyVars(vars))
	case *parse.RangeNode:
		inner := copyVars(vars)
		w.args(x.Pipe, dot, inner)
		key, elem := rangeTypes(pipeType(x.Pipe, dot, vars))
		switch len(x.Pipe.Decl) {
		case 1:
			inner[x.Pipe.Decl[0].Ident[0]] = elem
		case 2:
			inner[x.Pipe.Decl[0].Ident[0]] = key
			inner[x.Pipe.Decl[1].Ident[0]] = elem
		}
		w.walk(x.List, elem, inner)
		w.walk(x.ElseList, dot, copyVars(vars))
	}
}

// pipe records what a pipeline reads, then the variables it declares.
func (w *infoWalker) pipe(p *parse.PipeNode, dot reflect.Type, vars map[string]reflect.Type) {
	if p == nil {
		return
	}
	w.args(p, dot, vars)
	if len(p.Decl) > 0 {
		t := pipeType(p, dot, vars)
		for _, d := range p.Decl {
			vars[d.Ident[0]] = t
		}
	}
}

func (w *infoWalker) args(p *parse.PipeNode, dot reflect.Type, vars map[string]reflect.Type) {
	if p == nil {
		return
	}
	for _, c := range p.Cmds {
		for _, a := range c.Args {
			w.arg(a, dot, vars)
		}
	}
}

func (w *infoWalker) arg(a parse.Node, dot reflect.Type, vars map[string]reflect.Type) {
	switch x := a.(type) {
	case *parse.FieldNode:
		w.record("", dot, x.Ident)
	case *parse.VariableNode:
		t, ok := vars[x.Ident[0]]
		if !ok {
			return
		}
		if len(x.Ident) == 1 {
			if _, seen := w.found[x.Ident[0]]; !seen {
				w.found[x.Ident[0]] = &foundVar{}
			}
			return
		}
		w.record(x.Ident[0], t, x.Ident[1:])
	case *parse.ChainNode:
		w.arg(x.Node, dot, vars)
	case *parse.PipeNode:
		w.args(x, dot, vars)
	}
}

// record notes the variable head.idents[0]... read from a value of type t.
func (w *infoWalker) record(head string, t reflect.Type, idents []string) {
	f, n := resolve(t, idents)
	if f == nil {
		return
	}
	w.found[head+"."+strings.Join(idents[:n], ".")] = f
}

// resolve walks idents from a value of type t: struct fields and methods,
// map keys. It returns what the variable is and how many of idents name
// it: fewer than all when the rest are methods of the value (.String,
// .BoolDefaultTrue). It returns nil when idents name nothing there.
func resolve(t reflect.Type, idents []string) (*foundVar, int) {
	f := &foundVar{typ: t}
	for i, id := range idents {
		cur := f.typ
		for cur != nil && cur.Kind() == reflect.Pointer {
			cur = cur.Elem()
		}
		switch {
		case cur == nil:
			return nil, 0
		case cur.Kind() == reflect.Map:
			f = &foundVar{typ: cur.Elem()} // a key
		case cur.Kind() == reflect.Interface:
			return f, len(idents) // what is under it is not known before a render
		case cur.Kind() == reflect.Struct:
			if sf, ok := cur.FieldByName(id); ok && sf.IsExported() {
				f = &foundVar{typ: sf.Type, rec: declaringStruct(cur, sf.Index), field: id}
			} else if m, ok := reflect.PointerTo(cur).MethodByName(id); ok && m.Type.NumOut() > 0 {
				f = &foundVar{typ: m.Type.Out(0), rec: cur, field: id}
			} else {
				return nil, 0
			}
		default:
			if _, ok := reflect.PointerTo(cur).MethodByName(id); ok && i > 0 {
				return f, i
			}
			return nil, 0
		}
	}
	return f, len(idents)
}

// declaringStruct is the struct that declares the field at index of t:
// Cluster for the controller's fields nodeData embeds.
func declaringStruct(t reflect.Type, index []int) reflect.Type {
	for _, i := range index[:len(index)-1] {
		t = t.Field(i).Type
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
	}
	return t
}

// pipeType is the type of a pipeline's value when it is one field or
// variable, else nil.
func pipeType(p *parse.PipeNode, dot reflect.Type, vars map[string]reflect.Type) reflect.Type {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return nil
	}
	switch x := p.Cmds[0].Args[0].(type) {
	case *parse.DotNode:
		return dot
	case *parse.FieldNode:
		if f, n := resolve(dot, x.Ident); f != nil && n == len(x.Ident) {
			return f.typ
		}
	case *parse.VariableNode:
		t := vars[x.Ident[0]]
		if f, n := resolve(t, x.Ident[1:]); f != nil && n == len(x.Ident)-1 {
			return f.typ
		}
	case *parse.PipeNode:
		return pipeType(x, dot, vars)
	}
	return nil
}

// rangeTypes are the key and element types of a range over t.
func rangeTypes(t reflect.Type) (key, elem reflect.Type) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return nil, nil
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return reflect.TypeOf(0), t.Elem()
	case reflect.Map:
		return t.Key(), t.Elem()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return t, t
	}
	return nil, nil
}

// comment keeps a {{/* key: value */}} comment.
func (w *infoWalker) comment(text string) {
	text = strings.TrimSuffix(strings.TrimPrefix(text, "/*"), "*/")
	k, v, ok := strings.Cut(strings.TrimSpace(text), ":")
	if ok && strings.TrimSpace(k) != "" {
		w.comments[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
}

func copyVars(vars map[string]reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, len(vars))
	for k, v := range vars {
		out[k] = v
	}
	return out
}
