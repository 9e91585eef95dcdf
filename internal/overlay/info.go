package overlay

import (
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
)

// Variables lists the data fields a template reads, as written in it
// (".ThisNode.Kernel.Args", "$netdev.Ipaddr"), sorted, for `wwctl overlay
// info`.
func Variables(name string, text []byte) ([]string, error) {
	t, err := template.New(name).Funcs(stubFuncs).Parse(string(text))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			walkVars(tt.Tree.Root, seen)
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out, nil
}

func walkVars(n parse.Node, seen map[string]bool) {
	switch x := n.(type) {
	case *parse.ListNode:
		if x != nil {
			for _, c := range x.Nodes {
				walkVars(c, seen)
			}
		}
	case *parse.ActionNode:
		walkVars(x.Pipe, seen)
	case *parse.PipeNode:
		if x == nil {
			return
		}
		for _, c := range x.Cmds {
			walkVars(c, seen)
		}
	case *parse.CommandNode:
		for _, a := range x.Args {
			walkVars(a, seen)
		}
	case *parse.FieldNode:
		seen["."+strings.Join(x.Ident, ".")] = true
	case *parse.VariableNode:
		if len(x.Ident) > 1 {
			seen[strings.Join(x.Ident, ".")] = true
		}
	case *parse.ChainNode:
		walkVars(x.Node, seen)
	case *parse.IfNode:
		walkBranch(&x.BranchNode, seen)
	case *parse.RangeNode:
		walkBranch(&x.BranchNode, seen)
	case *parse.WithNode:
		walkBranch(&x.BranchNode, seen)
	case *parse.TemplateNode:
		walkVars(x.Pipe, seen)
	}
}

func walkBranch(b *parse.BranchNode, seen map[string]bool) {
	walkVars(b.Pipe, seen)
	walkVars(b.List, seen)
	if b.ElseList != nil {
		walkVars(b.ElseList, seen)
	}
}
