package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// A project of hundreds of services deploys in one all-or-nothing write,
// and hundreds of tasks placed in one pass of a cluster's controller (with
// the slices of their overlay network leased on the way) are written, past
// etcd's default limit of 128 operations a transaction and past ours.
func TestLargeProjectDeploysAndPlaces(t *testing.T) {
	s, st := newTestServer(t)
	s.cfg.NetworkSize = 20
	s.cfg.AddressPool = DefaultClusterAddressPool
	s.EnableCluster(&Cluster{Advertise: "127.0.0.1:7946", NodeTTL: time.Hour})
	ctx := context.Background()
	txn := &store.Txn{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("n%d", i)
		txn.Put(store.NodeKey(id), api.Node{NodeRegistration: api.NodeRegistration{ID: id, Hostname: "h" + id, Addr: fmt.Sprintf("192.0.2.%d", i)},
			State: api.NodeReady, Availability: api.AvailabilityActive})
	}
	if err := st.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		s.beat(fmt.Sprintf("n%d", i), time.Now())
	}
	const services = 300
	var svcs []api.ServiceSpec
	for i := 0; i < services; i++ {
		svcs = append(svcs, service(fmt.Sprintf("svc%03d", i), 1))
	}
	// More tasks than one transaction may hold, so the pass must split
	// its write while the slices' leases stay guarded.
	many := store.MaxTxnOps + 100
	svcs = append(svcs, service("many", many))
	sp := spec("big", svcs...)
	sp.Secrets = []api.SecretSpec{{Name: "blob", Content: []byte(strings.Repeat("x", 3<<20))}}
	if _, err := s.Deploy(ctx, sp, DeployOptions{}); err != nil {
		t.Fatalf("deploy of %d services: %v", len(svcs), err)
	}
	if _, err := s.ReconcileOnce(ctx); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Services) != len(svcs) {
		t.Fatalf("%d services stored, want %d", len(snap.Services), len(svcs))
	}
	placed := 0
	for _, tk := range snap.Tasks {
		if tk.NodeID != "" {
			placed++
		}
	}
	if want := services + many; len(snap.Tasks) != want || placed != want {
		t.Fatalf("%d tasks, %d placed; want %d placed", len(snap.Tasks), placed, want)
	}
	slices := 0
	for _, owner := range snap.SubnetLeases {
		if strings.Contains(owner, "@") {
			slices++
		}
	}
	if slices != 3 {
		t.Errorf("%d node slices leased, want 3: %v", slices, snap.SubnetLeases)
	}

	// Changing every service is one write too.
	for i := range sp.Services {
		sp.Services[i].Env = []string{"V=2"}
	}
	if _, err := s.Deploy(ctx, sp, DeployOptions{}); err != nil {
		t.Fatalf("redeploy: %v", err)
	}
}

// A project too large for one write is refused, saying so, and nothing of
// it is written.
func TestTooLargeProjectRefused(t *testing.T) {
	s, st := newTestServer(t)
	ctx := context.Background()
	sp := spec("huge", service("web", 1))
	sp.Secrets = []api.SecretSpec{{Name: "blob", Content: []byte(strings.Repeat("x", 40<<20))}}
	_, err := s.Deploy(ctx, sp, DeployOptions{})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), `project "huge"`) || !strings.Contains(err.Error(), "MiB") {
		t.Fatalf("deploy of a project over the write limit: %v; want ErrInvalid that names the project and the size", err)
	}
	snap, _ := st.Snapshot(ctx)
	if len(snap.Stacks) != 0 || len(snap.Services) != 0 {
		t.Fatalf("a refused deploy left %d stacks, %d services", len(snap.Stacks), len(snap.Services))
	}
}
