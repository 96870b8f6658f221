package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/spf13/cobra"
)

func upCommand(g *Globals) *cobra.Command {
	var detach, removeOrphans, wait, forceRecreate, noRecreate, noStart, confirm bool
	var builds upBuilds
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create and start the project's containers",
		Long: "Deploys the Compose project and waits until every container runs and every changed service's rolling update " +
			"has ended (it fails when one paused or rolled back). With -d it returns then; " +
			"otherwise it streams the containers' logs until Ctrl-C, then takes the project down.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if wait {
				detach = true
				if waitTimeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, waitTimeout)
					defer cancel()
				}
			}
			if forceRecreate && noRecreate {
				return fmt.Errorf("--force-recreate and --no-recreate cannot be used together")
			}
			if builds.always && builds.never {
				return fmt.Errorf("--build and --no-build cannot be used together")
			}
			return runUp(ctx, g, upOptions{detach: detach || noStart, waitHealthy: wait, noStart: noStart, builds: builds,
				deploy: api.DeployOptions{RemoveOrphans: removeOrphans, ForceRecreate: forceRecreate, NoRecreate: noRecreate, NoStart: noStart, Confirm: confirm}})
		},
	}
	cmd.Flags().BoolVar(&forceRecreate, "force-recreate", false, "replace every container, even if its service did not change")
	cmd.Flags().BoolVar(&noRecreate, "no-recreate", false, "keep existing containers even if their service changed")
	cmd.Flags().BoolVar(&noStart, "no-start", false, "create the services but start no container")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the containers run and are healthy (implies -d)")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 0, "with --wait, give up after this long (e.g. 60s)")
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return once the containers run")
	cmd.Flags().BoolVar(&removeOrphans, "remove-orphans", false, "remove services the Compose file no longer defines")
	cmd.Flags().BoolVar(&confirm, "confirm", false, "hold every update at its canaries (1 task unless x-drover.canary says) until drover promote or drover rollback")
	cmd.Flags().BoolVar(&builds.always, "build", false, "build the images of services with build: before starting")
	cmd.Flags().BoolVar(&builds.never, "no-build", false, "build no image, even a missing one")
	builds.flags.register(cmd, false)
	return cmd
}

type upOptions struct {
	detach, waitHealthy, noStart bool
	deploy                       api.DeployOptions
	builds                       upBuilds
}

