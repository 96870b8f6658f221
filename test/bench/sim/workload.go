package main

import (
	"context"
	"fmt"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

const stackName = "sim"

var zones = []string{"a", "b", "c", "d"}

// stackSpec is the workload, the same mix as the scheduler's benchmark
// (internal/scheduler/bench_test.go): a third of the services avoid one
// zone, a third reserve CPU and memory with a cap per node, a third spread
// over zones. Replicas are split evenly, the first services taking the
// remainder.
func stackSpec(cfg config) api.StackSpec {
	spec := api.StackSpec{Name: stackName}
	if cfg.network {
		spec.Networks = []api.NetworkSpec{{Name: "default"}}
	}
	per, extra := cfg.tasks/cfg.services, cfg.tasks%cfg.services
	for s := 0; s < cfg.services; s++ {
		sv := api.ServiceSpec{
			Name:     fmt.Sprintf("svc-%04d", s),
			Image:    "drover.local/sim/app:1",
			Command:  []string{"serve", "--port", "8080"},
			Env:      []string{"SERVICE=" + fmt.Sprint(s)},
			Replicas: per,
			Restart:  api.RestartPolicy{Condition: api.RestartAny},
		}
		if s < extra {
			sv.Replicas++
		}
		if cfg.network {
			sv.Networks = []api.ServiceNetwork{{Name: "default"}}
		}
		switch s % 3 {
		case 0:
			sv.Placement.Constraints = []string{"node.labels.zone!=" + zones[s%len(zones)]}
		case 1:
			sv.Reservations = api.Resources{CPUs: cfg.reserveCPUs, MemoryBytes: cfg.reserveMemory}
			sv.Placement.MaxReplicasPerNode = maxPerNode(cfg, sv.Replicas)
		case 2:
			sv.Placement.Preferences = []string{"node.labels.zone"}
		}
		spec.Services = append(spec.Services, sv)
	}
	return spec
}

// maxPerNode leaves room: twice an even share, at least 2.
func maxPerNode(cfg config, replicas int) int {
	return 2 * max(1, (replicas+cfg.nodes-1)/cfg.nodes)
}

// labelNodes gives each node a zone label, as an operator would with
// `drover node update --label-add`. It writes the store directly: through
// the API every update takes a full snapshot, which for thousands of nodes
// is setup time that says nothing about the deploy measured afterwards.
func labelNodes(ctx context.Context, st *store.Store, f *fleet) error {
	txn := &store.Txn{}
	for i, n := range f.nodes {
		var node api.Node
		if _, err := st.Get(ctx, store.NodeKey(n.id), &node); err != nil {
			return fmt.Errorf("label %s: %w", n.id, err)
		}
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		node.Labels["zone"] = zones[i%len(zones)]
		txn.Put(store.NodeKey(n.id), node)
	}
	return st.Commit(ctx, txn)
}

// deployOptions are those of a plain `drover up`.
var deployOptions = api.DeployOptions{}
