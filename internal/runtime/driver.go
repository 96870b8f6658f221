package runtime

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/drover-org/drover/api"
)

// ErrNotFound is returned for a container or image the runtime does not have.
var ErrNotFound = errors.New("not found")

// Container states reported by Inspect.
const (
	StateCreated = "created"
	StateRunning = "running"
	StateStopped = "stopped"
	StatePaused  = "paused"
	StateUnknown = "unknown"
)

// Mount is a mount into the container: a bind mount (Type "" or "bind")
// of Source, or a tmpfs (Type "tmpfs", Options such as "size=65536k",
// "mode=1777").
type Mount struct {
	Type     string
	Source   string
	Target   string
	ReadOnly bool
	Options  []string
}

// ContainerSpec is everything a driver needs to start one container.
// Command and Entrypoint nil mean the image's own.
type ContainerSpec struct {
	ID         string // unique; the agent uses the task ID
	Image      string // reference as the user wrote it
	Command    []string
	Entrypoint []string
	Env        []string // KEY=VALUE, added to the image's
	User       string
	WorkingDir string
	Hostname   string
	StopSignal string
	Labels     map[string]string
	// NetNSPath is the network namespace to join; empty means a new,
	// unconnected one.
	NetNSPath string
	Mounts    []Mount
	// LogPath is the file the container's stdout and stderr are written to
	// (JSON lines, see package logs), by a logger that outlives the agent.
	LogPath string
	// LogMaxSize and LogMaxFile bound the log's rotation (0: defaults).
	LogMaxSize int64
	LogMaxFile int
	// ClearCommand / ClearEntrypoint drop the image's CMD / ENTRYPOINT
	// even though Command / Entrypoint are empty (Compose's `command: []`).
	ClearCommand    bool
	ClearEntrypoint bool
	// Runtime is the service's runtime (Compose's runtime:); "" is runc.
	Runtime string
	// Settings are the Compose container settings (capabilities,
	// privileged, devices, sysctls, ulimits, shm_size, init, pid, ipc,
	// security_opt, read_only, resources, ...). DNS fields are the agent's
	// business (it writes resolv.conf), not the driver's.
	Settings api.ContainerSettings
}

// ExecSpec is a process to run in a running container.
type ExecSpec struct {
	Cmd        []string
	Env        []string // added to the container's
	User       string
	WorkingDir string
	Tty        bool
	Stdin      io.Reader // nil: no stdin
	Stdout     io.Writer
	Stderr     io.Writer // ignored with Tty (merged into Stdout)
	// Resize, when not nil, delivers terminal sizes for a Tty.
	Resize <-chan TermSize
}

// TermSize is a terminal's size.
type TermSize struct{ Width, Height uint16 }

// Execer runs processes inside running containers (exec, health checks).
type Execer interface {
	// Exec runs the process to its end and returns its exit code.
	Exec(ctx context.Context, id string, spec ExecSpec) (int, error)
}

// Stats is a container's resource usage, read from its cgroups.
type Stats struct {
	CPUNanos    uint64 // total CPU time used
	MemoryBytes uint64 // current usage (without page cache where the kernel tells)
	MemoryLimit uint64 // 0: none
	PIDs        uint64
	NetRxBytes  uint64
	NetTxBytes  uint64
	BlockRead   uint64
	BlockWrite  uint64
	Time        time.Time
}

// Process is one process of a container, for `top`.
type Process struct {
	PID     int
	PPID    int
	User    string
	Command string
}

// Operator holds the optional container operations of Compose's everyday
// commands.
type Operator interface {
	Stats(ctx context.Context, id string) (Stats, error)
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	// Kill sends a signal (name or number) and returns at once.
	Kill(ctx context.Context, id string, signal string) error
	Top(ctx context.Context, id string) ([]Process, error)
	// CopyFrom writes a tar of path inside the container to w; CopyTo
	// unpacks a tar into dir inside the container.
	CopyFrom(ctx context.Context, id, path string, w io.Writer) error
	CopyTo(ctx context.Context, id, dir string, r io.Reader) error
}

// ImageInspector reads what an image says about itself.
type ImageInspector interface {
	// ImageHealthcheck is the image's HEALTHCHECK, nil if none.
	ImageHealthcheck(ctx context.Context, ref string) (*api.Healthcheck, error)
	// SeedVolume copies the image's content at path (if any) into dir,
	// keeping owners and modes: a new named volume gets the image's data.
	SeedVolume(ctx context.Context, ref, path, dir string) error
}

// Status is what the runtime knows of a container.
type Status struct {
	ID         string
	Labels     map[string]string
	State      string
	PID        int
	ExitCode   int
	StartedAt  time.Time
	FinishedAt time.Time
}

// ExitStatus is how a container ended.
type ExitStatus struct {
	Code     int
	ExitedAt time.Time
	Err      error
}

// Driver runs containers. Every method is safe to call again after a crash
// of the caller: Start of an existing ID fails with an error, Destroy of a
// missing one succeeds.
type Driver interface {
	// EnsureImage makes the image available locally, pulling it from its
	// registry when missing. A missing image that cannot be pulled gives an
	// error naming the image.
	EnsureImage(ctx context.Context, ref string) error
	// Start creates and starts the container.
	Start(ctx context.Context, spec ContainerSpec) (Status, error)
	// Wait returns a channel that yields once when the container exits.
	// It works for containers found by Recover too.
	Wait(ctx context.Context, id string) (<-chan ExitStatus, error)
	// Stop sends signal (default SIGTERM), waits up to grace, then kills.
	Stop(ctx context.Context, id string, signal string, grace time.Duration) error
	// Destroy removes the container and its resources; missing is fine.
	Destroy(ctx context.Context, id string) error
	// Inspect reports one container, ErrNotFound if unknown.
	Inspect(ctx context.Context, id string) (Status, error)
	// Recover lists every container the driver manages, running or not, so
	// that a restarted agent can adopt them.
	Recover(ctx context.Context) ([]Status, error)
}

// Image is an image known to the runtime.
type Image struct {
	Name      string
	Digest    string
	Size      int64
	CreatedAt time.Time
}

// ImageStore imports and lists images.
type ImageStore interface {
	// Import reads an OCI image-layout archive or a docker-save archive
	// and returns the images it named, unpacked and ready to run.
	Import(ctx context.Context, r io.Reader) ([]Image, error)
	List(ctx context.Context) ([]Image, error)
}

// RuntimeChecker is the optional ability of a driver to say, before a task
// is prepared, whether it can run containers with a service's runtime.
type RuntimeChecker interface {
	CheckRuntime(name string) error
}
