package api

import "time"

// Update orders, as in Swarm's update_config.order.
const (
	OrderStopFirst  = "stop-first"
	OrderStartFirst = "start-first"
)

// Failure actions, as in Swarm's update_config.failure_action.
const (
	FailureContinue = "continue"
	FailurePause    = "pause"
	FailureRollback = "rollback"
)

// UpdateConfig is deploy.update_config or deploy.rollback_config: how a
// service's tasks are replaced by those of a new spec. The zero value of
// a field means Swarm's default (see Defaults).
type UpdateConfig struct {
	// Parallelism is how many tasks are replaced at once; 0 replaces all
	// at once. A nil pointer means the default, 1.
	Parallelism *int `json:"parallelism,omitempty"`
	// Delay is the wait after a task is updated before the next starts.
	Delay Duration `json:"delay,omitempty"`
	// Order is stop-first (the default) or start-first.
	Order string `json:"order,omitempty"`
	// FailureAction is pause (the default), continue or rollback. A
	// rollback_config takes pause or continue.
	FailureAction string `json:"failureAction,omitempty"`
	// Monitor is how long a new task must run (and stay healthy) to count
	// as updated; a failure within it counts against the rollout.
	// Default 5s.
	Monitor *Duration `json:"monitor,omitempty"`
	// MaxFailureRatio is the share of failed tasks tolerated (0 to 1).
	MaxFailureRatio float64 `json:"maxFailureRatio,omitempty"`
}

// Defaults of an update or rollback config, as in Swarm.
const (
	DefaultUpdateParallelism = 1
	DefaultUpdateMonitor     = 5 * time.Second
)

// Effective returns the config with Swarm's defaults filled in.
func (u UpdateConfig) Effective() UpdateConfig {
	if u.Parallelism == nil {
		p := DefaultUpdateParallelism
		u.Parallelism = &p
	}
	if u.Order == "" {
		u.Order = OrderStopFirst
	}
	if u.FailureAction == "" {
		u.FailureAction = FailurePause
	}
	if u.Monitor == nil {
		m := Duration(DefaultUpdateMonitor)
		u.Monitor = &m
	}
	return u
}

// Rollout settings of a service beyond Swarm's (x-drover keys).
type RolloutSettings struct {
	// Canary is x-drover.canary: "N" tasks or "P%" of the replicas started
	// beside the old ones; the rollout then holds until promoted.
	Canary string `json:"canary,omitempty"`
	// CanaryAutoPromote promotes the canaries once they have run for the
	// monitor period without failing.
	CanaryAutoPromote bool `json:"canaryAutoPromote,omitempty"`
	// RollbackScope is x-drover.rollback: "stack" (default: a failure
	// rolls back every service of the same revision) or "service".
	RollbackScope string `json:"rollbackScope,omitempty"`
}

// Rollout states.
const (
	RolloutUpdating    = "updating"     // replacing tasks with the new spec
	RolloutCanary      = "canary"       // canaries up, waiting for promote or rollback
	RolloutPaused      = "paused"       // stopped by a failure (failure_action pause)
	RolloutCompleted   = "completed"    // every task runs the new spec
	RolloutRollingBack = "rolling_back" // replacing tasks with the previous spec
	RolloutRolledBack  = "rolled_back"  // the rollback ended
)

// Rollout is the state of a service's latest update, kept with the
// service in the store so that a restarted server resumes it.
type Rollout struct {
	State string `json:"state"`
	// Revision is the stack revision the update belongs to.
	Revision int `json:"revision"`
	// Rollback marks a rollout that returns to an earlier spec: it is
	// paced by the rollback config.
	Rollback bool `json:"rollback,omitempty"`
	// Canary is the number of canary tasks (0: none); Promoted says they
	// were promoted.
	Canary   int  `json:"canary,omitempty"`
	Promoted bool `json:"promoted,omitempty"`
	// Total is the number of tasks to update; Updated those done.
	Total   int `json:"total"`
	Updated int `json:"updated"`
	// ReadyAt is when each new task was first seen running (and healthy):
	// the monitor period counts from there. Entries go when the rollout
	// ends.
	ReadyAt map[string]time.Time `json:"readyAt,omitempty"`
	// Failed are the new tasks that failed within their monitor period;
	// the first Forgiven of them failed before the rollout was resumed
	// and no longer count against max_failure_ratio.
	Failed   []string `json:"failed,omitempty"`
	Forgiven int      `json:"forgiven,omitempty"`
	// Asked marks a rollback someone asked for (drover rollback): its end
	// completes its revision.
	Asked bool `json:"asked,omitempty"`
	// LastDoneAt is when a task last finished updating (for delay).
	LastDoneAt time.Time `json:"lastDoneAt,omitzero"`
	Message    string    `json:"message,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
	EndedAt    time.Time `json:"endedAt,omitzero"`
}

// Active reports whether the rollout still replaces tasks or waits.
func (r *Rollout) Active() bool {
	return r != nil && (r.State == RolloutUpdating || r.State == RolloutRollingBack || r.State == RolloutCanary)
}

// Ended reports whether the rollout reached an end state (completed,
// paused, rolled back).
func (r *Rollout) Ended() bool {
	return r != nil && (r.State == RolloutCompleted || r.State == RolloutPaused || r.State == RolloutRolledBack)
}

// StackRevision is one deployment of a stack: what every service ran
// after it. The server keeps the last RevisionsKept.
type StackRevision struct {
	Stack  string `json:"stack"`
	Number int    `json:"number"`
	// Kind is "up" or "rollback"; RollbackTo is the revision a rollback
	// returned to.
	Kind       string    `json:"kind"`
	RollbackTo int       `json:"rollbackTo,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	// Changed are the services whose spec this revision changed;
	// Rollouts those of them whose running tasks a rollout replaced.
	Changed  []string          `json:"changed,omitempty"`
	Rollouts []string          `json:"rollouts,omitempty"`
	Services []RevisionService `json:"services"`
	// Outcomes are the end of each changed service's rollout
	// ("completed", "paused: why", "rolled back: why"), filled as they
	// end; Outcome sums them up: "rolled back" or "paused" if one was,
	// else "in progress" until all ended, then "completed".
	Outcomes map[string]string `json:"outcomes,omitempty"`
	Outcome  string            `json:"outcome,omitempty"`
}

// RevisionService is a service as a revision left it.
type RevisionService struct {
	Version uint64      `json:"version"`
	Spec    ServiceSpec `json:"spec"`
}

// RevisionsKept is how many revisions of a stack the server keeps.
const RevisionsKept = 10

// RollbackRequest asks to return a stack's services to an earlier
// revision: To (0: the revision before the current one) and Services
// (none: every service).
type RollbackRequest struct {
	To       int      `json:"to,omitempty"`
	Services []string `json:"services,omitempty"`
}

// PromoteRequest promotes the canaries of the named services (none:
// every service of the stack waiting), and resumes paused rollouts.
type PromoteRequest struct {
	Services []string `json:"services,omitempty"`
}

// RolloutResult answers a rollback or a promote: the services it moved.
type RolloutResult struct {
	Revision int       `json:"revision"`
	Services []Service `json:"services"`
}
