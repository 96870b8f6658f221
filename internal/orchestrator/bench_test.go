package orchestrator

import (
	"fmt"
	"testing"

	"github.com/drover-org/drover/api"
)

// steadyCluster is a converged cluster: every replica of every service
// runs on one of the nodes, so a pass finds nothing to do. It is what the
// controller reconciles after every status report of a large deploy.
func steadyCluster(nodes, services, perService int) Input {
	in := Input{Stacks: stacks, Now: t0, NewID: ids()}
	for i := 0; i < nodes; i++ {
		in.Nodes = append(in.Nodes, api.Node{NodeRegistration: api.NodeRegistration{ID: fmt.Sprintf("n%05d", i), CPUs: 64, MemoryBytes: 256 << 30},
			State: api.NodeReady})
	}
	n := 0
	for s := 0; s < services; s++ {
		sv := svc(fmt.Sprintf("svc%03d", s), perService, 1, always)
		in.Services = append(in.Services, sv)
		for slot := 1; slot <= perService; slot++ {
			t := task(fmt.Sprintf("t%07d", n), sv.Spec.Name, slot, 1, api.StateRunning)
			t.Spec = sv.Spec
			t.NodeID = in.Nodes[n%nodes].ID
			in.Tasks = append(in.Tasks, t)
			n++
		}
	}
	return in
}

func BenchmarkReconcileSteady100k(b *testing.B) {
	in := steadyCluster(1000, 100, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if act := Reconcile(in); !act.Empty() {
			b.Fatalf("a converged cluster needs work: %d create, %d shutdown", len(act.Create), len(act.Shutdown))
		}
	}
}

func BenchmarkReconcileCreate100k(b *testing.B) {
	in := steadyCluster(1000, 100, 1000)
	in.Tasks = nil
	b.ReportAllocs()
	for b.Loop() {
		if act := Reconcile(in); len(act.Create) != 100_000 || len(act.Unplaced) != 0 {
			b.Fatalf("%d created", len(act.Create))
		}
	}
}
