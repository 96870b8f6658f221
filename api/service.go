package api

import "time"

// ServiceSpec is what Drover runs for one Compose service. A nil Command or
// Entrypoint means "the image's own".
type ServiceSpec struct {
	Name       string `json:"name"`
	Image      string `json:"image"`
	PullPolicy string `json:"pullPolicy,omitempty"` // Compose pull_policy: "" (missing), "always" or "never"
	// ImageDigest is the manifest digest of an image the CLI built (a
	// service with build:): a rebuilt image changes the spec, so up
	// recreates the service's containers, and an unchanged one does not.
	ImageDigest     string            `json:"imageDigest,omitempty"`
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
	// ContainerName is Compose's container_name: the name of the
	// service's only container instead of <stack>-<service>-<slot>.
	ContainerName string `json:"containerName,omitempty"`
	// Expose lists the ports Compose's expose documents, normalised as
	// "80/tcp" or "3000-3005/udp". They are shown, not enforced: members of
	// a network reach every port of each other anyway.
	Expose []string `json:"expose,omitempty"`
	// Runtime is Compose's runtime: "" (runc), the name of an OCI runtime
	// binary on the node's PATH (run by containerd's runc shim), or a
	// containerd shim name such as io.containerd.kata.v2.
	Runtime string `json:"runtime,omitempty"`
	// Platform is Compose's platform, normalised ("linux/arm64"); a node
	// of another platform refuses the task.
	Platform string `json:"platform,omitempty"`

	// ClearCommand and ClearEntrypoint mean the file set `command: []` or
	// `entrypoint: []`: drop the image's value.
	ClearCommand    bool `json:"clearCommand,omitempty"`
	ClearEntrypoint bool `json:"clearEntrypoint,omitempty"`

	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
	DependsOn   []Dependency `json:"dependsOn,omitempty"`
	Mounts      []Mount      `json:"mounts,omitempty"`
	Secrets     []FileRef    `json:"secrets,omitempty"`
	Configs     []FileRef    `json:"configs,omitempty"`
	// NetworkMode is "" (the service's networks), "host", "none" or
	// "service:NAME".
	NetworkMode string `json:"networkMode,omitempty"`

	Settings ContainerSettings `json:"settings,omitzero"`

	// Mode is "replicated" (default, Replicas tasks) or "global" (one task
	// per eligible node).
	Mode      string    `json:"mode,omitempty"`
	Placement Placement `json:"placement,omitzero"`
	// Reservations are what each task needs of a node; the scheduler never
	// overcommits them.
	Reservations Resources `json:"reservations,omitzero"`

	// UpdateConfig and RollbackConfig are deploy.update_config and
	// deploy.rollback_config; RolloutSettings the x-drover rollout keys.
	// They say how tasks are replaced, so changing only them replaces no
	// task.
	UpdateConfig    *UpdateConfig   `json:"updateConfig,omitempty"`
	RollbackConfig  *UpdateConfig   `json:"rollbackConfig,omitempty"`
	RolloutSettings RolloutSettings `json:"rolloutSettings,omitzero"`
}

// Placement is deploy.placement.
type Placement struct {
	// Constraints like "node.labels.zone==east", "node.role!=manager",
	// "node.hostname==h1", "node.id==ID".
	Constraints []string `json:"constraints,omitempty"`
	// Preferences spread tasks over the values of a node label, e.g.
	// "node.labels.zone".
	Preferences        []string `json:"preferences,omitempty"`
	MaxReplicasPerNode int      `json:"maxReplicasPerNode,omitempty"`
}

// Resources are CPUs (fractional) and memory in bytes.
type Resources struct {
	CPUs        float64 `json:"cpus,omitempty"`
	MemoryBytes int64   `json:"memoryBytes,omitempty"`
}

