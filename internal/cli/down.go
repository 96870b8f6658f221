package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/spf13/cobra"
)

func downCommand(g *Globals) *cobra.Command {
	var volumes bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop and remove the project's containers and networks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, err := g.ProjectNameOnly(cmd.Context())
			if err != nil {
				return err
			}
			c, err := g.Client()
			if err != nil {
				return err
			}
			return runDown(cmd.Context(), c, g.Err, name, volumes)
		},
	}
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "remove the project's named volumes too")
	return cmd
}

// runDown removes a project and waits until its containers and networks
// are gone.
func runDown(ctx context.Context, c *api.Client, out io.Writer, name string, volumes bool) error {
	before, _ := c.Tasks(ctx, name)
	if err := c.RemoveStack(ctx, name, volumes); err != nil {
		if errors.Is(err, api.ErrNotFound) {
			fmt.Fprintf(out, "No project %q is deployed; nothing to remove.\n", name)
			return nil
		}
		return err
	}
	info, _ := c.Stack(ctx, name)
	gone := map[string]bool{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		tasks, err := c.Tasks(ctx, name)
		if err != nil {
			return err
		}
		present := map[string]bool{}
		for _, t := range tasks {
			present[t.ID] = true
		}
		for _, t := range before {
			if !present[t.ID] && !gone[t.ID] {
				gone[t.ID] = true
				fmt.Fprintf(out, " ✔ Container %s  Removed\n", t.Name())
			}
		}
		if _, err := c.Stack(ctx, name); errors.Is(err, api.ErrNotFound) {
			for _, n := range info.Stack.Networks {
				fmt.Fprintf(out, " ✔ Network %s  Removed\n", n.FullName)
			}
			if volumes {
				for _, v := range info.Stack.Volumes {
					if !v.External {
						fmt.Fprintf(out, " ✔ Volume %s  Removed\n", v.FullName)
					}
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted: project %q is still being removed by the server", name)
		case <-tick.C:
		}
	}
}
