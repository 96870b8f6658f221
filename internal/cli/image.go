package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func imageCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage images"}
	var input string
	load := &cobra.Command{
		Use:   "load -i FILE",
		Short: "Load an OCI image-layout or docker-save archive into the cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r io.Reader = os.Stdin
			if input == "" {
				return fmt.Errorf("--input/-i is required: a file, or - for standard input")
			}
			if input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return fmt.Errorf("--input: %w", err)
				}
				defer f.Close()
				r = f
			}
			c, err := g.Client()
			if err != nil {
				return err
			}
			res, err := c.LoadImage(cmd.Context(), r)
			if err != nil {
				return fmt.Errorf("load %s: %w", input, err)
			}
			if len(res.Images) == 0 {
				return fmt.Errorf("load %s: the archive names no image", input)
			}
			for _, im := range res.Images {
				fmt.Fprintf(g.Out, "Loaded image: %s\n", im.Name)
			}
			return nil
		},
	}
	load.Flags().StringVarP(&input, "input", "i", "", "archive to read (- for standard input)")
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the images the nodes hold",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.Client()
			if err != nil {
				return err
			}
			imgs, err := c.Images(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.Out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDIGEST\tSIZE\tNODES")
			for _, im := range imgs {
				d := im.Digest
				if len(d) > 19 {
					d = d[:19]
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", im.Name, d, humanBytes(im.Size), strings.Join(im.Nodes, ","))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(load, ls)
	return cmd
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
