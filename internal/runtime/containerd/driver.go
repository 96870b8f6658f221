package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/drover-org/drover/internal/runtime"
)

// Defaults of Config.
const (
	DefaultNamespace   = "drover"
	DefaultSnapshotter = "overlayfs"
	runcRuntime        = "io.containerd.runc.v2"
)

// Config says which containerd to use and how.
type Config struct {
	// Address is the socket of an existing containerd. Empty: start and
	// supervise our own, with its files under DataDir/containerd.
	Address string
	// DataDir holds our own containerd's config, root, state, socket, log
	// and pid file (in DataDir/containerd). Needed when Address is empty.
	DataDir string
	// Namespace is the containerd namespace of Drover's images and
	// containers; default "drover".
	Namespace string
	// LoggerBinary, when set, receives container output through the log URI
	// binary://LoggerBinary, run by the shim as
	// `LoggerBinary shim-logger <LogPath>`. Empty: the shim appends raw
	// output to LogPath.
	LoggerBinary string
	// Snapshotter unpacks images and makes root filesystems; default
	// "overlayfs".
	Snapshotter string
	// Credentials, when set, gives the user and secret to log in to the
	// registry at host ("127.0.0.1:5000", "registry-1.docker.io") with;
	// an empty user means anonymous. It is asked only when a pull meets
	// the registry's challenge, and the answer is not kept.
	Credentials func(ctx context.Context, host string) (user, secret string, err error)
	Logger      *slog.Logger
}

// Driver runs containers on containerd. It implements runtime.Driver and
// runtime.ImageStore.
type Driver struct {
	cfg    Config
	client *client.Client
	daemon *daemon // nil when using an existing containerd
	logger *slog.Logger
	// runcOpts are given to every new container and task; nil means the
	// runtime's defaults.
	runcOpts *options.Options
	// specVersions caches the OCI spec version of each runtime binary
	// (see specVersionOf).
	specVersions sync.Map

	closeOnce sync.Once
	closed    chan struct{}
}

var (
	_ runtime.Driver     = (*Driver)(nil)
	_ runtime.ImageStore = (*Driver)(nil)
)

// Open connects to containerd, starting our own first when cfg.Address is
// empty (or reusing the one a previous run left on DataDir's socket).
func Open(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Snapshotter == "" {
		cfg.Snapshotter = DefaultSnapshotter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	logger := cfg.Logger.With("component", "containerd")
	if cfg.LoggerBinary != "" && cfg.LoggerBinary[0] != '/' {
		return nil, fmt.Errorf("logger binary %q: must be an absolute path", cfg.LoggerBinary)
	}

	d := &Driver{cfg: cfg, logger: logger, closed: make(chan struct{})}
	address := cfg.Address
	if address == "" {
		if cfg.DataDir == "" {
			return nil, errors.New("containerd: neither an address nor a data dir to start our own containerd in")
		}
		dm, err := startDaemon(ctx, cfg.DataDir, logger)
		if err != nil {
			return nil, err
		}
		d.daemon = dm
		address = dm.paths.socket
		d.runcOpts = &options.Options{Root: dm.paths.runcRoot()}
	}

	c, err := client.New(address,
		client.WithDefaultNamespace(cfg.Namespace),
		client.WithDefaultRuntime(runcRuntime),
		// Also the longest back-off between reconnects after containerd
		// restarts.
		client.WithTimeout(2*time.Second))
	if err != nil {
		d.stopSupervising()
		return nil, fmt.Errorf("connecting to containerd at %s: %w", address, err)
	}
	d.client = c
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := c.Version(vctx)
	if err != nil {
		c.Close()
		d.stopSupervising()
		return nil, fmt.Errorf("containerd at %s does not answer: %w", address, err)
	}
	logger.Debug("connected to containerd", "address", address, "version", v.Version, "namespace", cfg.Namespace)
	return d, nil
}

// Close disconnects and stops supervising our own containerd. containerd and
// the containers keep running, so that a restarted agent adopts them.
// Closing twice is fine.
func (d *Driver) Close() error {
	var err error
	d.closeOnce.Do(func() {
		close(d.closed)
		err = d.client.Close()
		d.stopSupervising()
	})
	return err
}

func (d *Driver) stopSupervising() {
	if d.daemon != nil {
		d.daemon.close()
	}
}

// Address is the socket of the containerd in use.
func (d *Driver) Address() string {
	if d.daemon != nil {
		return d.daemon.paths.socket
	}
	return d.cfg.Address
}

// Client is the underlying containerd client, for abilities the driver
// interface does not cover (exec, stats).
func (d *Driver) Client() *client.Client { return d.client }

// ctx puts the driver's namespace into ctx.
func (d *Driver) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, d.cfg.Namespace)
}

// mapErr turns containerd's not-found into runtime.ErrNotFound, keeping the
// message.
func mapErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("%s: %w: %w", msg, runtime.ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}
