package main

import (
	"fmt"
	"io"
	"time"
)

// nomadC1M is Nomad's published C1M rate: 1,000,000 containers on 5,000
// hosts in under 5 minutes, about 3,750 a second.
const nomadC1M = 3750.0

func (r *result) print(w io.Writer) {
	sec := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	fmt.Fprintf(w, "Drover control-plane simulation: %d tasks, %d services, %d nodes (reports %s, transport %s)\n",
		r.Tasks, r.Services, r.Nodes, r.Reports, r.Transport)
	fmt.Fprintf(w, "  machine: %d CPUs, %s; load average at start %s, at end %s\n", r.CPUs, r.GoVersion, r.LoadStart, r.LoadEnd)
	fmt.Fprintf(w, "  setup (etcd, server, %d nodes registered): %s\n", r.Nodes, sec(r.Setup))
	fmt.Fprintf(w, "  deploy call returned:     %s\n", sec(r.DeployCall))
	fmt.Fprintf(w, "  first task placed:        %s\n", sec(r.FirstPlaced))
	fmt.Fprintf(w, "  all tasks placed:         %s  -> %.0f placements/s (Nomad C1M: %.0f/s)\n", sec(r.AllPlaced), r.PlacementsPerSec, nomadC1M)
	fmt.Fprintf(w, "  first task running:       %s\n", sec(r.FirstRunning))
	fmt.Fprintf(w, "  all tasks running:        %s  -> %.0f tasks/s to running (converged: %v)\n", sec(r.AllRunning), r.RunningPerSec, r.Converged)
	fmt.Fprintf(w, "  status reports: %d (%d failed and retried); heartbeats: %d (%d failed); failed starts: %d\n",
		r.StatusReports, r.ReportErrors, r.Heartbeats, r.HeartbeatErrors, r.FailedStarts)
	fmt.Fprintf(w, "  memory: peak heap %s, peak live heap %s, peak RSS %s, peak goroutines %d\n",
		mib(r.PeakHeapObjects), mib(r.PeakHeapLive), mib(r.PeakRSS), r.PeakGoroutines)
	fmt.Fprintf(w, "  live heap at convergence: server (store, etcd, controller) %s, simulation (nodes, fake runtimes) %s\n",
		mib(r.EndHeapServer), mib(r.EndHeapSim))
	fmt.Fprintf(w, "  etcd db: %s on disk, %s in use\n", mib(uint64(r.EtcdDBSize)), mib(uint64(r.EtcdDBInUse)))
	if v := r.Verdict; v != nil {
		fmt.Fprintf(w, "  store: %d tasks wanted, %d running, %d unplaced, %d retired; per node %d..%d tasks, at most %.0f%% of CPUs reserved\n",
			v.Tasks, v.Running, v.Unplaced, v.Retired, v.MinPerNode, v.MaxPerNode, 100*v.MaxCPUsShare)
		fmt.Fprintf(w, "  stored sizes: a task %d bytes, a status %d bytes\n", v.TaskBytes, v.StatusBytes)
		for _, p := range v.Problems {
			fmt.Fprintf(w, "  PROBLEM: %s\n", p)
		}
	}
	if d := r.Diagnosis; d != nil {
		fmt.Fprintf(w, "  one controller pass now: snapshot %s (holds %s), reconcile %s (idle: %v)\n",
			sec(d.Snapshot), mib(d.SnapshotHeap), sec(d.Reconcile), d.ReconcileIdle)
		fmt.Fprintf(w, "  one assignments poll now: snapshot %s + AssignmentsFor %s, per node and per wake-up\n",
			sec(d.Snapshot), sec(d.AssignmentsFor))
	}
	if r.UnplacedWrites > 0 {
		fmt.Fprintf(w, "  task writes without a node: %d (last reason: %s)\n", r.UnplacedWrites, r.UnplacedReason)
	}
	if r.LastError != "" {
		fmt.Fprintf(w, "  last error seen: %s\n", r.LastError)
	}
}
