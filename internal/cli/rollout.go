package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/spf13/cobra"
)

// pollInterval is how often up and the rollout commands look at the
// server while they follow containers and rollouts.
const pollInterval = 200 * time.Millisecond

// rolloutLine is the progress line of a service's rollout. waiting says
// some of its new tasks run but wait for their health check; asked says
// the rollout is a rollback someone asked for (drover rollback), whose
// end is a success rather than a failure.
func rolloutLine(name string, r *api.Rollout, waiting, asked bool) string {
	count := fmt.Sprintf("%d/%d", r.Updated, r.Total)
	switch r.State {
	case api.RolloutUpdating:
		switch {
		case waiting:
			return fmt.Sprintf(" ⠿ Service %s  Waiting for health", name)
		case r.Canary > 0 && !r.Promoted:
			return fmt.Sprintf(" ⠿ Service %s  Starting %s", name, plural(r.Canary, "canary", "canaries"))
		}
		return fmt.Sprintf(" ⠿ Service %s  Updating %s", name, count)
	case api.RolloutCanary:
		return fmt.Sprintf(" ⏸ Service %s  Canary %d/%d running: drover promote %s, or drover rollback %s", name, r.Canary, r.Total, name, name)
	case api.RolloutPaused:
		return fmt.Sprintf(" ✘ Service %s  Paused: %s", name, r.Message)
	case api.RolloutCompleted:
		return fmt.Sprintf(" ✔ Service %s  Updated %s", name, count)
	case api.RolloutRollingBack:
		switch {
		case waiting:
			return fmt.Sprintf(" ⠿ Service %s  Waiting for health", name)
		case asked && r.Total == 0:
			// Not counted yet: the server counts the tasks on its
			// first pass.
			return fmt.Sprintf(" ⠿ Service %s  Rolling back", name)
		case asked:
			return fmt.Sprintf(" ⠿ Service %s  Rolling back %s", name, count)
		}
		return fmt.Sprintf(" ⠿ Service %s  Rolling back: %s", name, r.Message)
	case api.RolloutRolledBack:
		if asked {
			return fmt.Sprintf(" ✔ Service %s  Rolled back %s", name, count)
		}
		return fmt.Sprintf(" ✘ Service %s  Rolled back: %s", name, r.Message)
	}
	return fmt.Sprintf(" ⠿ Service %s  %s", name, r.State)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// rolloutFailure says why an ended rollout is not what its command asked
// for, or "" when it is. A rollback that ends is what `drover rollback`
// asks for (asked), and what `up` does not.
func rolloutFailure(name string, r *api.Rollout, asked bool) string {
	switch {
	case r.State == api.RolloutPaused && r.Rollback:
		return fmt.Sprintf("service %q: rollback paused: %s (the tasks not yet rolled back keep running; fix the cause, then drover promote %s resumes it)",
			name, failureReason(r.Message), name)
	case r.State == api.RolloutPaused:
		return fmt.Sprintf("service %q: update paused: %s (the tasks not yet replaced keep serving; drover rollback returns to the previous revision, "+
			"or fix the cause and drover up; drover promote %s resumes the update as it is)", name, failureReason(r.Message), name)
	case r.State == api.RolloutRolledBack && !asked:
		return fmt.Sprintf("service %q: update rolled back: %s (it runs its previous spec again; fix the cause and drover up)", name, failureReason(r.Message))
	}
	return ""
}

// failureReason drops the "update failed: " the server starts a failed
// rollout's message with, which the failure's own wording already says.
// Only the display depends on it.
func failureReason(msg string) string {
	for _, p := range []string{"update failed: ", "rollback failed: "} {
		if rest, ok := strings.CutPrefix(msg, p); ok {
			return rest
		}
	}
	return msg
}

// rolloutFollower follows some services' rollouts through polls of their
// stack and tasks: it prints each service's progress line when it changes
// and says when every rollout has ended (or waits at its canaries) and
// which of them failed. up, rollback, promote and rollout status -w share
// it.
type rolloutFollower struct {
	out      io.Writer
	services []string
	// want is the revision each service's rollout belongs to (0: any): a
	// rollout of a later revision, or none, means the one followed was
	// superseded by another up or rollback.
	want map[string]int
	// asked are the revisions that are rollbacks someone asked for: a
	// rollout of one that ends rolled back did what it was asked.
	asked   map[int]bool
	printed map[string]string
}

func newRolloutFollower(out io.Writer, services []string, want map[string]int, asked map[int]bool) *rolloutFollower {
	return &rolloutFollower{out: out, services: services, want: want, asked: asked, printed: map[string]string{}}
}

// following reports whether service's tasks are the follower's business.
func (f *rolloutFollower) following(service string) bool {
	return f != nil && slices.Contains(f.services, service)
}

// observe prints what changed in the rollouts since the last poll and
// reports whether all have ended or wait at their canaries, with a
// failure for each that paused, rolled back unasked or was superseded. A
// rollout already ended when first seen is told by its state.
func (f *rolloutFollower) observe(info api.StackInfo, tasks []api.Task) (done bool, failures []string) {
	done = true
	for _, name := range f.services {
		i := slices.IndexFunc(info.Services, func(s api.Service) bool { return s.Spec.Name == name })
		if i < 0 {
			f.print(name, fmt.Sprintf(" ✘ Service %s  Removed", name))
			failures = append(failures, fmt.Sprintf("service %q was removed before its rollout ended", name))
			continue
		}
		sv := info.Services[i]
		r := sv.Rollout
		if want := f.want[name]; want > 0 && (r == nil || r.Revision != want) {
			line := fmt.Sprintf(" ✘ Service %s  Superseded by a later change", name)
			why := fmt.Sprintf("service %q: its rollout of revision %d was superseded by a later up before it ended (drover rollout status shows where it is)", name, want)
			if r != nil {
				line = fmt.Sprintf(" ✘ Service %s  Superseded by revision %d", name, r.Revision)
				why = fmt.Sprintf("service %q: its rollout of revision %d was superseded by revision %d before it ended (drover rollout status shows where it is)", name, want, r.Revision)
			}
			f.print(name, line)
			failures = append(failures, why)
			continue
		}
		if r == nil {
			// Followed without a revision to hold it to and never
			// updated: nothing to wait for.
			continue
		}
		asked := r.Rollback && f.asked[r.Revision]
		f.print(name, rolloutLine(name, r, waitingForHealth(sv, tasks), asked))
		if !r.Ended() && r.State != api.RolloutCanary {
			done = false
			continue
		}
		if msg := rolloutFailure(name, r, asked); msg != "" {
			failures = append(failures, msg)
		}
	}
	return done, failures
}

func (f *rolloutFollower) print(name, line string) {
	if f.printed[name] != line {
		f.printed[name] = line
		fmt.Fprintln(f.out, line)
	}
}

// waitingForHealth reports whether a task of the service's current spec
// runs and waits for its health check.
func waitingForHealth(sv api.Service, tasks []api.Task) bool {
	for _, t := range tasks {
		if t.Service == sv.Spec.Name && t.DesiredState == api.DesiredRunning && sv.Current(t.SpecVersion) &&
			t.Status.State == api.StateRunning && t.Status.Health == api.HealthStarting {
			return true
		}
	}
	return false
}

// followRollouts polls the project until the follower's rollouts have
// ended, and fails naming each that did not end as asked.
func followRollouts(ctx context.Context, c *api.Client, stack string, f *rolloutFollower) error {
	tick := time.NewTicker(pollInterval)
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
		if done, failures := f.observe(info, tasks); done {
			if len(failures) > 0 {
				return errors.New(strings.Join(failures, "; "))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted while following the rollouts; they go on in the server (drover rollout status shows them)")
		case <-tick.C:
		}
	}
}

// rollbackRevisions are the project's revisions that are rollbacks asked
// for with drover rollback. Without them (an older server, revisions
// past those kept) every rollback counts as a failed update's.
func rollbackRevisions(ctx context.Context, c *api.Client, stack string) map[int]bool {
	out := map[int]bool{}
	revs, err := c.Revisions(ctx, stack)
	if err != nil {
		return out
	}
	for _, r := range revs {
		if r.Kind == "rollback" {
			out[r.Number] = true
		}
	}
	return out
}

func historyCommand(g *Globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List the project's revisions: each up that changed a service, and each rollback",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json", format)
			}
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
			return writeHistory(g.Out, revs)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json (one revision per line)")
	return cmd
}

