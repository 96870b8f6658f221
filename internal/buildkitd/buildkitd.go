package buildkitd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	bkclient "github.com/moby/buildkit/client"

	"github.com/drover-org/drover/internal/supervise"
)

// Version is the BuildKit release Drover is built and tested with;
// scripts/install-deps.sh builds buildkitd from this module version.
const Version = "v0.34.2"

// Binary is the buildkitd program, looked up on PATH.
const Binary = "buildkitd"

// Config says where the daemon lives and which containerd it builds on.
type Config struct {
	// DataDir is the agent's data dir; buildkitd's files go under
	// DataDir/buildkit.
	DataDir string
	// Containerd is the socket of the containerd that the worker uses,
	// Namespace its namespace and Snapshotter its snapshotter.
	Containerd  string
	Namespace   string
	Snapshotter string
	// Binary overrides the program (a path or a name on PATH).
	Binary string
	Logger *slog.Logger
}

// Daemon is a node's buildkitd, started on first use.
type Daemon struct {
	cfg  Config
	spec supervise.Spec
	root string
	sock string
	conf string

	mu  sync.Mutex
	sup *supervise.Daemon
}

// New prepares the daemon; nothing starts until Dial or Ensure.
func New(cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Binary == "" {
		cfg.Binary = Binary
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("buildkit data dir %q: %w", cfg.DataDir, err)
	}
	dir := filepath.Join(abs, "buildkit")
	d := &Daemon{cfg: cfg, root: filepath.Join(dir, "root"), sock: filepath.Join(dir, "buildkitd.sock"), conf: filepath.Join(dir, "buildkitd.toml")}
	if len(d.sock) > 107 {
		return nil, fmt.Errorf("data dir %q is too long for buildkitd's socket (%d bytes, the limit is 107): use a shorter data dir", cfg.DataDir, len(d.sock))
	}
	d.spec = supervise.Spec{
		Name: "buildkitd", Dir: dir, Binary: cfg.Binary,
		Missing:  "run scripts/install-deps.sh, which builds it from github.com/moby/buildkit " + Version,
		Args:     []string{"--config", d.conf},
		Identity: d.conf,
		Prepare:  d.prepare,
		Answers:  func(ctx context.Context) bool { return answers(ctx, d.sock) },
		Logger:   cfg.Logger.With("component", "buildkitd"),
	}
	return d, nil
}

// Socket is the daemon's unix socket.
func (d *Daemon) Socket() string { return d.sock }

// configTOML is buildkitd's configuration: the containerd worker alone,
// on Drover's containerd and namespace. RUN steps get the host's network
// (no CNI of BuildKit's own); `network: host` in a build is allowed.
func (d *Daemon) configTOML() string {
	q := strconv.Quote
	return fmt.Sprintf(`# Written by Drover: the node's buildkitd. Regenerated on every start.
root = %s
insecure-entitlements = ["network.host"]

[grpc]
  address = [%s]

[worker.oci]
  enabled = false

[worker.containerd]
  enabled = true
  address = %s
  namespace = %s
  snapshotter = %s
  gc = true
  gckeepstorage = "10GB"
`, q(d.root), q("unix://"+d.sock), q(d.cfg.Containerd), q(d.cfg.Namespace), q(d.cfg.Snapshotter))
}

func (d *Daemon) prepare() error {
	if err := os.MkdirAll(d.root, 0o700); err != nil {
		return fmt.Errorf("buildkit root: %w", err)
	}
	if err := os.WriteFile(d.conf, []byte(d.configTOML()), 0o600); err != nil {
		return fmt.Errorf("writing buildkitd config: %w", err)
	}
	if err := os.Remove(d.sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale buildkitd socket: %w", err)
	}
	return nil
}

// Ensure starts the daemon (or adopts the one that answers) and
// supervises it from then on.
func (d *Daemon) Ensure(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sup != nil {
		return nil
	}
	sup, err := supervise.Start(ctx, d.spec)
	if err != nil {
		return err
	}
	d.sup = sup
	return nil
}

// Dial connects to the daemon's gRPC socket, starting it first if need be.
func (d *Daemon) Dial(ctx context.Context) (net.Conn, error) {
	if err := d.Ensure(ctx); err != nil {
		return nil, err
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "unix", d.sock)
}

// Close stops supervising; buildkitd keeps running for the next agent.
func (d *Daemon) Close() {
	d.mu.Lock()
	sup := d.sup
	d.sup = nil
	d.mu.Unlock()
	if sup != nil {
		sup.Close()
	}
}

// Stop ends the daemon (after Close), waiting up to grace for its builds.
func (d *Daemon) Stop(grace time.Duration) error {
	d.Close()
	return supervise.Stop(d.spec, grace)
}

// answers reports whether a buildkitd serves the socket.
func answers(ctx context.Context, sock string) bool {
	if _, err := os.Stat(sock); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := bkclient.New(ctx, "unix://"+sock)
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.ListWorkers(ctx)
	return err == nil
}

// StopOwn stops the buildkitd that an agent with dataDir started, if any.
func StopOwn(dataDir string) error {
	d, err := New(Config{DataDir: dataDir})
	if err != nil {
		return err
	}
	return d.Stop(10 * time.Second)
}
