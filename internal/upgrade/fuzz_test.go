package upgrade

import (
	"testing"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// FuzzNodes: any nodes.conf, of any release, is read, upgraded, validated
// and listed without a panic, and an upgrade of the result changes nothing.
func FuzzNodes(f *testing.F) {
	f.Add([]byte("nodeprofiles:\n  default:\n    container name: x\n    kernel: {args: quiet, override: k}\nnodes:\n  n1: {profiles: [default, ~x], ipmi ipaddr: 10.0.0.1, network devices: {eth0: {default: \"true\", ipcidr: 10.0.0.2/24}}}\n"))
	f.Add([]byte("nodes:\n  n1: {disks: {/dev/vda: {wipe_table: true, partitions: {p: {number: \"1\"}}}}, resources: {fstab: [{spec: a}]}}\n"))
	f.Add([]byte("nodeprofiles: {p1: {profiles: [p2]}, p2: {profiles: [p1]}}\nnodes: {n1: {profiles: [p1, missing]}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, _, err := Nodes(data, NodesOptions{AddDefaults: true, ReplaceOverlays: true, Exports: []Export{{Path: "/home"}}})
		if err != nil {
			return
		}
		again, _, err := Nodes(out, NodesOptions{AddDefaults: true, ReplaceOverlays: true, Exports: []Export{{Path: "/home"}}})
		if err != nil {
			t.Fatalf("the upgraded file does not read: %v\n%s", err, out)
		}
		if string(again) != string(out) {
			t.Fatalf("not stable:\n%s\n---\n%s", out, again)
		}
		db, _, err := node.ParseLegacy(out)
		if err != nil {
			t.Fatal(err)
		}
		_ = db.Validate()
		for _, n := range db.NodeNames() {
			if m, err := db.MergedFields(n); err == nil {
				_ = m.Fields()
			}
		}
	})
}