// writeHistory prints revisions as a table, times in the local zone.
func writeHistory(out io.Writer, revs []api.StackRevision) error {
	w := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, "REVISION\tCREATED\tKIND\tCHANGED\tOUTCOME")
	for _, r := range revs {
		kind := r.Kind
		if r.Kind == "rollback" {
			kind = "rollback to " + strconv.Itoa(r.RollbackTo)
		}
		changed := strings.Join(r.Changed, ",")
		if changed == "" {
			changed = "-"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", r.Number, r.CreatedAt.Local().Format(time.DateTime), kind, changed, revisionOutcome(r))
	}
	return w.Flush()
}

// revisionOutcome is a revision's outcome, with why for the first
// service that paused or rolled back. A rollback revision's services
// ending rolled back is what it asked for: no why to tell.
func revisionOutcome(r api.StackRevision) string {
	if r.Outcome != api.RolloutPaused && (r.Outcome != "rolled back" || r.Kind == "rollback") {
		return r.Outcome
	}
	for _, name := range r.Rollouts {
		// Outcomes read "paused: why" and "rolled back: why".
		state, why, ok := strings.Cut(r.Outcomes[name], ": ")
		if ok && (state == api.RolloutPaused || state == "rolled back") {
			return fmt.Sprintf("%s (%s: %s)", r.Outcome, name, why)
		}
	}
	return r.Outcome
}

