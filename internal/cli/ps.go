package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/spf13/cobra"
)

// Publisher is a published port in `ps --format json`, as Docker Compose
// prints it.
type Publisher struct {
	URL           string
	TargetPort    uint16
	PublishedPort uint16
	Protocol      string
}

// PSEntry is one line of `ps --format json`, in Docker Compose's shape.
type PSEntry struct {
	ID         string
	Name       string
	Image      string
	Command    string
	Project    string
	Service    string
	Created    int64
	State      string
	Status     string
	Health     string
	ExitCode   int
	Publishers []Publisher
	Node       string
}

func psCommand(g *Globals) *cobra.Command {
	var format string
	var all bool
	cmd := &cobra.Command{
		Use:   "ps [SERVICE...]",
		Short: "List the project's containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json", format)
			}
			name, err := g.ProjectNameOnly(cmd.Context())
			if err != nil {
				return err
			}
			c, err := g.Client()
			if err != nil {
				return err
			}
			tasks, err := c.Tasks(cmd.Context(), name)
			if err != nil {
				return err
			}
			var entries []PSEntry
			for _, t := range tasks {
				if t.DesiredState != api.DesiredRunning || !selected(t.Service, args) {
					continue
				}
				e := psEntry(t, time.Now())
				if !all && e.State != "running" && e.State != "created" {
					continue
				}
				entries = append(entries, e)
			}
			return printPS(g.Out, entries, format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json (one object per line)")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show stopped containers too")
	return cmd
}

func selected(service string, want []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		if w == service {
			return true
		}
	}
	return false
}

func psEntry(t api.Task, now time.Time) PSEntry {
	e := PSEntry{
		ID: t.ID, Name: t.Name(), Image: t.Spec.Image, Project: t.Stack, Service: t.Service,
		Created: t.CreatedAt.Unix(), ExitCode: t.Status.ExitCode, Node: t.NodeID, Publishers: []Publisher{},
	}
	e.Command = strings.Join(append(append([]string{}, t.Spec.Entrypoint...), t.Spec.Command...), " ")
	switch t.Status.State {
	case api.StateRunning:
		e.State = "running"
		e.Health = t.Status.Health
		e.Status = "Up " + humanDuration(now.Sub(t.Status.StartedAt))
		if e.Health != "" {
			e.Status += " (" + e.Health + ")"
		}
	case api.StateExited:
		e.State = "exited"
		e.Status = fmt.Sprintf("Exited (%d) %s ago", t.Status.ExitCode, humanDuration(now.Sub(t.Status.FinishedAt)))
	case api.StateFailed:
		e.State = "exited"
		e.ExitCode = -1
		e.Status = "Failed: " + t.Status.Message
	case api.StateStopping, api.StateRemoved:
		e.State = "removing"
		e.Status = "Removing"
	default:
		e.State = "created"
		e.Status = "Created"
		if t.Unplaced != "" {
			e.Status = "Pending: " + t.Unplaced
		} else if t.Status.Message != "" {
			e.Status = "Created: " + t.Status.Message
		}
	}
	for _, p := range t.Spec.Ports {
		if p.Published == 0 {
			continue
		}
		url := p.HostIP
		if url == "" {
			url = "0.0.0.0"
		}
		e.Publishers = append(e.Publishers, Publisher{URL: url, TargetPort: p.Target, PublishedPort: p.Published, Protocol: p.Protocol})
	}
	e.Publishers = append(e.Publishers, exposedPublishers(t.Spec)...)
	return e
}

// exposedPublishers are the ports of expose that no published port
// covers, as Docker Compose lists them: no URL, published port 0.
func exposedPublishers(s api.ServiceSpec) []Publisher {
	published := map[string]bool{}
	for _, p := range s.Ports {
		if p.Published != 0 {
			published[fmt.Sprintf("%d/%s", p.Target, p.Protocol)] = true
		}
	}
	var out []Publisher
	for _, x := range s.Expose {
		ports, proto, _ := strings.Cut(x, "/")
		lo, hi, _ := strings.Cut(ports, "-")
		first, err1 := strconv.ParseUint(lo, 10, 16)
		last, err2 := strconv.ParseUint(hi, 10, 16)
		if err2 != nil {
			last, err2 = first, nil
		}
		if err1 != nil || last < first {
			continue
		}
		for port := first; port <= last; port++ {
			if !published[fmt.Sprintf("%d/%s", port, proto)] {
				out = append(out, Publisher{TargetPort: uint16(port), Protocol: proto})
			}
		}
	}
	return out
}

func printPS(w io.Writer, entries []PSEntry, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIMAGE\tCOMMAND\tSERVICE\tCREATED\tSTATUS\tPORTS")
	for _, e := range entries {
		var ports []string
		for _, p := range e.Publishers {
			if p.PublishedPort == 0 {
				ports = append(ports, fmt.Sprintf("%d/%s", p.TargetPort, p.Protocol))
				continue
			}
			ports = append(ports, fmt.Sprintf("%s:%d->%d/%s", p.URL, p.PublishedPort, p.TargetPort, p.Protocol))
		}
		cmd := strings.Join(strings.Fields(e.Command), " ")
		if len(cmd) > 30 {
			cmd = cmd[:27] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%q\t%s\t%s ago\t%s\t%s\n", e.Name, e.Image, cmd, e.Service,
			humanDuration(time.Since(time.Unix(e.Created, 0))), e.Status, strings.Join(ports, ", "))
	}
	return tw.Flush()
}

func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0 seconds"
	case d < time.Minute:
		return fmt.Sprintf("%d seconds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
