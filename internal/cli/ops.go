package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/spf13/cobra"
)

// target is what a command acts on: the project, its client and services.
type target struct {
	c       *api.Client
	project string
}

func (g *Globals) target(ctx context.Context) (target, error) {
	name, err := g.ProjectNameOnly(ctx)
	if err != nil {
		return target{}, err
	}
	c, err := g.Client()
	if err != nil {
		return target{}, err
	}
	return target{c: c, project: name}, nil
}

// services lists the project's services (all when names is empty) and
// refuses names it does not have.
func (t target) services(ctx context.Context, names []string) ([]api.Service, error) {
	info, err := t.c.Stack(ctx, t.project)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return info.Services, nil
	}
	var out []api.Service
	for _, n := range names {
		found := false
		for _, s := range info.Services {
			if s.Spec.Name == n {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("no such service: %s", n)
		}
	}
	return out, nil
}

// containers lists the live tasks of the services (all when empty); with
// index > 0, only that replica.
func (t target) containers(ctx context.Context, services []string, index int, runningOnly bool) ([]api.Task, error) {
	if _, err := t.services(ctx, services); err != nil {
		return nil, err
	}
	tasks, err := t.c.Tasks(ctx, t.project)
	if err != nil {
		return nil, err
	}
	var out []api.Task
	for _, tk := range tasks {
		if tk.DesiredState != api.DesiredRunning || !selected(tk.Service, services) || (index > 0 && tk.Slot != index) {
			continue
		}
		if runningOnly && tk.Status.State != api.StateRunning {
			continue
		}
		out = append(out, tk)
	}
	return out, nil
}

// running is the running container of a service's replica index (1 when
// 0), as exec and cp act on one container.
func (t target) running(ctx context.Context, service string, index int) (api.Task, error) {
	if index == 0 {
		index = 1
	}
	tasks, err := t.containers(ctx, []string{service}, index, true)
	if err != nil {
		return api.Task{}, err
	}
	if len(tasks) == 0 {
		return api.Task{}, fmt.Errorf("service %q has no running container with index %d", service, index)
	}
	return tasks[0], nil
}

func serviceOpCommand(g *Globals, use, short, op string) *cobra.Command {
	return &cobra.Command{
		Use:   use + " [SERVICE...]",
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			svcs, err := t.services(cmd.Context(), args)
			if err != nil {
				return err
			}
			for _, s := range svcs {
				if _, err := t.c.ServiceOp(cmd.Context(), t.project, s.Spec.Name, op, nil); err != nil {
					return err
				}
			}
			return waitSettled(cmd.Context(), t, svcs, op, g)
		},
	}
}

// waitSettled waits until the services reflect a stop, start or restart.
func waitSettled(ctx context.Context, t target, svcs []api.Service, op string, g *Globals) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		info, err := t.c.Stack(ctx, t.project)
		if err != nil {
			return err
		}
		tasks, err := t.c.Tasks(ctx, t.project)
		if err != nil {
			return err
		}
		done := true
		for _, want := range svcs {
			for _, s := range info.Services {
				if s.Spec.Name != want.Spec.Name {
					continue
				}
				n := 0
				for _, tk := range tasks {
					if tk.Service != s.Spec.Name {
						continue
					}
					switch {
					case op == "stop":
						done = false // any task left is still going
					case tk.DesiredState == api.DesiredRunning && tk.SpecVersion == s.Version && tk.Status.State == api.StateRunning:
						n++
					}
				}
				if op != "stop" && n < s.Spec.Replicas {
					done = false
				}
			}
		}
		if done {
			verb := map[string]string{"stop": "Stopped", "start": "Started", "restart": "Restarted"}[op]
			for _, s := range svcs {
				fmt.Fprintf(g.Err, " ✔ Service %s  %s\n", s.Spec.Name, verb)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("services did not settle after %s within 2 minutes", op)
}

func taskActionCommand(g *Globals, use, short, action string) *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   use + " [SERVICE...]",
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			tasks, err := t.containers(cmd.Context(), args, 0, true)
			if err != nil {
				return err
			}
			for _, tk := range tasks {
				if err := t.c.TaskAction(cmd.Context(), tk.ID, action, signal); err != nil {
					return fmt.Errorf("%s: %w", tk.Name(), err)
				}
				fmt.Fprintf(g.Err, " ✔ Container %s  %s\n", tk.Name(), map[string]string{"pause": "Paused", "unpause": "Unpaused", "kill": "Killed"}[action])
			}
			return nil
		},
	}
	if action == "kill" {
		cmd.Flags().StringVarP(&signal, "signal", "s", "SIGKILL", "signal to send")
	}
	return cmd
}

