package api

import "time"

// ServiceSpec is what Drover runs for one Compose service. A nil Command or
// Entrypoint means "the image's own".
type ServiceSpec struct {
	Name            string            `json:"name"`
	Image           string            `json:"image"`
	Command         []string          `json:"command,omitempty"`
	Entrypoint      []string          `json:"entrypoint,omitempty"`
	Env             []string          `json:"env,omitempty"`
	Ports           []PortSpec        `json:"ports,omitempty"`
	Networks        []ServiceNetwork  `json:"networks,omitempty"`
	Replicas        int               `json:"replicas"`
	Restart         RestartPolicy     `json:"restart"`
	Labels          map[string]string `json:"labels,omitempty"`
	User            string            `json:"user,omitempty"`
	WorkingDir      string            `json:"workingDir,omitempty"`
	Hostname        string            `json:"hostname,omitempty"`
	StopSignal      string            `json:"stopSignal,omitempty"`
	StopGracePeriod Duration          `json:"stopGracePeriod,omitempty"`
	ExtraHosts      []ExtraHost       `json:"extraHosts,omitempty"`
}

// PortSpec is a published port. Published 0 asks for no host port (the
// container port is only exposed on its networks).
type PortSpec struct {
	HostIP    string `json:"hostIP,omitempty"`
	Published uint16 `json:"published"`
	Target    uint16 `json:"target"`
	Protocol  string `json:"protocol"` // tcp or udp
}

// ServiceNetwork attaches a service to one of its stack's networks.
type ServiceNetwork struct {
	Name    string   `json:"name"`
	Aliases []string `json:"aliases,omitempty"`
}

// ExtraHost is a line added to the container's /etc/hosts.
type ExtraHost struct {
	Host string `json:"host"`
	IP   string `json:"ip"`
}

// Restart conditions, as in Compose's deploy.restart_policy.
const (
	RestartNone      = "none"
	RestartOnFailure = "on-failure"
	RestartAny       = "any"
)

// RestartPolicy says when a task that ended is replaced. Delay is the
// least wait before a restart; MaxAttempts (0: no limit) counts restarts
// within Window (0: ever).
type RestartPolicy struct {
	Condition   string   `json:"condition"`
	Delay       Duration `json:"delay,omitempty"`
	MaxAttempts int      `json:"maxAttempts,omitempty"`
	Window      Duration `json:"window,omitempty"`
}

// Service is a service as the server stores it. Version grows by one each
// time the spec changes; tasks carry the version they were made from.
type Service struct {
	ID        string      `json:"id"`
	Stack     string      `json:"stack"`
	Spec      ServiceSpec `json:"spec"`
	Version   uint64      `json:"version"`
	CreatedAt time.Time   `json:"createdAt"`
	UpdatedAt time.Time   `json:"updatedAt"`
}
