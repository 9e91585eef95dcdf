package overlay

import (
	"slices"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// TestBMCPasswordUnsent: only a node whose wwinit would set a BMC password
// that no runtime overlay brings is named.
func TestBMCPasswordUnsent(t *testing.T) {
	db, err := node.Parse([]byte(`nodeprofiles:
  default:
    system overlay: [wwinit, wwclient]
    runtime overlay: [hosts, ipmi.password]
    ipmi: {password: pw, write: "true"}
nodes:
  ok: {profiles: [default]}
  dropped: {profiles: [default], runtime overlay: [~ipmi.password]}
  nowrite: {profiles: [default], runtime overlay: [~ipmi.password], ipmi: {write: "false"}}
  nowwinit: {profiles: [default], runtime overlay: [~ipmi.password], system overlay: [~wwinit]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := BMCPasswordUnsent(db, nil); !slices.Equal(got, []string{"dropped"}) {
		t.Errorf("all nodes: %v, want [dropped]", got)
	}
	if got := BMCPasswordUnsent(db, []string{"ok", "nowrite"}); len(got) != 0 {
		t.Errorf("ok, nowrite: %v, want none", got)
	}
}