func rmCommand(g *Globals) *cobra.Command {
	var force, stop bool
	cmd := &cobra.Command{
		Use:   "rm [SERVICE...]",
		Short: "Remove stopped services' containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			svcs, err := t.services(cmd.Context(), args)
			if err != nil {
				return err
			}
			q := url.Values{}
			if force || stop {
				q.Set("force", "true")
			}
			for _, s := range svcs {
				if !s.Stopped && !force && !stop && !s.OneOff {
					continue // Compose's rm leaves running containers alone
				}
				if _, err := t.c.ServiceOp(cmd.Context(), t.project, s.Spec.Name, "rm", q); err != nil {
					return err
				}
				fmt.Fprintf(g.Err, " ✔ Service %s  Removed\n", s.Spec.Name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not ask; remove running services too")
	cmd.Flags().BoolVarP(&stop, "stop", "s", false, "stop the services first")
	return cmd
}

func scaleCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "scale SERVICE=REPLICAS...",
		Short: "Set the number of containers of services",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			var svcs []api.Service
			for _, a := range args {
				name, n, ok := strings.Cut(a, "=")
				if _, err := strconv.Atoi(n); !ok || err != nil {
					return fmt.Errorf("scale %q: want SERVICE=REPLICAS", a)
				}
				sv, err := t.c.ServiceOp(cmd.Context(), t.project, name, "scale", url.Values{"replicas": {n}})
				if err != nil {
					return err
				}
				svcs = append(svcs, sv)
			}
			return waitSettled(cmd.Context(), t, svcs, "start", g)
		},
	}
}

func topCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "top [SERVICE...]",
		Short: "Show the processes of the project's containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			tasks, err := t.containers(cmd.Context(), args, 0, true)
			if err != nil {
				return err
			}
			for _, tk := range tasks {
				ps, err := t.c.TaskTop(cmd.Context(), tk.ID)
				if err != nil {
					return fmt.Errorf("%s: %w", tk.Name(), err)
				}
				fmt.Fprintln(g.Out, tk.Name())
				tw := tabwriter.NewWriter(g.Out, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "UID\tPID\tPPID\tCMD")
				for _, p := range ps {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", p.User, p.PID, p.PPID, p.Command)
				}
				tw.Flush()
				fmt.Fprintln(g.Out)
			}
			return nil
		},
	}
}

func portCommand(g *Globals) *cobra.Command {
	var proto string
	cmd := &cobra.Command{
		Use:   "port SERVICE PRIVATE_PORT",
		Short: "Print the host address a container port is published on",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			port, err := strconv.Atoi(args[1])
			if err != nil {
				return fmt.Errorf("private port %q: want a number", args[1])
			}
			svcs, err := t.services(cmd.Context(), args[:1])
			if err != nil {
				return err
			}
			for _, p := range svcs[0].Spec.Ports {
				if int(p.Target) == port && p.Protocol == proto && p.Published != 0 {
					ip := p.HostIP
					if ip == "" {
						ip = "0.0.0.0"
					}
					fmt.Fprintf(g.Out, "%s:%d\n", ip, p.Published)
					return nil
				}
			}
			return fmt.Errorf("service %q does not publish port %d/%s", args[0], port, proto)
		},
	}
	cmd.Flags().StringVar(&proto, "protocol", "tcp", "tcp or udp")
	return cmd
}

func imagesCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "images [SERVICE...]",
		Short: "List the images the project's containers use",
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			tasks, err := t.containers(cmd.Context(), args, 0, false)
			if err != nil {
				return err
			}
			imgs, _ := t.c.Images(cmd.Context())
			tw := tabwriter.NewWriter(g.Out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER\tREPOSITORY\tTAG\tIMAGE ID\tSIZE")
			for _, tk := range tasks {
				repo, tag := splitRef(tk.Spec.Image)
				id, size := "", ""
				for _, im := range imgs {
					if r, tg := splitRef(im.Name); strings.HasSuffix(r, repo) && tg == tag {
						id, size = strings.TrimPrefix(im.Digest, "sha256:"), humanBytes(im.Size)
						if len(id) > 12 {
							id = id[:12]
						}
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", tk.Name(), repo, tag, id, size)
			}
			return tw.Flush()
		},
	}
}

