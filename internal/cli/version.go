package cli

import (
	"fmt"
	"runtime"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func versionCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the client's and the server's versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(g.Out, "Client:\n Version:\t%s\n Go version:\t%s\n", g.Version, runtime.Version())
			c, err := g.Client()
			if err != nil {
				return err
			}
			v, err := c.Version(cmd.Context())
			if err != nil {
				fmt.Fprintf(g.Out, "Server: not reachable at %s\n", c.Host())
				return nil
			}
			fmt.Fprintf(g.Out, "Server:\n Version:\t%s\n Go version:\t%s\n API:\t%s\n", v.Version, v.GoVersion, v.API)
			return nil
		},
	}
}

func lsCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List deployed projects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.Client()
			if err != nil {
				return err
			}
			stacks, err := c.Stacks(cmd.Context())
			if err != nil {
				return err
			}
			tasks, err := c.Tasks(cmd.Context(), "")
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.Out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATUS\tSERVICES")
			for _, s := range stacks {
				running := 0
				for _, t := range tasks {
					if t.Stack == s.Stack.Name && t.Status.State == "running" {
						running++
					}
				}
				status := fmt.Sprintf("running(%d)", running)
				if s.Stack.Removing {
					status = "removing"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\n", s.Stack.Name, status, len(s.Services))
			}
			return tw.Flush()
		},
	}
}
