package scheduler

import (
	"fmt"

	"github.com/drover-org/drover/api"
)

const gib = int64(1) << 30

// mkNode makes a ready, active node with 4 CPUs and 8GiB.
func mkNode(id string, mods ...func(*api.Node)) api.Node {
	n := api.Node{NodeRegistration: api.NodeRegistration{ID: id, Hostname: "host-" + id, CPUs: 4, MemoryBytes: 8 * gib}, State: api.NodeReady}
	for _, m := range mods {
		m(&n)
	}
	return n
}

func labels(kv ...string) func(*api.Node) {
	return func(n *api.Node) {
		n.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

func resources(cpus int, mem int64) func(*api.Node) {
	return func(n *api.Node) { n.CPUs, n.MemoryBytes = cpus, mem }
}

func state(s string) func(*api.Node) { return func(n *api.Node) { n.State = s } }

func availability(a string) func(*api.Node) { return func(n *api.Node) { n.Availability = a } }

func role(r string) func(*api.Node) { return func(n *api.Node) { n.Role = r } }

// mkTasks makes count pending tasks of service svc with the spec, IDs
// svc-1, svc-2...
func mkTasks(svc string, count int, spec api.ServiceSpec) []api.Task {
	spec.Name = svc
	out := make([]api.Task, count)
	for i := range out {
		out[i] = api.Task{ID: fmt.Sprintf("%s-%d", svc, i+1), Stack: "s", Service: svc, Slot: i + 1, Spec: spec, DesiredState: api.DesiredRunning}
	}
	return out
}

// on places tasks on a node, as running.
func on(node string, ts []api.Task) []api.Task {
	for i := range ts {
		ts[i].ID = "run-" + ts[i].ID
		ts[i].NodeID = node
	}
	return ts
}

// perNode counts the plan's placements by node.
func perNode(p Plan) map[string]int {
	m := map[string]int{}
	for _, pl := range p.Placements {
		m[pl.NodeID]++
	}
	return m
}
