package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/drover-org/drover/internal/supervise"
)

// Files of our own containerd, under DataDir/containerd.
const (
	daemonDir      = "containerd"
	configFile     = "config.toml"
	socketFile     = "containerd.sock"
	ttrpcSuffix    = ".ttrpc"
	maxUnixSockLen = 107 // sun_path is 108 bytes including the NUL
)

// startTimeout is how long containerd may take to answer after a start.
const startTimeout = 30 * time.Second

// daemonPaths are the locations of our own containerd's files.
type daemonPaths struct {
	dir, config, root, state, socket string
}

func pathsFor(dataDir string) (daemonPaths, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return daemonPaths{}, fmt.Errorf("containerd data dir %q: %w", dataDir, err)
	}
	dir := filepath.Join(abs, daemonDir)
	p := daemonPaths{
		dir:    dir,
		config: filepath.Join(dir, configFile),
		root:   filepath.Join(dir, "root"),
		state:  filepath.Join(dir, "state"),
		socket: filepath.Join(dir, socketFile),
	}
	// The ttrpc socket is the longer of the two.
	if n := len(p.socket + ttrpcSuffix); n > maxUnixSockLen {
		return daemonPaths{}, fmt.Errorf("data dir %q is too long for containerd's sockets: %s would be %d bytes, "+
			"the limit for a unix socket path is %d; use a shorter data dir or pass the address of a running containerd",
			dataDir, p.socket+ttrpcSuffix, n, maxUnixSockLen)
	}
	return p, nil
}

// runcRoot is where runc keeps its state for our own containerd. Keeping it
// apart from the default /run/containerd/runc lets several Drover agents (and
// a system containerd) share a host without their runc states colliding.
func (p daemonPaths) runcRoot() string { return filepath.Join(p.state, "runc") }

// configTOML is a minimal containerd 1.6 configuration: only what running
// containers from local images needs, so it starts in well under a second.
// The v1 linux runtime stays: the 1.6 tasks service will not load without it.
func (p daemonPaths) configTOML() string {
	q := strconv.Quote
	return fmt.Sprintf(`# Written by Drover: its own containerd. Regenerated on every start.
version = 2
root = %s
state = %s
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.opt",
]

[grpc]
  address = %s

[ttrpc]
  address = %s

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""
`, q(p.root), q(p.state), q(p.socket), q(p.socket+ttrpcSuffix))
}

// spec is how the supervisor runs our own containerd.
func (p daemonPaths) spec(logger *slog.Logger) supervise.Spec {
	return supervise.Spec{
		Name: "containerd", Dir: p.dir, Binary: "containerd",
		Missing:  "apt-get install containerd, or pass the address of a running one",
		Args:     []string{"--config", p.config},
		Identity: p.config,
		Prepare: func() error {
			if err := os.WriteFile(p.config, []byte(p.configTOML()), 0o600); err != nil {
				return fmt.Errorf("writing containerd config: %w", err)
			}
			// A socket left by a containerd that died would make the new
			// one fail to listen; nothing answers on it (checked first).
			for _, s := range []string{p.socket, p.socket + ttrpcSuffix} {
				if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("removing stale containerd socket: %w", err)
				}
			}
			return nil
		},
		Answers:      func(ctx context.Context) bool { return answers(ctx, p.socket) },
		StartTimeout: startTimeout,
		Logger:       logger,
	}
}

// daemon is our own containerd under supervision.
type daemon struct {
	paths daemonPaths
	sup   *supervise.Daemon
}

// startDaemon reuses a containerd that already answers on the socket, or
// starts one, then supervises it until close.
func startDaemon(ctx context.Context, dataDir string, logger *slog.Logger) (*daemon, error) {
	p, err := pathsFor(dataDir)
	if err != nil {
		return nil, err
	}
	sup, err := supervise.Start(ctx, p.spec(logger))
	if err != nil {
		return nil, err
	}
	return &daemon{paths: p, sup: sup}, nil
}

// answers reports whether a containerd serves the socket.
func answers(ctx context.Context, socket string) bool {
	if _, err := os.Stat(socket); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.New(socket, client.WithTimeout(time.Second))
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.Version(ctx)
	return err == nil
}

// close stops supervising; containerd keeps running.
func (d *daemon) close() { d.sup.Close() }

// StopOwnContainerd stops the containerd that Open started for dataDir (from
// its pid file): SIGTERM, then SIGKILL after 10 seconds, and waits for it to
// exit. Containers it ran keep running in their shims; destroy them first.
// No pid file, or no such process, is not an error.
func StopOwnContainerd(dataDir string) error {
	p, err := pathsFor(dataDir)
	if err != nil {
		return err
	}
	return supervise.Stop(p.spec(nil), 10*time.Second)
}
