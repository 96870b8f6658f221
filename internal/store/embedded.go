package store

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Embedded is an etcd member running inside the server process.
type Embedded struct {
	etcd   *embed.Etcd
	Client *clientv3.Client
}

// StartEmbedded starts a single-member etcd cluster with its data in dir
// (created if missing) and returns an in-process client. Clients reach it
// through a unix socket in dir; peers through a loopback port picked at
// start, since one member has no peers to talk to yet.
func StartEmbedded(ctx context.Context, dir string, log *slog.Logger) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("etcd peer port: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "drover"
	cfg.Dir = filepath.Join(dir, "member-data")
	cfg.Logger = "zap"
	// etcd's own log is noise to a Drover user (it reports its own
	// shutdown as errors); failures reach us as errors from StartEtcd.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	sock := filepath.Join(dir, "client.sock")
	_ = os.Remove(sock)
	cu := url.URL{Scheme: "unix", Path: sock}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
	cfg.ListenClientUrls = []url.URL{cu}
	cfg.AdvertiseClientUrls = []url.URL{cu}
	cfg.ListenPeerUrls = []url.URL{pu}
	cfg.AdvertisePeerUrls = []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Keep history bounded: watchers only need recent revisions.
	cfg.AutoCompactionMode = embed.CompactorModeRevision
	cfg.AutoCompactionRetention = "10000"
	cfg.QuotaBackendBytes = 4 << 30
	cfg.MaxTxnOps = MaxTxnOps
	cfg.MaxRequestBytes = MaxRequestBytes
	// The raft log is kept in memory until a snapshot trims it. Drover's
	// writes are batched (task placements, status reports), so entries
	// are large and few: at etcd's default of 100,000 entries a snapshot
	// would rarely come and the log would hold every recent write.
	cfg.SnapshotCount = 10000
	cfg.SnapshotCatchUpEntries = 1000

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready in 60s", dir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	log.Info("embedded etcd ready", "dir", dir)
	return &Embedded{etcd: e, Client: v3client.New(e.Server)}, nil
}

// Close stops the member.
func (e *Embedded) Close() {
	e.Client.Close()
	e.etcd.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
