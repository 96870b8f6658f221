package cli

import (
	"fmt"

	"github.com/drover-org/drover/internal/compose"
	"github.com/spf13/cobra"
)

func configCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Validate the Compose files and print the normalized model",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := g.LoadProject(cmd.Context())
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(g.Err, "WARN", w.String())
			}
			b, err := compose.ConfigYAML(res.Project)
			if err != nil {
				return err
			}
			_, err = g.Out.Write(b)
			return err
		},
	}
}
