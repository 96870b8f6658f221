package api

import "time"

// Desired states of a task, written by the control plane.
const (
	DesiredRunning  = "running"
	DesiredShutdown = "shutdown"
)

// Observed states of a task, written by the agent that runs it.
const (
	StatePending   = "pending"   // not yet on a node, or the node has not begun
	StatePreparing = "preparing" // image, network, container
	StateRunning   = "running"
	StateExited    = "exited" // the container ended; ExitCode says how
	StateFailed    = "failed" // it could not be started; Message says why
	StateStopping  = "stopping"
	StateRemoved   = "removed" // container and network are gone from the node
)

// Task is one replica slot of a service, made from one version of its spec.
// A task is never changed into another spec: an update or a restart makes a
// new task and retires the old one.
type Task struct {
	ID          string       `json:"id"`
	Stack       string       `json:"stack"`
	Service     string       `json:"service"`
	Slot        int          `json:"slot"`
	SpecVersion uint64       `json:"specVersion"`
	Spec        ServiceSpec  `json:"spec"`
	Networks    []Attachment `json:"networks,omitempty"`
	// Volumes are the stack's named volumes the task mounts.
	Volumes      []Volume `json:"volumes,omitempty"`
	NodeID       string   `json:"nodeID,omitempty"`
	DesiredState string   `json:"desiredState"`
	// StopNow, on a retired task, asks for the stop signal at once: its
	// service was stopped or removed (down, rm, stop). A task retired by
	// an update or a scale-down is drained first (its open connections on
	// published ports end, up to its stop grace period).
	StopNow bool `json:"stopNow,omitempty"`
	// DepVersions are the spec versions of the services it depends on when
	// it was made; a dependency with `restart: true` that gets a new
	// version makes the task be replaced.
	DepVersions map[string]uint64 `json:"depVersions,omitempty"`
	// Unplaced says why no node took the task yet (the control plane writes it).
	Unplaced string `json:"unplaced,omitempty"`
	// Restarts holds the times this slot was restarted, most recent last,
	// carried from task to task for the restart policy's window.
	Restarts  []time.Time `json:"restarts,omitempty"`
	CreatedAt time.Time   `json:"createdAt"`
	// Status is the agent's; the control plane never writes it.
	Status TaskStatus `json:"status"`
}

// Name is the container name Docker Compose would give the task: the
// service's container_name, else <stack>-<service>-<slot>.
func (t Task) Name() string {
	if t.Spec.ContainerName != "" {
		return t.Spec.ContainerName
	}
	return ContainerName(t.Stack, t.Service, t.Slot)
}

// Hostname is the container's hostname: the spec's, or the short task ID as
// Docker does.
func (t Task) Hostname() string {
	if t.Spec.Hostname != "" {
		return t.Spec.Hostname
	}
	if len(t.ID) > 12 {
		return t.ID[:12]
	}
	return t.ID
}

// ContainerName is "<stack>-<service>-<slot>", Compose's naming.
func ContainerName(stack, service string, slot int) string {
	return stack + "-" + service + "-" + itoa(slot)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// Attachment is a task's place on one network.
type Attachment struct {
	Network Network  `json:"network"`
	Aliases []string `json:"aliases,omitempty"`
}

// TaskStatus is what the agent observed of a task.
type TaskStatus struct {
	State       string            `json:"state"`
	Message     string            `json:"message,omitempty"`
	ContainerID string            `json:"containerID,omitempty"`
	PID         int               `json:"pid,omitempty"`
	ExitCode    int               `json:"exitCode"`
	Addresses   map[string]string `json:"addresses,omitempty"`  // network full name -> IPv4
	Addresses6  map[string]string `json:"addresses6,omitempty"` // network full name -> IPv6 (dual-stack networks)
	// Health is "" (no health check), "starting", "healthy" or "unhealthy".
	Health string `json:"health,omitempty"`
	// HealthLog is the output of the last failed probe, for ps and events.
	HealthLog  string    `json:"healthLog,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	UpdatedAt  time.Time `json:"updatedAt,omitzero"`
}

// DependencyFailed starts the Unplaced reason of a task whose dependency
// can no longer meet its condition; `up` fails on it.
const DependencyFailed = "dependency failed: "

// Health states.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Terminal reports whether the task's container has ended for good.
func (s TaskStatus) Terminal() bool {
	return s.State == StateExited || s.State == StateFailed || s.State == StateRemoved
}
