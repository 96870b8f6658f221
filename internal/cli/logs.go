package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/spf13/cobra"
)

type logFormat struct {
	timestamps bool
	noPrefix   bool
	tail       int
	since      time.Time
	until      time.Time
}

func logsCommand(g *Globals) *cobra.Command {
	var follow, timestamps, noPrefix bool
	var tail, since, until string
	cmd := &cobra.Command{
		Use:   "logs [SERVICE...]",
		Short: "Show the output of the project's containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			f := logFormat{timestamps: timestamps, noPrefix: noPrefix, tail: -1}
			if tail != "all" {
				if _, err := fmt.Sscanf(tail, "%d", &f.tail); err != nil {
					return fmt.Errorf("--tail %q: want a number or \"all\"", tail)
				}
			}
			var err error
			if f.since, err = parseTimeFlag("since", since); err != nil {
				return err
			}
			if f.until, err = parseTimeFlag("until", until); err != nil {
				return err
			}
			name, err := g.ProjectNameOnly(cmd.Context())
			if err != nil {
				return err
			}
			c, err := g.Client()
			if err != nil {
				return err
			}
			if _, err := c.Stack(cmd.Context(), name); err != nil {
				return err
			}
			if follow {
				err := followLogs(cmd.Context(), c, name, args, f, g.Out)
				if cmd.Context().Err() != nil {
					return nil
				}
				return err
			}
			return printLogs(cmd.Context(), c, name, args, f, g.Out)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "follow the output")
	fl.BoolVarP(&timestamps, "timestamps", "t", false, "show timestamps")
	fl.BoolVar(&noPrefix, "no-log-prefix", false, "do not prefix lines with the container name")
	fl.StringVarP(&tail, "tail", "n", "all", "number of lines to show from the end of each container's log")
	fl.StringVar(&since, "since", "", "show lines since a time (RFC 3339) or a duration ago (e.g. 10m)")
	fl.StringVar(&until, "until", "", "show lines before a time (RFC 3339) or a duration ago")
	return cmd
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time or a duration such as 10m", name, v)
}

func (f logFormat) options(follow bool) api.LogOptions {
	return api.LogOptions{Follow: follow, Tail: f.tail, Since: f.since, Until: f.until}
}

type printer struct {
	mu    sync.Mutex
	out   io.Writer
	f     logFormat
	width int
}

func (p *printer) print(name string, e api.LogEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(name) > p.width {
		p.width = len(name)
	}
	line := e.Line
	if p.f.timestamps {
		line = e.Time.Format(time.RFC3339Nano) + " " + line
	}
	if p.f.noPrefix {
		fmt.Fprintln(p.out, line)
		return
	}
	fmt.Fprintf(p.out, "%-*s | %s\n", p.width, name, line)
}

func liveTasks(ctx context.Context, c *api.Client, project string, services []string) ([]api.Task, error) {
	tasks, err := c.Tasks(ctx, project)
	if err != nil {
		return nil, err
	}
	var out []api.Task
	for _, t := range tasks {
		if t.DesiredState == api.DesiredRunning && t.NodeID != "" && selected(t.Service, services) {
			out = append(out, t)
		}
	}
	return out, nil
}

func readEntries(r io.Reader, fn func(api.LogEntry)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var e api.LogEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			fn(e)
		}
	}
	return sc.Err()
}

// printLogs prints what the containers wrote so far, merged by time.
func printLogs(ctx context.Context, c *api.Client, project string, services []string, f logFormat, out io.Writer) error {
	tasks, err := liveTasks(ctx, c, project, services)
	if err != nil {
		return err
	}
	type named struct {
		name string
		e    api.LogEntry
	}
	var all []named
	for _, t := range tasks {
		rc, err := c.TaskLogs(ctx, t.ID, f.options(false))
		if err != nil {
			continue // not started yet: no log
		}
		_ = readEntries(rc, func(e api.LogEntry) { all = append(all, named{t.Name(), e}) })
		rc.Close()
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].e.Time.Before(all[j].e.Time) })
	p := &printer{out: out, f: f}
	for _, n := range all {
		if len(n.name) > p.width {
			p.width = len(n.name)
		}
	}
	for _, n := range all {
		p.print(n.name, n.e)
	}
	return nil
}

// followLogs streams every container's output, picking up containers that
// start later, until ctx ends.
func followLogs(ctx context.Context, c *api.Client, project string, services []string, f logFormat, out io.Writer) error {
	p := &printer{out: out, f: f}
	following := map[string]bool{}
	var mu sync.Mutex
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		tasks, err := liveTasks(ctx, c, project, services)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, t := range tasks {
			mu.Lock()
			busy := following[t.ID]
			if !busy && (t.Status.State == api.StateRunning || t.Status.State == api.StateExited) {
				following[t.ID] = true
				if len(t.Name()) > p.width {
					p.width = len(t.Name())
				}
				go func(t api.Task) {
					rc, err := c.TaskLogs(ctx, t.ID, f.options(true))
					if err == nil {
						_ = readEntries(rc, func(e api.LogEntry) { p.print(t.Name(), e) })
						rc.Close()
					}
				}(t)
			}
			mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
