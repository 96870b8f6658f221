package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/spf13/cobra"
)

// rolloutLine is what up, rollback, promote and rollout status print of a
// service's rollout; waiting says some of its new tasks wait for their
// health check.
func rolloutLine(name string, r *api.Rollout, waiting bool) string {
	count := fmt.Sprintf("%d/%d", r.Updated, r.Total)
	switch r.State {
	case api.RolloutUpdating:
		if r.Canary > 0 && !r.Promoted {
			return fmt.Sprintf(" ⠿ Service %s  Starting %d canary task(s)", name, r.Canary)
		}
		line := fmt.Sprintf(" ⠿ Service %s  Updating %s", name, count)
		if waiting {
			line += " (waiting for health)"
		}
		return line
	case api.RolloutCanary:
		return fmt.Sprintf(" ⏸ Service %s  Canary %d/%d running: drover promote %s, or drover rollback %s", name, r.Canary, r.Total, name, name)
	case api.RolloutPaused:
		return fmt.Sprintf(" ✘ Service %s  Paused: %s", name, r.Message)
	case api.RolloutCompleted:
		return fmt.Sprintf(" ✔ Service %s  Updated %s", name, count)
	case api.RolloutRollingBack:
		return fmt.Sprintf(" ⠿ Service %s  Rolling back %s: %s", name, count, r.Message)
	case api.RolloutRolledBack:
		return fmt.Sprintf(" ↺ Service %s  Rolled back: %s", name, r.Message)
	}
	return fmt.Sprintf(" ⠿ Service %s  %s", name, r.State)
}

// rolloutFailure says why a followed rollout did not end as asked, or ""
// when it did. A rollback ending is what `drover rollback` asks for, and
// what `up` does not.
func rolloutFailure(name string, r *api.Rollout, rollbackAsked bool) string {
	switch {
	case r.State == api.RolloutPaused && r.Rollback:
		return fmt.Sprintf("service %q: rollback paused: %s (fix the cause, then drover promote %s resumes it)", name, r.Message, name)
	case r.State == api.RolloutPaused:
		return fmt.Sprintf("service %q: update paused: %s (the old tasks keep serving: drover rollback returns to the previous revision, drover promote %s goes on, or fix the file and drover up)", name, r.Message, name)
	case r.State == api.RolloutRolledBack && !rollbackAsked:
		return fmt.Sprintf("service %q: update rolled back: %s", name, r.Message)
	}
	return ""
}

