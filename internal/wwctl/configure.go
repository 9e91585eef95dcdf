package wwctl

import "github.com/spf13/cobra"

func newConfigureCmd() *cobra.Command {
	return &cobra.Command{Use: "configure", Short: "Manage configures (not yet built)"}
}
