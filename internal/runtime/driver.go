package runtime

import (
	"context"
	"errors"
	"io"
	"time"
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

// Mount is a bind mount into the container.
type Mount struct {
	Source   string
	Target   string
	ReadOnly bool
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
