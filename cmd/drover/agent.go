package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/agent"
	"github.com/drover-org/drover/internal/dns"
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
}

func addAgentRuntimeFlags(cmd *cobra.Command, o *agentOptions) {
	f := cmd.Flags()
	f.StringVar(&o.containerdAddress, "containerd-address", "", "use this containerd socket instead of starting one under the data dir")
	f.StringVar(&o.containerdNamespace, "containerd-namespace", containerd.DefaultNamespace, "containerd namespace of Drover's images and containers")
	f.StringSliceVar(&o.cniPluginDirs, "cni-plugin-dir", network.DefaultPluginDirs, "where the CNI plugins are")
	f.IntVar(&o.dnsPort, "dns-port", 53, "port of the DNS server on each network's gateway")
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
	cmd.Flags().StringVar(&o.server, "server", api.DefaultHost, "the server's API address")
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
	drv, err := containerd.Open(ctx, containerd.Config{
		Address: o.containerdAddress, DataDir: o.dataDir, Namespace: o.containerdNamespace,
		LoggerBinary: logger, Logger: log,
	})
	if err != nil {
		return err
	}
	defer drv.Close()
	netm, err := network.New(network.Config{PluginDirs: o.cniPluginDirs, StateDir: filepath.Join(o.dataDir, "network"), Logger: log})
	if err != nil {
		return err
	}
	resolver := dns.NewServer(dns.Config{Upstreams: dns.HostUpstreams("/etc/resolv.conf"), Port: o.dnsPort, Logger: log})
	defer resolver.Close()
	srvClient, err := api.NewClient(o.server)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	sock := filepath.Join(o.dataDir, "agent.sock")
	ag, err := agent.New(agent.Config{
		DataDir: o.dataDir, Server: srvClient, Address: "unix://" + sock,
		Driver: drv, Images: drv, Network: netm, DNS: resolver, Version: version, Logger: log, Manager: o.manager,
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
	return ag.Run(ctx)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
