package wwctl

import "github.com/spf13/cobra"

func newOverlayCmd() *cobra.Command {
	return &cobra.Command{Use: "overlay", Short: "Manage overlays (not yet built)"}
}