func rollbackCommand(g *Globals) *cobra.Command {
	var to int
	var detach bool
	cmd := &cobra.Command{
		Use:   "rollback [SERVICE...]",
		Short: "Return the project (or the services named) to an earlier revision",
		Long: "Returns the services to what they ran at revision --to (default: the one before the latest; drover history lists them), " +
			"as a new revision, replacing their tasks at the pace of their rollback_config. " +
			"Follows the rollback until it ends, and fails if it paused, unless -d.",
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
			if to == 0 {
				to = rollbackTarget(ctx, tg.c, tg.project, res.Revision)
			}
			target := "the previous revision"
			if to > 0 {
				target = "revision " + strconv.Itoa(to)
			}
			fmt.Fprintf(g.Err, "Rolled back project %s to %s (as revision %d)\n", tg.project, target, res.Revision)
			f := newRolloutFollower(g.Err, nil, map[string]int{}, map[int]bool{res.Revision: true})
			for _, sv := range res.Services {
				f.services = append(f.services, sv.Spec.Name)
				f.want[sv.Spec.Name] = res.Revision
			}
			if detach {
				for _, sv := range res.Services {
					if sv.Rollout != nil {
						fmt.Fprintln(g.Err, rolloutLine(sv.Spec.Name, sv.Rollout, false, true))
					}
				}
				return nil
			}
			return followRollouts(ctx, tg.c, tg.project, f)
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "revision to return to (drover history lists them); default: the one before the latest")
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return at once instead of following the rollback")
	return cmd
}

// rollbackTarget is the revision a rollback revision returned to, or 0
// when the server no longer says.
func rollbackTarget(ctx context.Context, c *api.Client, stack string, revision int) int {
	revs, err := c.Revisions(ctx, stack)
	if err != nil {
		return 0
	}
	for _, r := range revs {
		if r.Number == revision {
			return r.RollbackTo
		}
	}
	return 0
}

