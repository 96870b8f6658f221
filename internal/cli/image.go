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
			var total int64 = -1
			if input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return fmt.Errorf("--input: %w", err)
				}
				defer f.Close()
				r = f
				if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
					total = st.Size()
				}
			}
			c, err := g.Client()
			if err != nil {
				return err
			}
			pr := newUploadProgress(r, total, g.Err, isTerminal(g.Err))
			res, err := c.LoadImage(cmd.Context(), pr)
			pr.finish(err == nil)
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
		Short:   "List the cluster's images: in the server's content store (STORED), and the ready nodes that hold each",
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
			fmt.Fprintln(tw, "NAME\tDIGEST\tSIZE\tSTORED\tNODES")
			for _, im := range imgs {
				d := im.Digest
				if len(d) > 19 {
					d = d[:19]
				}
				stored := "no"
				if im.Stored {
					stored = "yes"
				}
				nodes := strings.Join(im.Nodes, ",")
				if nodes == "" {
					nodes = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", im.Name, d, humanBytes(im.Size), stored, nodes)
			}
			return tw.Flush()
		},
	}
	var force bool
	rm := &cobra.Command{
		Use:     "rm IMAGE...",
		Aliases: []string{"remove"},
		Short:   "Remove images from the server's content store and every node",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.Client()
			if err != nil {
				return err
			}
			var failed []string
			for _, name := range args {
				res, err := c.RemoveImage(cmd.Context(), name, force)
				if err != nil {
					return fmt.Errorf("image rm %s: %w", name, err)
				}
				where := []string{}
				if res.Stored {
					where = append(where, "content store")
				}
				where = append(where, res.Nodes...)
				fmt.Fprintf(g.Out, "Removed image: %s (%s)\n", res.Name, strings.Join(where, ", "))
				for node, why := range res.Failed {
					failed = append(failed, fmt.Sprintf("%s on node %s: %s", res.Name, node, why))
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("not removed everywhere (run `drover image rm` again when the nodes are back):\n  %s", strings.Join(failed, "\n  "))
			}
			return nil
		},
	}
	rm.Flags().BoolVarP(&force, "force", "f", false, "remove even while services use the image")
	cmd.AddCommand(load, ls, rm)
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