// ContainerSettings are the container-level knobs of a Compose service.
// Zero values mean Docker's defaults.
type ContainerSettings struct {
	CapAdd       []string          `json:"capAdd,omitempty"`
	CapDrop      []string          `json:"capDrop,omitempty"`
	Privileged   bool              `json:"privileged,omitempty"`
	Devices      []Device          `json:"devices,omitempty"`
	Sysctls      map[string]string `json:"sysctls,omitempty"`
	Ulimits      []Ulimit          `json:"ulimits,omitempty"`
	ShmSize      int64             `json:"shmSize,omitempty"` // bytes
	Init         bool              `json:"init,omitempty"`
	Pid          string            `json:"pid,omitempty"` // "host" or ""
	Ipc          string            `json:"ipc,omitempty"` // "host", "private", "shareable" or ""
	SecurityOpt  []string          `json:"securityOpt,omitempty"`
	ReadOnly     bool              `json:"readOnly,omitempty"`
	DNS          []string          `json:"dns,omitempty"`
	DNSSearch    []string          `json:"dnsSearch,omitempty"`
	DNSOpt       []string          `json:"dnsOpt,omitempty"`
	Domainname   string            `json:"domainname,omitempty"`
	MacAddress   string            `json:"macAddress,omitempty"`
	OomScoreAdj  int               `json:"oomScoreAdj,omitempty"`
	StdinOpen    bool              `json:"stdinOpen,omitempty"`
	Tty          bool              `json:"tty,omitempty"`
	MemLimit     int64             `json:"memLimit,omitempty"`     // bytes; also deploy.resources.limits.memory
	MemswapLimit int64             `json:"memswapLimit,omitempty"` // bytes; -1 unlimited
	CPUs         float64           `json:"cpus,omitempty"`         // also deploy.resources.limits.cpus
	CPUShares    int64             `json:"cpuShares,omitempty"`
	PidsLimit    int64             `json:"pidsLimit,omitempty"` // also deploy.resources.limits.pids
	GroupAdd     []string          `json:"groupAdd,omitempty"`
	// LogMaxSize and LogMaxFile come from logging.options max-size and
	// max-file (json-file and local drivers).
	LogMaxSize int64 `json:"logMaxSize,omitempty"`
	LogMaxFile int   `json:"logMaxFile,omitempty"`
}

// Device maps a host device into the container.
type Device struct {
	Host        string `json:"host"`
	Container   string `json:"container"`
	Permissions string `json:"permissions,omitempty"` // e.g. "rwm"
}

// Ulimit is a resource limit by its Compose name (nofile, nproc, ...).
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}

// Healthcheck is how the agent probes a container. Test is in Compose's
// form: ["CMD", args...], ["CMD-SHELL", "command"] or ["NONE"]. A nil
// Healthcheck means the image's own HEALTHCHECK, if any.
type Healthcheck struct {
	Test          []string `json:"test,omitempty"`
	Interval      Duration `json:"interval,omitempty"`      // default 30s
	Timeout       Duration `json:"timeout,omitempty"`       // default 30s
	StartPeriod   Duration `json:"startPeriod,omitempty"`   // default 0
	StartInterval Duration `json:"startInterval,omitempty"` // default 5s
	Retries       int      `json:"retries,omitempty"`       // default 3
	Disable       bool     `json:"disable,omitempty"`
}

// Dependency conditions, as in Compose's depends_on.
const (
	ConditionStarted   = "service_started"
	ConditionHealthy   = "service_healthy"
	ConditionCompleted = "service_completed_successfully"
)

// Dependency is one entry of depends_on.
type Dependency struct {
	Service   string `json:"service"`
	Condition string `json:"condition"`
	Required  bool   `json:"required"`
	Restart   bool   `json:"restart,omitempty"`
}

// Mount types.
const (
	MountBind   = "bind"
	MountVolume = "volume"
	MountTmpfs  = "tmpfs"
)

