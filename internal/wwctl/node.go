package wwctl

import "github.com/spf13/cobra"

func newNodeCmd() *cobra.Command {
	return &cobra.Command{Use: "node", Short: "Manage nodes"}
}

func newProfileCmd() *cobra.Command {
	return &cobra.Command{Use: "profile", Short: "Manage profiles"}
}
