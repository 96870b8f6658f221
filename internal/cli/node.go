package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/drover-org/drover/api"
	"github.com/spf13/cobra"
)

func nodeCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Manage the cluster's nodes"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.Client()
			if err != nil {
				return err
			}
			nodes, err := c.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.Out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "ID\tHOSTNAME\tSTATUS\tAVAILABILITY\tROLE\tCPUS\tMEMORY\tLABELS")
			for _, n := range nodes {
				var labels []string
				for k, v := range n.Labels {
					labels = append(labels, k+"="+v)
				}
				sort.Strings(labels)
				id := n.ID
				if len(id) > 12 {
					id = id[:12]
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", id, n.Hostname, n.State, n.Availability, n.Role,
					n.CPUs, humanBytes(n.MemoryBytes), strings.Join(labels, ","))
			}
			return tw.Flush()
		},
	}
	inspect := &cobra.Command{
		Use:   "inspect NODE...",
		Short: "Show nodes in detail (JSON)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.Client()
			if err != nil {
				return err
			}
			var out []api.Node
			for _, ref := range args {
				n, err := c.Node(cmd.Context(), ref)
				if err != nil {
					return err
				}
				out = append(out, n)
			}
			b, _ := json.MarshalIndent(out, "", "  ")
			fmt.Fprintln(g.Out, string(b))
			return nil
		},
	}
	var labelAdd, labelRm []string
	var availability string
	update := &cobra.Command{
		Use:   "update [--label-add K=V] [--label-rm K] [--availability active|pause|drain] NODE",
		Short: "Change a node's labels or availability",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u := api.NodeUpdate{LabelRm: labelRm, Availability: availability}
			for _, kv := range labelAdd {
				k, v, _ := strings.Cut(kv, "=")
				if u.LabelAdd == nil {
					u.LabelAdd = map[string]string{}
				}
				u.LabelAdd[k] = v
			}
			c, err := g.Client()
			if err != nil {
				return err
			}
			n, err := c.UpdateNode(cmd.Context(), args[0], u)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.Out, n.ID)
			return nil
		},
	}
	update.Flags().StringArrayVar(&labelAdd, "label-add", nil, "add or change a label (KEY=VALUE)")
	update.Flags().StringArrayVar(&labelRm, "label-rm", nil, "remove a label")
	update.Flags().StringVar(&availability, "availability", "", "active, pause or drain")
	var force bool
	rm := &cobra.Command{
		Use:   "rm [--force] NODE...",
		Short: "Remove nodes from the cluster",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.Client()
			if err != nil {
				return err
			}
			for _, ref := range args {
				if err := c.RemoveNode(cmd.Context(), ref, force); err != nil {
					return err
				}
				fmt.Fprintln(g.Out, ref)
			}
			return nil
		},
	}
	rm.Flags().BoolVarP(&force, "force", "f", false, "remove a node that is still ready")
	var rotate bool
	token := &cobra.Command{
		Use:   "token [--rotate]",
		Short: "Print the token agents join with (--rotate replaces it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.Client()
			if err != nil {
				return err
			}
			method := http.MethodGet
			path := "/v1/cluster/token"
			if rotate {
				method, path = http.MethodPost, path+"?rotate=true"
			}
			var t api.JoinToken
			if err := c.Do(cmd.Context(), method, path, nil, &t); err != nil {
				return err
			}
			fmt.Fprintln(g.Out, t.Token)
			fmt.Fprintf(g.Err, "Join an agent with: drover agent --server %s --token %s --data-dir /var/lib/drover-agent\n", t.Advertise, t.Token)
			return nil
		},
	}
	token.Flags().BoolVar(&rotate, "rotate", false, "replace the token; agents that joined keep working")
	cmd.AddCommand(ls, inspect, update, rm, token)
	return cmd
}
