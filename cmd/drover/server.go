package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"crypto/tls"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/content"
	"github.com/drover-org/drover/internal/pki"
	"github.com/drover-org/drover/internal/scheduler"
	"github.com/drover-org/drover/internal/server"
	"github.com/drover-org/drover/internal/store"
	"github.com/spf13/cobra"
)

type serverOptions struct {
	listen       string
	dataDir      string
	noAgent      bool
	addressPool  string
	addressPool6 string
	networkSize  int
	strategy     string
	nodeGrace    time.Duration
	logLevel     string
	advertise    string
	nodeCertTTL  time.Duration
	agent        agentOptions
}

func serverCommand() *cobra.Command {
	var o serverOptions
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (and, unless --no-agent, this host's agent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServer(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", api.DefaultHost, "API address: unix:///PATH")
	f.StringVar(&o.dataDir, "data-dir", "/var/lib/drover", "where the server keeps its state")
	f.BoolVar(&o.noAgent, "no-agent", false, "do not run an agent in the server process")
	f.StringVar(&o.addressPool, "address-pool", "", "IPv4 range the networks' subnets come from (default "+server.DefaultAddressPool+"; with --advertise "+server.DefaultClusterAddressPool+")")
	f.IntVar(&o.networkSize, "network-size", 0, "prefix length of each network's subnet (default 24; with --advertise 20, split into a /24 per node)")
	f.StringVar(&o.addressPool6, "address-pool6", server.DefaultAddressPool6, "IPv6 range (/48 to /64) the /64s of enable_ipv6 networks come from")
	f.StringVar(&o.strategy, "strategy", "spread", "how tasks are placed on nodes: spread (fewest tasks of the service first) or binpack (fullest node that fits)")
	f.DurationVar(&o.nodeGrace, "node-grace", 10*time.Second, "how long a node may miss heartbeats before it is marked down")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.DurationVar(&o.nodeCertTTL, "node-cert-ttl", 90*24*time.Hour, "how long node certificates are valid (agents renew them in their last third)")
	f.StringVar(&o.advertise, "advertise", "", "ADDR:PORT to serve agents on, over mutual TLS (makes a cluster CA on first start)")
	addAgentRuntimeFlags(cmd, &o.agent)
	return cmd
}

// serveAgents starts the TCP listener agents join and talk to.
func serveAgents(ctx context.Context, o serverOptions, srv *server.Server, log *slog.Logger) (*http.Server, error) {
	host, _, err := net.SplitHostPort(o.advertise)
	if err != nil {
		return nil, fmt.Errorf("--advertise %q: want ADDR:PORT", o.advertise)
	}
	now := time.Now()
	ca, err := pki.LoadOrCreateCA(filepath.Join(o.dataDir, "pki"), now)
	if err != nil {
		return nil, err
	}
	cert, err := ca.IssueServer([]string{host}, now, 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	srv.EnableCluster(&server.Cluster{CA: ca, Advertise: o.advertise, NodeTTL: o.nodeCertTTL})
	dial, err := pki.ClientConfig(ca.CertPEM, cert)
	if err != nil {
		return nil, err
	}
	srv.SetAgentTLS(dial)
	cfg, err := pki.ServerConfig(ca.CertPEM, cert)
	if err != nil {
		return nil, err
	}
	ln, err := tls.Listen("tcp", o.advertise, cfg)
	if err != nil {
		return nil, fmt.Errorf("--advertise: %w", err)
	}
	hs := &http.Server{Handler: srv.TCPHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	log.Info("serving agents", "advertise", o.advertise, "ca", ca.Fingerprint())
	return hs, nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func runServer(ctx context.Context, o serverOptions) error {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	ln, err := listenUnix(o.listen)
	if err != nil {
		return err
	}
	defer ln.Close()

	emb, err := store.StartEmbedded(ctx, filepath.Join(o.dataDir, "etcd"), log.With("component", "etcd"))
	if err != nil {
		return err
	}
	defer emb.Close()
	id, err := server.ServerID(o.dataDir)
	if err != nil {
		return err
	}
	if o.addressPool == "" {
		o.addressPool = server.DefaultAddressPool
		if o.advertise != "" {
			o.addressPool = server.DefaultClusterAddressPool
		}
	}
	if !scheduler.ValidStrategy(o.strategy) {
		return fmt.Errorf("--strategy %q: want spread or binpack", o.strategy)
	}
	if o.networkSize == 0 {
		o.networkSize = 24
		if o.advertise != "" {
			o.networkSize = 20
		}
	}
	srv := server.New(server.Config{
		AddressPool: o.addressPool, NetworkSize: o.networkSize, Strategy: o.strategy, AddressPool6: o.addressPool6, NodeGrace: o.nodeGrace, Version: version, Logger: log,
	}, store.New(emb.Client))
	// Images live on the server's disk, not in etcd: nodes fetch their
	// blobs from here over the cluster's mutual TLS.
	cs, err := content.NewStore(filepath.Join(o.dataDir, "content"))
	if err != nil {
		return fmt.Errorf("content store: %w", err)
	}
	srv.SetContentStore(cs)

	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 3)
	go func() { errc <- hs.Serve(ln) }()
	if o.advertise != "" {
		// Before the controller starts: it leases overlay slices only in
		// a cluster.
		tcp, err := serveAgents(ctx, o, srv, log)
		if err != nil {
			return err
		}
		defer tcp.Close()
		o.agent.addr, _, _ = net.SplitHostPort(o.advertise)
	}
	go func() {
		if err := srv.RunController(ctx, id); err != nil {
			errc <- err
		}
	}()
	log.Info("drover server ready", "listen", o.listen, "data-dir", o.dataDir, "version", version)

	agentDone := make(chan struct{})
	if !o.noAgent {
		o.agent.server = o.listen
		o.agent.dataDir = filepath.Join(o.dataDir, "agent")
		o.agent.manager = true
		go func() {
			defer close(agentDone)
			if err := runAgent(ctx, o.agent, log); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("agent: %w", err)
			}
		}()
	} else {
		close(agentDone)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down; containers keep running")
	case err = <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	select {
	case <-agentDone:
	case <-sctx.Done():
	}
	return err
}

// listenUnix opens the API's unix socket, root-only. A socket left by a
// dead server is replaced; one that answers belongs to a live server.
func listenUnix(addr string) (net.Listener, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "unix" || u.Path == "" {
		return nil, fmt.Errorf("--listen %q: want unix:///absolute/path", addr)
	}
	path := u.Path
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("--listen: another server already answers on %s", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		if strings.Contains(err.Error(), "invalid argument") && len(path) > 100 {
			return nil, fmt.Errorf("--listen: socket path %s is too long (unix sockets allow about 100 bytes)", path)
		}
		return nil, fmt.Errorf("--listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
