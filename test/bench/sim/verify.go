package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/orchestrator"
	"github.com/drover-org/drover/internal/server"
	"github.com/drover-org/drover/internal/store"
)

// verdict is what the store holds once the run converged.
type verdict struct {
	Tasks        int      `json:"tasks"`        // desired running
	Running      int      `json:"running"`      // of those, with a running status
	Unplaced     int      `json:"unplaced"`     // of those, without a node
	Retired      int      `json:"retired"`      // desired shutdown, not yet deleted
	Problems     []string `json:"problems"`     // broken invariants; empty is good
	MaxPerNode   int      `json:"maxPerNode"`   // most tasks on one node
	MinPerNode   int      `json:"minPerNode"`   // fewest
	MaxCPUsShare float64  `json:"maxCpusShare"` // highest share of a node's CPUs reserved
	TaskBytes    int      `json:"taskBytes"`    // average size of a stored task
	StatusBytes  int      `json:"statusBytes"`  // average size of a stored status
}

// readPrefix reads every key under prefix at revision rev, in pages.
func readPrefix(ctx context.Context, cli *clientv3.Client, prefix string, rev int64, fn func(key string, value []byte) error) error {
	// etcd counts every key left in the range for each page: pages of
	// 10,000 over a million keys cost minutes, pages of 100,000 seconds.
	const page = 100_000
	from := prefix
	end := clientv3.GetPrefixRangeEnd(prefix)
	for {
		resp, err := cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithRev(rev), clientv3.WithLimit(page))
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			if err := fn(string(kv.Key), kv.Value); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// storedTask is what verify reads of a stored task.
type storedTask struct {
	ID           string `json:"id"`
	Stack        string `json:"stack"`
	Service      string `json:"service"`
	Slot         int    `json:"slot"`
	NodeID       string `json:"nodeID"`
	DesiredState string `json:"desiredState"`
	Spec         struct {
		Reservations api.Resources `json:"reservations"`
		Placement    api.Placement `json:"placement"`
	} `json:"spec"`
}

// verify checks what the store holds: every wanted task placed and
// running, no replica slot twice, no node's reservations overcommitted,
// no service above its max_replicas_per_node on a node.
func verify(ctx context.Context, cli *clientv3.Client) (verdict, error) {
	var v verdict
	head, err := cli.Get(ctx, store.Prefix+"version-probe")
	if err != nil {
		return v, err
	}
	rev := head.Header.Revision

	nodes := map[string]api.Node{}
	if err := readPrefix(ctx, cli, store.Prefix+"nodes/", rev, func(_ string, b []byte) error {
		var n api.Node
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		nodes[n.ID] = n
		return nil
	}); err != nil {
		return v, err
	}
	states := map[string]string{}
	var statusBytes, taskBytes, all int
	if err := readPrefix(ctx, cli, store.Prefix+"taskstatus/", rev, func(k string, b []byte) error {
		var st struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			return err
		}
		states[strings.TrimPrefix(k, store.Prefix+"taskstatus/")] = st.State
		statusBytes += len(b)
		return nil
	}); err != nil {
		return v, err
	}

	type use struct {
		cpus float64
		mem  int64
		n    int
	}
	perNode := map[string]*use{}
	perNodeService := map[string]int{}
	maxPer := map[string]int{}
	slots := map[string]string{}
	var problems []string
	problem := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	if err := readPrefix(ctx, cli, store.Prefix+"tasks/", rev, func(_ string, b []byte) error {
		var t storedTask
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		all++
		taskBytes += len(b)
		if t.DesiredState != api.DesiredRunning {
			v.Retired++
			return nil
		}
		v.Tasks++
		slot := fmt.Sprintf("%s/%s/%d", t.Stack, t.Service, t.Slot)
		if other, dup := slots[slot]; dup {
			problem("slot %s has two running tasks: %s and %s", slot, other, t.ID)
		}
		slots[slot] = t.ID
		if t.NodeID == "" {
			v.Unplaced++
			return nil
		}
		if _, ok := nodes[t.NodeID]; !ok {
			problem("task %s is on unknown node %s", t.ID, t.NodeID)
		}
		if states[t.ID] == api.StateRunning {
			v.Running++
		}
		u := perNode[t.NodeID]
		if u == nil {
			u = &use{}
			perNode[t.NodeID] = u
		}
		u.n++
		u.cpus += t.Spec.Reservations.CPUs
		u.mem += t.Spec.Reservations.MemoryBytes
		perNodeService[t.NodeID+" "+t.Service]++
		if m := t.Spec.Placement.MaxReplicasPerNode; m > 0 {
			maxPer[t.Service] = m
		}
		return nil
	}); err != nil {
		return v, err
	}
	if all > 0 {
		v.TaskBytes = taskBytes / all
	}
	if len(states) > 0 {
		v.StatusBytes = statusBytes / len(states)
	}
	v.MinPerNode = math.MaxInt
	for id, n := range nodes {
		u := perNode[id]
		if u == nil {
			u = &use{}
		}
		v.MaxPerNode = max(v.MaxPerNode, u.n)
		v.MinPerNode = min(v.MinPerNode, u.n)
		// Reservations are summed in billionths of a CPU by the scheduler;
		// the tolerance only absorbs float sums here.
		if u.cpus > float64(n.CPUs)+1e-6 || u.mem > n.MemoryBytes {
			problem("node %s overcommitted: %.2f of %d CPUs, %d of %d bytes reserved", id, u.cpus, n.CPUs, u.mem, n.MemoryBytes)
		}
		if n.CPUs > 0 {
			v.MaxCPUsShare = max(v.MaxCPUsShare, u.cpus/float64(n.CPUs))
		}
	}
	if len(nodes) == 0 {
		v.MinPerNode = 0
	}
	for k, c := range perNodeService {
		node, svc, _ := strings.Cut(k, " ")
		if m := maxPer[svc]; m > 0 && c > m {
			problem("node %s runs %d tasks of %s, above its max_replicas_per_node %d", node, c, svc, m)
		}
	}
	sort.Strings(problems)
	v.Problems = problems
	return v, nil
}