// Mount is one entry of a service's volumes (or tmpfs). For a bind,
// Source is an absolute host path (the client resolves relative paths
// against the project directory); for a volume, the volume's key in the
// file (empty: an anonymous volume).
type Mount struct {
	Type           string `json:"type"`
	Source         string `json:"source,omitempty"`
	Target         string `json:"target"`
	ReadOnly       bool   `json:"readOnly,omitempty"`
	CreateHostPath bool   `json:"createHostPath,omitempty"` // bind: create a missing source dir
	NoCopy         bool   `json:"noCopy,omitempty"`         // volume: do not copy the image's data in
	Subpath        string `json:"subpath,omitempty"`        // volume: mount this path of the volume
	TmpfsSize      int64  `json:"tmpfsSize,omitempty"`      // bytes
	TmpfsMode      uint32 `json:"tmpfsMode,omitempty"`
}

// FileRef puts a secret or config into the container as a read-only file.
// Target defaults to /run/secrets/<Source> for secrets and /<Source> for
// configs.
type FileRef struct {
	Source string `json:"source"`
	Target string `json:"target,omitempty"`
	UID    string `json:"uid,omitempty"`
	GID    string `json:"gid,omitempty"`
	Mode   uint32 `json:"mode,omitempty"` // default 0444
	// Digest is the content's SHA-256, filled by the server, so that a
	// changed secret recreates the containers that use it.
	Digest string `json:"digest,omitempty"`
}

// PortSpec is a published port. Published 0 asks for no host port (the
// container port is only exposed on its networks).
type PortSpec struct {
	HostIP    string `json:"hostIP,omitempty"`
	Published uint16 `json:"published"`
	Target    uint16 `json:"target"`
	Protocol  string `json:"protocol"` // tcp or udp
	// Mode "host" publishes the port only on the nodes that run a task
	// of the service, each to its own tasks; "" (Compose's "ingress")
	// publishes it on every node through the routing mesh, balanced
	// across the service's healthy tasks on any node.
	Mode string `json:"mode,omitempty"`
}

// HostMode reports whether p is published only where a task runs.
func (p PortSpec) HostMode() bool { return p.Mode == "host" }

// ServiceNetwork attaches a service to one of its stack's networks.
type ServiceNetwork struct {
	Name        string   `json:"name"`
	Aliases     []string `json:"aliases,omitempty"`
	IPv4Address string   `json:"ipv4Address,omitempty"`
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
	ID      string      `json:"id"`
	Stack   string      `json:"stack"`
	Spec    ServiceSpec `json:"spec"`
	Version uint64      `json:"version"`
	// Stopped services keep their spec but run no container (`drover
	// stop`, `up --no-start`) until started again.
	Stopped bool `json:"stopped,omitempty"`
	// OneOff marks a `drover run` container's service: not part of the
	// Compose file, never an orphan, gone with the project.
	OneOff bool `json:"oneOff,omitempty"`
	// Rollout is the state of the latest update of the spec (nil: never
	// updated since it was created).
	Rollout *Rollout `json:"rollout,omitempty"`
	// PreviousSpec and PreviousVersion are what the service ran before its
	// latest update: a failed rollout returns to them.
	PreviousSpec    *ServiceSpec `json:"previousSpec,omitempty"`
	PreviousVersion uint64       `json:"previousVersion,omitempty"`
	// SameAs are earlier versions whose spec equals this one (a rollback
	// returns to one): their tasks are current and are not replaced.
	SameAs    []uint64  `json:"sameAs,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Current reports whether a task made from spec version v runs the
// service's current spec.
func (s Service) Current(v uint64) bool {
	if v == s.Version {
		return true
	}
	for _, o := range s.SameAs {
		if o == v {
			return true
		}
	}
	return false
}

// Update returns the config that paces the service's current rollout:
// its rollback config when rolling back, else its update config, with
// Swarm's defaults.
func (s Service) Update() UpdateConfig {
	c := s.Spec.UpdateConfig
	if s.Rollout != nil && s.Rollout.Rollback {
		c = s.Spec.RollbackConfig
	}
	if c == nil {
		return UpdateConfig{}.Effective()
	}
	return c.Effective()
}
