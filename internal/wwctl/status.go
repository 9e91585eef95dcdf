package wwctl

import "github.com/spf13/cobra"

// newNodeStatusCmd is `wwctl node status`: what warewulfd last saw of each node.
func newNodeStatusCmd() *cobra.Command {
	return &cobra.Command{Use: "status", Short: "Show each node's last provisioning stage (not yet built)"}
}
