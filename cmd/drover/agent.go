package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"crypto/tls"
	"net"
	"strconv"
	"strings"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/agent"
	"github.com/drover-org/drover/internal/buildkitd"
	"github.com/drover-org/drover/internal/dns"
	"github.com/drover-org/drover/internal/mesh"
	"github.com/drover-org/drover/internal/network"
	"github.com/drover-org/drover/internal/runtime/containerd"
	"github.com/spf13/cobra"
)

type agentOptions struct {
	server              string
	dataDir             string
	containerdAddress   string
	containerdNamespace string
	cniPluginDirs       []string
	dnsPort             int
	logLevel            string
	manager             bool // the agent runs inside a server
	token               string
	advertise           string
	meshPort            int
	addr                string // the host address overlay traffic comes to (the server's agent: its --advertise host)
	hostname            string
}

func addAgentRuntimeFlags(cmd *cobra.Command, o *agentOptions) {
	f := cmd.Flags()
	f.StringVar(&o.containerdAddress, "containerd-address", "", "use this containerd socket instead of starting one under the data dir")
	f.StringVar(&o.containerdNamespace, "containerd-namespace", containerd.DefaultNamespace, "containerd namespace of Drover's images and containers")
	f.StringSliceVar(&o.cniPluginDirs, "cni-plugin-dir", network.DefaultPluginDirs, "where the CNI plugins are")
	f.IntVar(&o.dnsPort, "dns-port", 53, "port of the DNS server on each network's gateway")
	f.IntVar(&o.meshPort, "mesh-port", 7948, "port (on the node's cluster address) where other nodes' routing mesh reaches this node's tasks")
}

func agentCommand() *cobra.Command {
	var o agentOptions
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run this host's agent against a server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(o.logLevel)
			if err != nil {
				return err
			}
			return runAgent(cmd.Context(), o, log)
		},
	}
	cmd.Flags().StringVar(&o.server, "server", api.DefaultHost, "the server: unix:///PATH on this host, or ADDR:PORT (its --advertise) over mutual TLS")
	cmd.Flags().StringVar(&o.hostname, "hostname", "", "the node's name (default: the host's name)")
	cmd.Flags().StringVar(&o.token, "token", "", "join token from `drover node token` (needed once, to join)")
	cmd.Flags().StringVar(&o.advertise, "advertise", "", "ADDR:PORT this agent serves the server on (default: the address that reaches the server, port 7947)")
	cmd.Flags().StringVar(&o.dataDir, "data-dir", "/var/lib/drover-agent", "where the agent keeps its state")
	cmd.Flags().StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	addAgentRuntimeFlags(cmd, &o)
	return cmd
}

