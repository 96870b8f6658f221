package scheduler

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

var scale = flag.Bool("scale", false, "run TestScale: print placements/s and peak heap for 100k tasks on 1k nodes and 1M on 5k")

// simCluster is a simulated cluster and workload: nodes of 64 CPUs and
// 256GiB in 4 zones, some labelled ssd; services of perService tasks each,
// a third constrained to a zone, a third with reservations and at most
// maxPer per node, a third spread over zones.
func simCluster(nodes, tasks, perService int) ([]api.Node, []api.Task) {
	ns := make([]api.Node, nodes)
	zones := []string{"a", "b", "c", "d"}
	for i := range ns {
		ns[i] = api.Node{
			NodeRegistration: api.NodeRegistration{ID: fmt.Sprintf("node-%05d", i), Hostname: fmt.Sprintf("host-%05d", i), CPUs: 64, MemoryBytes: 256 * gib},
			Role:             "worker",
			Labels:           map[string]string{"zone": zones[i%len(zones)]},
			State:            api.NodeReady,
		}
		if i%3 == 0 {
			ns[i].Labels["disk"] = "ssd"
		}
	}
	ts := make([]api.Task, tasks)
	perNode := (tasks + nodes - 1) / nodes
	for s := 0; s*perService < tasks; s++ {
		var spec api.ServiceSpec
		spec.Name = fmt.Sprintf("svc%d", s)
		switch s % 3 {
		case 0:
			spec.Placement.Constraints = []string{"node.labels.zone!=" + zones[s%len(zones)]}
		case 1:
			spec.Reservations = api.Resources{CPUs: 0.1, MemoryBytes: 256 << 20}
			spec.Placement.MaxReplicasPerNode = 2 * max(1, perService/nodes+1)
		case 2:
			spec.Placement.Preferences = []string{"node.labels.zone"}
		}
		_ = perNode
		for i := s * perService; i < min(tasks, (s+1)*perService); i++ {
			ts[i] = api.Task{ID: fmt.Sprintf("t%07d", i), Stack: "sim", Service: spec.Name, Slot: i - s*perService + 1, Spec: spec, DesiredState: api.DesiredRunning}
		}
	}
	return ns, ts
}

func benchSchedule(b *testing.B, nodes, tasks, perService int) {
	ns, ts := simCluster(nodes, tasks, perService)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p := Schedule(ns, nil, ts)
		if len(p.Unplaced) != 0 {
			b.Fatalf("%d unplaced: %s", len(p.Unplaced), p.Unplaced[0].Reason)
		}
	}
	b.ReportMetric(float64(tasks)*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
}

func BenchmarkSchedule100kOn1k(b *testing.B) { benchSchedule(b, 1000, 100_000, 1000) }
func BenchmarkSchedule1MOn5k(b *testing.B)   { benchSchedule(b, 5000, 1_000_000, 1000) }

// BenchmarkSchedule100kSingletonsOn1k is the worst case: every task its
// own service, so nothing is shared and each costs a pass over the nodes.
func BenchmarkSchedule100kSingletonsOn1k(b *testing.B) { benchSchedule(b, 1000, 100_000, 1) }

// TestScale prints what docs/scheduler.md reports:
//
//	go test ./internal/scheduler -run TestScale -scale -v
func TestScale(t *testing.T) {
	if !*scale {
		t.Skip("pass -scale to run")
	}
	for _, c := range []struct{ nodes, tasks, perService int }{{1000, 100_000, 1000}, {5000, 1_000_000, 1000}, {1000, 100_000, 1}} {
		ns, ts := simCluster(c.nodes, c.tasks, c.perService)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)

		peak := before.HeapAlloc
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			var m runtime.MemStats
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					runtime.ReadMemStats(&m)
					peak = max(peak, m.HeapAlloc)
				}
			}
		})
		start := time.Now()
		p := Schedule(ns, nil, ts)
		d := time.Since(start)
		close(stop)
		wg.Wait()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		peak = max(peak, after.HeapAlloc)
		if len(p.Unplaced) != 0 {
			t.Fatalf("%d unplaced: %s", len(p.Unplaced), p.Unplaced[0].Reason)
		}
		t.Logf("%d tasks (%d per service) on %d nodes: %v, %.0f placements/s; heap: input %s, peak during Schedule +%s, allocated %s",
			c.tasks, c.perService, c.nodes, d.Round(time.Millisecond), float64(c.tasks)/d.Seconds(),
			formatBytes(int64(before.HeapAlloc)), formatBytes(int64(peak-before.HeapAlloc)), formatBytes(int64(after.TotalAlloc-before.TotalAlloc)))
	}
}
