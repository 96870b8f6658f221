package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/content"
	"github.com/drover-org/drover/internal/dns"
	"github.com/drover-org/drover/internal/network"
	drt "github.com/drover-org/drover/internal/runtime"
)

// Networker connects tasks to their networks.
type Networker interface {
	Attach(ctx context.Context, req network.Request) (network.Result, error)
	Detach(ctx context.Context, req network.Request) error
	RemoveNetwork(ctx context.Context, n network.Network) error
	NetNSPath(id string) string
	// EnsureOverlay and RemoveOverlay connect a network across hosts;
	// OverlayNetworks lists the networks that have one on this host.
	EnsureOverlay(o network.Overlay) error
	RemoveOverlay(network string) error
	OverlayNetworks() ([]string, error)
}

// Resolver is the node's DNS server.
type Resolver interface {
	Listen(network string, ip net.IP) error
	Unlisten(network string)
	SetRecords(recs []dns.Record)
	// SetClients names the containers of this node that query it, so each
	// resolves the names of all its networks.
	SetClients(cs []dns.Client)
}

// Config wires an agent.
type Config struct {
	DataDir string
	// Server is the control plane's API.
	Server *api.Client
	// Address is where this agent serves logs and images, as registered
	// with the server: unix:///PATH.
	Address  string
	Driver   drt.Driver
	Images   drt.ImageStore
	Network  Networker
	DNS      Resolver
	Version  string
	Logger   *slog.Logger
	Hostname string
	// Manager is true for the agent inside a server process.
	Manager bool
	// Mesh is the node's part of the routing mesh; nil publishes no port
	// through it.
	Mesh Mesh
	// MeshPort is where other nodes' balancers reach this node's tasks
	// (on Addr); 0 if nowhere.
	MeshPort int
	// Addr is this host's address that other nodes' overlay traffic comes
	// to; "" outside a cluster.
	Addr string
	// HeartbeatInterval defaults to 2s.
	HeartbeatInterval time.Duration
	// Builder is the node's BuildKit; nil means this node does not build.
	Builder Builder
}

// Agent is one node's task runner.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	nodeID string

	mu          sync.Mutex
	workers     map[string]*worker        // by task ID
	reported    map[string]api.TaskStatus // last status sent, by task ID
	listening   map[string]string         // DNS: network full name -> gateway
	dnsClients  map[string]dns.Client     // by task ID: containers that query the DNS server
	bridges     map[string]network.Network
	overlays    map[string]string
	meshCfg     string // the mesh configuration last handed over
	imageLocks  map[string]*sync.Mutex
	contentOnce sync.Once
	content     *content.Store
	contentErr  error // network full name -> what was ensured ("" after a restart)
	lastAsg     api.Assignments
	health      map[string]string // task ID -> health status
	wake        chan struct{}
}

// New makes an agent; its node ID is kept in DataDir.
func New(cfg Config) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 2 * time.Second
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "tasks"), 0o700); err != nil {
		return nil, err
	}
	id, err := nodeID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	return &Agent{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "agent", "node", id),
		nodeID:     id,
		workers:    map[string]*worker{},
		reported:   map[string]api.TaskStatus{},
		listening:  map[string]string{},
		dnsClients: map[string]dns.Client{},
		bridges:    map[string]network.Network{},
		overlays:   map[string]string{},
		health:     map[string]string{},
		wake:       make(chan struct{}, 1),
	}, nil
}

// NodeID is this agent's node.
func (a *Agent) NodeID() string { return a.nodeID }

func nodeID(dataDir string) (string, error) {
	p := filepath.Join(dataDir, "node-id")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	id := randomID()
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return id, nil
}

// Run registers with the server and runs tasks until ctx ends. Containers
// keep running when it returns.
func (a *Agent) Run(parent context.Context) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	if err := a.register(ctx); err != nil {
		return err
	}
	reconnected := make(chan struct{}, 1)
	go a.heartbeats(ctx, cancel, reconnected)
	a.adopt(ctx)
	a.adoptOverlays()

	token := ""
	for ctx.Err() == nil {
		asg, err := a.poll(ctx, token, reconnected)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, api.ErrForbidden) {
				a.log.Error("the server refuses this node", "err", err)
				return err
			}
			if errors.Is(err, api.ErrNotFound) {
				_ = a.register(ctx)
			}
			a.log.Warn("waiting for assignments failed; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		token = asg.Token
		a.apply(ctx, asg)
	}
	if cause := context.Cause(ctx); parent.Err() == nil && cause != nil {
		return cause
	}
	return nil
}

func (a *Agent) register(ctx context.Context) error {
	reg := api.NodeRegistration{
		ID: a.nodeID, Hostname: a.cfg.Hostname, AgentAddress: a.cfg.Address,
		CPUs: runtime.NumCPU(), MemoryBytes: memTotal(), Version: a.cfg.Version, Manager: a.cfg.Manager,
		Addr: a.cfg.Addr, MeshPort: a.cfg.MeshPort,
	}
	delay := 100 * time.Millisecond
	for {
		_, err := a.cfg.Server.RegisterNode(ctx, reg)
		if err == nil {
			a.log.Info("registered with server", "server", a.cfg.Server.Host())
			return nil
		}
		if errors.Is(err, api.ErrForbidden) {
			a.log.Error("the server refuses this node", "err", err)
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("cannot register with server; retrying", "err", err)
		sleep(ctx, delay)
		delay = min(delay*2, 5*time.Second)
	}
}

// pollWait is how long the server may hold a long poll for assignments.
const pollWait = 30 * time.Second

// poll waits for new assignments. Its request has a deadline, and a
// heartbeat that gets through after failures cancels it: after a cut
// link the connection of the poll may be stuck in TCP's retransmission
// back-off for as long as the cut lasted, while the server already
// retired this node's tasks; a fresh poll learns it at once.
func (a *Agent) poll(ctx context.Context, token string, reconnected <-chan struct{}) (api.Assignments, error) {
	pctx, cancel := context.WithTimeout(ctx, pollWait+10*time.Second)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-reconnected:
			cancel()
		case <-done:
		}
	}()
	asg, err := a.cfg.Server.Assignments(pctx, a.nodeID, token, pollWait)
	if err != nil && pctx.Err() != nil && ctx.Err() == nil {
		return a.cfg.Server.Assignments(ctx, a.nodeID, token, 0) // at once
	}
	return asg, err
}

func (a *Agent) heartbeats(ctx context.Context, stop context.CancelCauseFunc, reconnected chan<- struct{}) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, 2*a.cfg.HeartbeatInterval)
		err := a.cfg.Server.Heartbeat(hctx, a.nodeID)
		cancel()
		if err == nil && failing {
			a.log.Info("the server answers again")
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}
		failing = err != nil
		switch {
		case errors.Is(err, api.ErrForbidden):
			a.log.Error("the server refuses this node", "err", err)
			stop(err)
			return
		case errors.Is(err, api.ErrNotFound):
			_ = a.register(ctx)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return kb * 1024
		}
	}
	return 0
}
