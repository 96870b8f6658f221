package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/spf13/cobra"
)

func upCommand(g *Globals) *cobra.Command {
	var detach, removeOrphans bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create and start the project's containers",
		Long: "Deploys the Compose project and waits until every container runs. With -d it returns then; " +
			"otherwise it streams the containers' logs until Ctrl-C, then takes the project down.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUp(cmd.Context(), g, detach, removeOrphans)
		},
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return once the containers run")
	cmd.Flags().BoolVar(&removeOrphans, "remove-orphans", false, "remove services the Compose file no longer defines")
	return cmd
}

func runUp(ctx context.Context, g *Globals, detach, removeOrphans bool) error {
	res, err := g.LoadProject(ctx)
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(g.Err, "WARN", w.String())
	}
	c, err := g.Client()
	if err != nil {
		return err
	}
	dr, err := c.DeployStack(ctx, res.Spec, removeOrphans)
	if err != nil {
		return fmt.Errorf("deploy project %q: %w", res.Spec.Name, err)
	}
	if len(dr.Orphans) > 0 && !removeOrphans {
		fmt.Fprintf(g.Err, "WARN Found orphan services (%s) for project %q. Run up with --remove-orphans to remove them.\n",
			strings.Join(dr.Orphans, ", "), res.Spec.Name)
	}
	if err := waitRunning(ctx, c, g.Err, dr); err != nil {
		return err
	}
	if detach {
		return nil
	}
	fmt.Fprintf(g.Err, "Attaching to project %s; press Ctrl-C to stop it\n", res.Spec.Name)
	err = followLogs(ctx, c, res.Spec.Name, nil, logFormat{}, g.Out)
	if ctx.Err() == nil {
		return err
	}
	fmt.Fprintln(g.Err, "Gracefully stopping... (press Ctrl-C again to force)")
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return runDown(dctx, c, g.Err, res.Spec.Name)
}

// waitRunning follows the project's tasks until every service has its
// replicas started, printing progress; a task that fails ends it.
func waitRunning(ctx context.Context, c *api.Client, out io.Writer, dr api.DeployResult) error {
	versions := map[string]api.Service{}
	for _, s := range dr.Services {
		versions[s.Spec.Name] = s
	}
	printed := map[string]string{}
	var lastUnplaced string
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		tasks, err := c.Tasks(ctx, dr.Stack.Name)
		if err != nil {
			return err
		}
		done := true
		var failures []string
		perService := map[string]int{}
		for _, t := range tasks {
			sv, ok := versions[t.Service]
			if !ok || t.DesiredState != api.DesiredRunning || t.SpecVersion != sv.Version {
				continue
			}
			perService[t.Service]++
			var line string
			switch t.Status.State {
			case api.StateRunning:
				line = "Started"
			case api.StateExited:
				line = fmt.Sprintf("Exited (%d)", t.Status.ExitCode)
			case api.StateFailed:
				line = "Error"
				failures = append(failures, fmt.Sprintf("service %q: container %s: %s", t.Service, t.Name(), t.Status.Message))
			default:
				done = false
				if t.Unplaced != "" && t.Unplaced != lastUnplaced {
					lastUnplaced = t.Unplaced
					fmt.Fprintf(out, " ⠿ Container %s  Waiting: %s\n", t.Name(), t.Unplaced)
				}
				continue
			}
			if printed[t.ID] != line {
				printed[t.ID] = line
				mark := "✔"
				if line == "Error" {
					mark = "✘"
					line = "Error: " + t.Status.Message
				}
				fmt.Fprintf(out, " %s Container %s  %s\n", mark, t.Name(), line)
			}
		}
		for name, sv := range versions {
			if perService[name] < sv.Spec.Replicas {
				done = false
			}
		}
		if len(failures) > 0 {
			sort.Strings(failures)
			return fmt.Errorf("%s (the project stays deployed as it is: fix the cause and run `drover up` again, or `drover down`)",
				strings.Join(failures, "; "))
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted while waiting for the containers to start; the project stays deployed (`drover down` removes it)")
		case <-tick.C:
		}
	}
}