// diagnosis times, on the converged state with the controller stopped,
// the work the server repeats: a full snapshot and a reconcile pass (each
// controller pass does both), and one node's assignments poll (a snapshot
// plus AssignmentsFor).
type diagnosis struct {
	Snapshot       time.Duration `json:"snapshotNs"`
	SnapshotHeap   uint64        `json:"snapshotHeapBytes"` // live heap a snapshot holds
	Reconcile      time.Duration `json:"reconcileNs"`
	AssignmentsFor time.Duration `json:"assignmentsForNs"` // after the snapshot, for one node
	ReconcileIdle  bool          `json:"reconcileIdle"`    // the pass found nothing to do
}

func diagnose(ctx context.Context, st *store.Store, nodeID string) (diagnosis, error) {
	var d diagnosis
	runtime.GC()
	before := sampleMem().HeapLive
	start := time.Now()
	snap, err := st.Snapshot(ctx)
	if err != nil {
		return d, err
	}
	d.Snapshot = time.Since(start)
	runtime.GC()
	if after := sampleMem().HeapLive; after > before {
		d.SnapshotHeap = after - before
	}

	start = time.Now()
	act := orchestrator.Reconcile(orchestrator.Input{
		Stacks: snap.Stacks, Services: snap.Services, Tasks: snap.Tasks, Nodes: snap.Nodes,
		Now: time.Now().UTC(), NewID: server.RandomID,
	})
	d.Reconcile = time.Since(start)
	d.ReconcileIdle = act.Empty()

	start = time.Now()
	_ = server.AssignmentsFor(snap, nodeID)
	d.AssignmentsFor = time.Since(start)
	return d, nil
}