func runUp(ctx context.Context, g *Globals, o upOptions) error {
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
	if err := buildForUp(ctx, g, c, res, o.builds); err != nil {
		return err
	}
	dr, err := c.Deploy(ctx, res.Spec, o.deploy)
	if err != nil {
		return fmt.Errorf("deploy project %q: %w", res.Spec.Name, err)
	}
	for _, w := range dr.Warnings {
		fmt.Fprintln(g.Err, "WARN", w)
	}
	if len(dr.Orphans) > 0 && !o.deploy.RemoveOrphans {
		fmt.Fprintf(g.Err, "WARN Found orphan services (%s) for project %q. Run up with --remove-orphans to remove them.\n",
			strings.Join(dr.Orphans, ", "), res.Spec.Name)
	}
	if o.noStart {
		for _, s := range dr.Services {
			fmt.Fprintf(g.Err, " ✔ Service %s  Created\n", s.Spec.Name)
		}
		return nil
	}
	// Even with -d: scripts rely on up's exit status saying whether the
	// update made it.
	if err := waitRunning(ctx, c, g.Err, dr, o.waitHealthy); err != nil {
		return err
	}
	if o.detach {
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
	return runDown(dctx, c, g.Err, res.Spec.Name, false)
}

// waitRunning follows the project's tasks until every service has its
// replicas started, printing progress; a task that fails ends it. The
// services a rollout updates (dr.Updated, and those still in an earlier
// rollout) are followed by their rollout instead, in the same loop: they
// are done when it ended or waits at its canaries, and fail when it
// paused or rolled back. Their failing tasks are the rollout's business,
// not a failure of their own.
func waitRunning(ctx context.Context, c *api.Client, out io.Writer, dr api.DeployResult, healthy bool) error {
	// Followed by their rollout too: the services an earlier up or
	// rollback left mid-rollout or paused, which this up did not change.
	follow, want := slices.Clone(dr.Updated), map[string]int{}
	rollingBack := false
	for _, s := range dr.Services {
		r := s.Rollout
		if r == nil {
			continue
		}
		if slices.Contains(dr.Updated, s.Spec.Name) {
			want[s.Spec.Name] = r.Revision
		} else if r.Active() || r.State == api.RolloutPaused {
			follow = append(follow, s.Spec.Name)
			want[s.Spec.Name] = r.Revision
			rollingBack = rollingBack || r.Rollback
		}
	}
	var rollouts *rolloutFollower
	if len(follow) > 0 {
		var asked map[int]bool
		if rollingBack {
			asked = rollbackRevisions(ctx, c, dr.Stack.Name)
		}
		rollouts = newRolloutFollower(out, follow, want, asked)
	}
	versions := map[string]api.Service{}
	for _, s := range dr.Services {
		versions[s.Spec.Name] = s
	}
	printed := map[string]string{}
	var lastUnplaced string
	var nodeNames nodeNamer
	// waiting prints why a task that is not started yet waits: no node
	// for it, or its image on its way.
	waiting := func(t api.Task) {
		if t.Unplaced != "" && t.Unplaced != lastUnplaced {
			lastUnplaced = t.Unplaced
			fmt.Fprintf(out, " ⠿ Container %s  Waiting: %s\n", t.Name(), t.Unplaced)
		}
		// Image transfers can take a while: say so, per node.
		if msg := t.Status.Message; imageMessage(msg) && printed[t.ID] != msg {
			printed[t.ID] = msg
			fmt.Fprintf(out, " ⠿ Container %s  %s%s\n", t.Name(), msg, nodeNames.of(ctx, c, t.NodeID))
		}
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		tasks, err := c.Tasks(ctx, dr.Stack.Name)
		if err != nil {
			return err
		}
		rolloutsDone, rolloutFailures := true, []string(nil)
		if rollouts != nil {
			info, err := c.Stack(ctx, dr.Stack.Name)
			if err != nil {
				return err
			}
			rolloutsDone, rolloutFailures = rollouts.observe(info, tasks)
		}
		done := true
		var failures []string
		perService := map[string]int{}
		for _, t := range tasks {
			sv, ok := versions[t.Service]
			if !ok || t.DesiredState != api.DesiredRunning || !sv.Current(t.SpecVersion) {
				continue
			}
			if rollouts.following(t.Service) {
				if t.Status.State != api.StateRunning && !t.Status.Terminal() {
					waiting(t)
				}
				continue
			}
			perService[t.Service]++
			var line string
			switch t.Status.State {
			case api.StateRunning:
				line = "Started"
				if healthy && t.Status.Health == api.HealthUnhealthy {
					line = "Error"
					t.Status.Message = "unhealthy: " + t.Status.HealthLog
					failures = append(failures, fmt.Sprintf("service %q: container %s is unhealthy", t.Service, t.Name()))
				} else if healthy && t.Status.Health == api.HealthStarting {
					done = false
					continue
				} else if t.Status.Health == api.HealthHealthy {
					line = "Healthy"
				}
			case api.StateExited:
				line = fmt.Sprintf("Exited (%d)", t.Status.ExitCode)
			case api.StateFailed:
				line = "Error"
				failures = append(failures, fmt.Sprintf("service %q: container %s: %s", t.Service, t.Name(), t.Status.Message))
			default:
				done = false
				if strings.HasPrefix(t.Unplaced, api.DependencyFailed) {
					failures = append(failures, fmt.Sprintf("service %q: %s", t.Service, t.Unplaced))
					continue
				}
				waiting(t)
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
			if !rollouts.following(name) && perService[name] < sv.Spec.Replicas {
				done = false
			}
		}
		if len(failures) > 0 {
			sort.Strings(failures)
			more := ""
			if !rolloutsDone {
				more = "; the rollouts of " + strings.Join(rollouts.services, ", ") + " go on (drover rollout status shows them)"
			}
			return fmt.Errorf("%s (the project stays deployed as it is: fix the cause and run `drover up` again, or `drover down`%s)",
				strings.Join(failures, "; "), more)
		}
		// A rollout that failed ends up even if other services still
		// wait: they may wait for it.
		if rolloutsDone && len(rolloutFailures) > 0 {
			return errors.New(strings.Join(rolloutFailures, "; "))
		}
		if done && rolloutsDone {
			return nil
		}
		select {
		case <-ctx.Done():
			goesOn := ""
			if !rolloutsDone {
				goesOn = "; the rollouts go on in the server (drover rollout status shows them)"
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("--wait-timeout ran out before every container was running and healthy; the project stays deployed (`drover down` removes it)%s", goesOn)
			}
			return fmt.Errorf("interrupted while waiting for the containers to start; the project stays deployed (`drover down` removes it)%s", goesOn)
		case <-tick.C:
		}
	}
}

// imageMessage says whether a task's status message is about its image
// (pulled, fetched from the server or imported), which up shows.
func imageMessage(msg string) bool {
	for _, p := range []string{"pulling image ", "fetching image ", "importing image "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// nodeNamer names nodes for progress lines, asking the server once.
type nodeNamer struct{ names map[string]string }

func (n *nodeNamer) of(ctx context.Context, c *api.Client, id string) string {
	if id == "" {
		return ""
	}
	if n.names == nil {
		n.names = map[string]string{}
		if nodes, err := c.Nodes(ctx); err == nil {
			for _, nd := range nodes {
				n.names[nd.ID] = nd.Hostname
			}
		}
	}
	if name, ok := n.names[id]; ok {
		return " (node " + name + ")"
	}
	return ""
}
