package wwctl

import "github.com/spf13/cobra"

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Manage nodes"}
	cmd.AddCommand(newNodeStatusCmd())
	return cmd
}

func newProfileCmd() *cobra.Command {
	return &cobra.Command{Use: "profile", Short: "Manage profiles"}
}