func splitRef(ref string) (string, string) {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, "latest"
}

func waitCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait SERVICE...",
		Short: "Wait for the services' containers to stop, print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			first := -1
			for {
				tasks, err := t.containers(cmd.Context(), args, 0, false)
				if err != nil {
					return err
				}
				running := 0
				for _, tk := range tasks {
					if !tk.Status.Terminal() {
						running++
					}
				}
				if running == 0 {
					for _, tk := range tasks {
						fmt.Fprintln(g.Out, tk.Status.ExitCode)
						if first < 0 {
							first = tk.Status.ExitCode
						}
					}
					if first > 0 {
						return exitCode(first)
					}
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(300 * time.Millisecond):
				}
			}
		},
	}
}

func eventsCommand(g *Globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Stream the project's events",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			rc, err := t.c.Events(cmd.Context(), t.project, true)
			if err != nil {
				return err
			}
			defer rc.Close()
			dec := json.NewDecoder(rc)
			for {
				var e api.Event
				if err := dec.Decode(&e); err != nil {
					if cmd.Context().Err() != nil {
						return nil
					}
					return err
				}
				if asJSON {
					b, _ := json.Marshal(e)
					fmt.Fprintln(g.Out, string(b))
					continue
				}
				var attrs []string
				for k, v := range e.Attrs {
					attrs = append(attrs, k+"="+v)
				}
				sort.Strings(attrs)
				attrs = append([]string{"name=" + e.Name}, attrs...)
				fmt.Fprintf(g.Out, "%s %s %s %s (%s)\n", e.Time.Local().Format("2006-01-02 15:04:05.000000"), e.Type, e.Action, e.ID, strings.Join(attrs, ", "))
			}
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per event")
	return cmd
}

func statsCommand(g *Globals) *cobra.Command {
	var noStream bool
	cmd := &cobra.Command{
		Use:   "stats [SERVICE...]",
		Short: "Show the containers' CPU, memory, network and block I/O",
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			prev := map[string]api.ContainerStats{}
			for {
				tasks, err := t.containers(cmd.Context(), args, 0, true)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(g.Out, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "CONTAINER ID\tNAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET I/O\tBLOCK I/O\tPIDS")
				for _, tk := range tasks {
					st, err := t.c.TaskStats(cmd.Context(), tk.ID)
					if err != nil {
						continue
					}
					cpu := 0.0
					if p, ok := prev[tk.ID]; ok && st.Time.After(p.Time) {
						cpu = float64(st.CPUNanos-p.CPUNanos) / float64(st.Time.Sub(p.Time).Nanoseconds()) * 100
					}
					prev[tk.ID] = st
					limit, memPct := "unlimited", ""
					if st.MemoryLimit > 0 && st.MemoryLimit < 1<<62 {
						limit = humanBytes(int64(st.MemoryLimit))
						memPct = fmt.Sprintf("%.2f%%", float64(st.MemoryBytes)/float64(st.MemoryLimit)*100)
					}
					fmt.Fprintf(tw, "%s\t%s\t%.2f%%\t%s / %s\t%s\t%s / %s\t%s / %s\t%d\n", tk.ID[:12], tk.Name(), cpu,
						humanBytes(int64(st.MemoryBytes)), limit, memPct, humanBytes(int64(st.NetRxBytes)), humanBytes(int64(st.NetTxBytes)),
						humanBytes(int64(st.BlockRead)), humanBytes(int64(st.BlockWrite)), st.PIDs)
				}
				tw.Flush()
				if noStream {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
				fmt.Fprintln(g.Out)
			}
		},
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print once and exit")
	return cmd
}

// exitCode makes the command exit with a container's code.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// ExitCode is the code an error asks the process to exit with, and
// whether it is a container's code (which the CLI passes on silently).
func ExitCode(err error) (int, bool) {
	var e exitCode
	if errors.As(err, &e) {
		return int(e), true
	}
	return 1, false
}