func runAgent(ctx context.Context, o agentOptions, log *slog.Logger) error {
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("agent data dir: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary for the container logger: %w", err)
	}
	// The small drover-logger beside this binary starts faster and uses
	// less memory per container; drover itself can do the job too.
	logger := self
	if p := filepath.Join(filepath.Dir(self), "drover-logger"); fileExists(p) {
		logger = p
	}
	// Join (or load the identity) first: a refused join starts nothing.
	hostname := o.hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	var srvClient *api.Client
	var identity *agent.Identity
	var agentLn net.Listener
	address := ""
	if strings.HasPrefix(o.server, "unix://") {
		if srvClient, err = api.NewClient(o.server); err != nil {
			return fmt.Errorf("--server: %w", err)
		}
	} else {
		adv, err := agentAdvertise(o)
		if err != nil {
			return err
		}
		host, _, _ := net.SplitHostPort(adv)
		o.addr = host
		if identity, err = agent.LoadOrJoin(ctx, o.dataDir, o.server, o.token, hostname, []string{host}); err != nil {
			return err
		}
		ctls, err := identity.ClientTLS()
		if err != nil {
			return err
		}
		if srvClient, err = api.NewClientTLS(o.server, ctls); err != nil {
			return fmt.Errorf("--server: %w", err)
		}
		stls, err := identity.ServerTLS()
		if err != nil {
			return err
		}
		if agentLn, err = tls.Listen("tcp", adv, stls); err != nil {
			return fmt.Errorf("--advertise: %w", err)
		}
		address = "https://" + adv
		go identity.KeepRenewed(ctx, srvClient, hostname, []string{host}, 10*time.Minute, log)
		log.Info("joined the cluster", "node", identity.NodeID, "server", o.server)
	}
	drv, err := containerd.Open(ctx, containerd.Config{
		Address: o.containerdAddress, DataDir: o.dataDir, Namespace: o.containerdNamespace,
		LoggerBinary: logger, Logger: log,
		// Registry logins stay on the servers; a pull that meets a
		// registry's challenge asks for that registry's alone.
		Credentials: func(ctx context.Context, host string) (string, string, error) {
			c, err := srvClient.RegistryCredentials(ctx, host)
			if errors.Is(err, api.ErrNotFound) {
				return "", "", nil // no login: anonymous
			}
			return c.Username, c.Password, err
		},
	})
	if err != nil {
		return err
	}
	defer drv.Close()
	builder, err := buildkitd.New(buildkitd.Config{
		DataDir: o.dataDir, Containerd: drv.Address(), Namespace: o.containerdNamespace,
		Snapshotter: containerd.DefaultSnapshotter, Logger: log,
	})
	if err != nil {
		return err
	}
	defer builder.Close()
	netm, err := network.New(network.Config{PluginDirs: o.cniPluginDirs, StateDir: filepath.Join(o.dataDir, "network"), Logger: log})
	if err != nil {
		return err
	}
	resolver := dns.NewServer(dns.Config{Upstreams: dns.HostUpstreams("/etc/resolv.conf"), Port: o.dnsPort, Logger: log})
	defer resolver.Close()
	sock := filepath.Join(o.dataDir, "agent.sock")
	if address == "" {
		address = "unix://" + sock
	}
	meshc := &mesh.Client{Dir: filepath.Join(o.dataDir, "mesh"), Binary: self, Logger: log}
	meshPort := 0
	if o.addr != "" {
		// Other nodes' balancers reach this node's tasks here (a cluster
		// only: a single host dials its tasks directly).
		meshc.Tunnel = net.JoinHostPort(o.addr, strconv.Itoa(o.meshPort))
		meshPort = o.meshPort
	}
	ag, err := agent.New(agent.Config{
		Mesh: meshc, MeshPort: meshPort,
		DataDir: o.dataDir, Server: srvClient, Address: address,
		Driver: drv, Images: drv, Network: netm, DNS: resolver, Version: version, Logger: log, Manager: o.manager, Hostname: hostname, Addr: o.addr,
		Builder: builder,
	})
	if err != nil {
		return err
	}
	ln, err := listenUnix("unix://" + sock)
	if err != nil {
		return fmt.Errorf("agent socket: %w", err)
	}
	hs := &http.Server{Handler: ag.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	if agentLn != nil {
		ths := &http.Server{Handler: ag.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ths.Serve(agentLn) }()
		defer ths.Close()
	}
	return ag.Run(ctx)
}

// agentAdvertise is where the agent serves the server: --advertise, or the
// local address that routes to the server, on port 7947.
func agentAdvertise(o agentOptions) (string, error) {
	if o.advertise != "" {
		if _, _, err := net.SplitHostPort(o.advertise); err != nil {
			return "", fmt.Errorf("--advertise %q: want ADDR:PORT", o.advertise)
		}
		return o.advertise, nil
	}
	c, err := net.Dial("udp", strings.TrimPrefix(o.server, "https://"))
	if err != nil {
		return "", fmt.Errorf("--server %q: %w", o.server, err)
	}
	defer c.Close()
	host, _, _ := net.SplitHostPort(c.LocalAddr().String())
	return net.JoinHostPort(host, "7947"), nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
