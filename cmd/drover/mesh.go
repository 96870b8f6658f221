package main

import (
	"github.com/drover-org/drover/internal/mesh"
	"github.com/spf13/cobra"
)

// meshCommand runs a node's routing mesh; the agent starts it.
func meshCommand() *cobra.Command {
	var dir, tunnel, level string
	cmd := &cobra.Command{
		Use:    "mesh",
		Short:  "Run this node's routing mesh (started by the agent)",
		Args:   cobra.NoArgs,
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(level)
			if err != nil {
				return err
			}
			p := &mesh.Process{Dir: dir, Tunnel: tunnel, Logger: log}
			return p.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "where the mesh keeps its socket and configuration")
	cmd.Flags().StringVar(&tunnel, "tunnel", "", "ADDR:PORT where other nodes reach this node's tasks")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}