func promoteCommand(g *Globals) *cobra.Command {
	var detach bool
	cmd := &cobra.Command{
		Use:   "promote [SERVICE...]",
		Short: "Promote the canaries of the services' updates, and resume paused ones",
		Long: "Lets the updates that wait at their canaries (x-drover.canary, up --confirm) go on to every task, " +
			"and resumes the paused ones. Follows them until they end, and fails if one paused or rolled back, unless -d.",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			tg, err := g.target(ctx)
			if err != nil {
				return err
			}
			before, err := tg.services(ctx, args)
			if err != nil {
				return err
			}
			res, err := tg.c.Promote(ctx, tg.project, api.PromoteRequest{Services: args})
			if err != nil {
				return err
			}
			f := newRolloutFollower(g.Err, nil, map[string]int{}, rollbackRevisions(ctx, tg.c, tg.project))
			for _, sv := range res.Services {
				name := sv.Spec.Name
				verb := "Promoted the canaries of"
				if i := slices.IndexFunc(before, func(s api.Service) bool { return s.Spec.Name == name }); i >= 0 &&
					before[i].Rollout != nil && before[i].Rollout.State == api.RolloutPaused {
					verb = "Resumed the paused rollout of"
				}
				fmt.Fprintf(g.Err, "%s service %s (project %s)\n", verb, name, tg.project)
				f.services = append(f.services, name)
				if sv.Rollout != nil {
					f.want[name] = sv.Rollout.Revision
				}
			}
			if detach {
				return nil
			}
			return followRollouts(ctx, tg.c, tg.project, f)
		},
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return at once instead of following the rollouts")
	return cmd
}

func rolloutCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "Show the services' rollouts"}
	var watch bool
	status := &cobra.Command{
		Use:   "status [SERVICE...]",
		Short: "Show each service's latest rollout",
		Long: "Prints each service's latest rollout: its state, how many tasks it updated, its revision and why it is where it is. " +
			"With -w it then follows the rollouts still going until they end (or wait at their canaries), " +
			"and fails if one of them paused or rolled back.",
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
			if err := writeRolloutStatus(g.Out, svcs, len(args) > 0); err != nil {
				return err
			}
			if !watch {
				return nil
			}
			f := newRolloutFollower(g.Err, nil, map[string]int{}, rollbackRevisions(ctx, tg.c, tg.project))
			for _, sv := range svcs {
				if r := sv.Rollout; r != nil && !r.Ended() && r.State != api.RolloutCanary {
					f.services = append(f.services, sv.Spec.Name)
					f.want[sv.Spec.Name] = r.Revision
				}
			}
			if len(f.services) == 0 {
				return nil
			}
			return followRollouts(ctx, tg.c, tg.project, f)
		},
	}
	status.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollouts still going until they end")
	cmd.AddCommand(status)
	return cmd
}

// writeRolloutStatus prints a line for each service with a rollout; named
// says the services were asked for by name, so one never updated gets a
// line too.
func writeRolloutStatus(out io.Writer, svcs []api.Service, named bool) error {
	w := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, "SERVICE\tSTATE\tUPDATED\tREVISION\tMESSAGE")
	for _, sv := range svcs {
		r := sv.Rollout
		if r == nil {
			if named {
				fmt.Fprintf(w, "%s\t-\t-\t-\tno rollout: not updated while it ran\n", sv.Spec.Name)
			}
			continue
		}
		state := r.State
		if r.Rollback && r.State == api.RolloutPaused {
			state += " (rollback)"
		}
		fmt.Fprintf(w, "%s\t%s\t%d/%d\t%d\t%s\n", sv.Spec.Name, state, r.Updated, r.Total, r.Revision, r.Message)
	}
	return w.Flush()
}