// followRollouts polls the named services' rollouts, printing each change,
// until every one has ended or waits at its canaries. It fails naming the
// services whose rollout paused (or rolled back, unless a rollback was
// asked for).
func followRollouts(ctx context.Context, c *api.Client, out io.Writer, stack string, names []string, rollbackAsked bool) error {
	printed := map[string]string{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := c.Stack(ctx, stack)
		if err != nil {
			return err
		}
		tasks, err := c.Tasks(ctx, stack)
		if err != nil {
			return err
		}
		waiting := map[string]bool{}
		for _, sv := range info.Services {
			for _, t := range tasks {
				if t.Service == sv.Spec.Name && t.DesiredState == api.DesiredRunning && sv.Current(t.SpecVersion) && t.Status.Health == api.HealthStarting {
					waiting[t.Service] = true
				}
			}
		}
		done := true
		var failures []string
		for _, name := range names {
			var sv *api.Service
			for i := range info.Services {
				if info.Services[i].Spec.Name == name {
					sv = &info.Services[i]
				}
			}
			if sv == nil {
				failures = append(failures, fmt.Sprintf("service %q was removed during its rollout", name))
				continue
			}
			r := sv.Rollout
			if r == nil {
				continue
			}
			if line := rolloutLine(name, r, waiting[name]); printed[name] != line {
				printed[name] = line
				fmt.Fprintln(out, line)
			}
			if !r.Ended() && r.State != api.RolloutCanary {
				done = false
				continue
			}
			if f := rolloutFailure(name, r, rollbackAsked); f != "" {
				failures = append(failures, f)
			}
		}
		if done {
			if len(failures) > 0 {
				sort.Strings(failures)
				return errors.New(strings.Join(failures, "; "))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted while following the rollout; it goes on in the server (drover rollout status shows it)")
		case <-tick.C:
		}
	}
}

func historyCommand(g *Globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List the project's revisions: each up that changed a service, and each rollback",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tg, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			revs, err := tg.c.Revisions(cmd.Context(), tg.project)
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(g.Out)
				for _, r := range revs {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			if format != "" && format != "table" {
				return fmt.Errorf("--format %q: want table or json", format)
			}
			writeHistory(g.Out, revs)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "table (default) or json (one revision a line)")
	return cmd
}

// writeHistory prints revisions as a table.
func writeHistory(out io.Writer, revs []api.StackRevision) {
	w := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "REVISION\tCREATED\tKIND\tCHANGED\tOUTCOME")
	for _, r := range revs {
		kind := r.Kind
		if r.Kind == "rollback" {
			kind = "rollback to " + strconv.Itoa(r.RollbackTo)
		}
		outcome := r.Outcome
		if outcome == "paused" || outcome == "rolled back" {
			for _, name := range r.Rollouts {
				if o := r.Outcomes[name]; strings.HasPrefix(o, "paused") || strings.HasPrefix(o, "rolled back") {
					outcome += " (" + name + ": " + o + ")"
					break
				}
			}
		}
		changed := strings.Join(r.Changed, ",")
		if changed == "" {
			changed = "-"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", r.Number, r.CreatedAt.Local().Format("2006-01-02 15:04:05"), kind, changed, outcome)
	}
	w.Flush()
}

func rollbackCommand(g *Globals) *cobra.Command {
	var to int
	var detach bool
	cmd := &cobra.Command{
		Use:   "rollback [SERVICE...]",
		Short: "Return the project (or the services named) to an earlier revision",
		Long: "Returns the services to what they ran at revision --to (default: the revision before the current one), " +
			"as a new revision, replacing their tasks at the pace of their rollback_config. Follows the rollback until it ends unless -d.",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			tg, err := g.target(ctx)
			if err != nil {
				return err
			}
			res, err := tg.c.Rollback(ctx, tg.project, api.RollbackRequest{To: to, Services: args})
			if err != nil {
				return err
			}
			var names []string
			for _, sv := range res.Services {
				names = append(names, sv.Spec.Name)
			}
			target := "the previous revision"
			if len(res.Services) > 0 && res.Services[0].Rollout != nil {
				target = strings.TrimPrefix(res.Services[0].Rollout.Message, "rollback to ")
			}
			fmt.Fprintf(g.Err, "Rolling back %s of project %s to %s (as revision %d)\n", strings.Join(names, ", "), tg.project, target, res.Revision)
			if detach {
				return nil
			}
			return followRollouts(ctx, tg.c, g.Err, tg.project, names, true)
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "revision to return to (drover history lists them); default: the one before the current")
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return at once instead of following the rollback")
	return cmd
}

func promoteCommand(g *Globals) *cobra.Command {
	var detach bool
	cmd := &cobra.Command{
		Use:   "promote [SERVICE...]",
		Short: "Promote the canaries of the services' updates (and resume paused ones)",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			tg, err := g.target(ctx)
			if err != nil {
				return err
			}
			res, err := tg.c.Promote(ctx, tg.project, api.PromoteRequest{Services: args})
			if err != nil {
				return err
			}
			var names []string
			for _, sv := range res.Services {
				names = append(names, sv.Spec.Name)
			}
			fmt.Fprintf(g.Err, "Promoted %s of project %s\n", strings.Join(names, ", "), tg.project)
			if detach {
				return nil
			}
			return followRollouts(ctx, tg.c, g.Err, tg.project, names, false)
		},
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return at once instead of following the update")
	return cmd
}

func rolloutCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "See the services' rollouts"}
	var watch bool
	status := &cobra.Command{
		Use:   "status [SERVICE...]",
		Short: "Show each service's latest rollout; -w follows them until they end",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			tg, err := g.target(ctx)
			if err != nil {
				return err
			}
			svcs, err := tg.services(ctx, args)
			if err != nil {
				return err
			}
			var names []string
			w := tabwriter.NewWriter(g.Out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "SERVICE\tSTATE\tUPDATED\tREVISION\tMESSAGE")
			for _, sv := range svcs {
				r := sv.Rollout
				if r == nil {
					if len(args) > 0 {
						fmt.Fprintf(w, "%s\t-\t-\t-\tnever updated\n", sv.Spec.Name)
					}
					continue
				}
				names = append(names, sv.Spec.Name)
				fmt.Fprintf(w, "%s\t%s\t%d/%d\t%d\t%s\n", sv.Spec.Name, r.State, r.Updated, r.Total, r.Revision, r.Message)
			}
			w.Flush()
			if !watch || len(names) == 0 {
				return nil
			}
			slices.Sort(names)
			return followRollouts(ctx, tg.c, g.Err, tg.project, names, false)
		},
	}
	status.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollouts until they end")
	cmd.AddCommand(status)
	return cmd
}
