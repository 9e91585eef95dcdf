package wwctl

import "github.com/spf13/cobra"

func newImageCmd() *cobra.Command {
	return &cobra.Command{Use: "image", Short: "Manage images (not yet built)"}
}
