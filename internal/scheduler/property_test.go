package scheduler

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/drover-org/drover/api"
	"pgregory.net/rapid"
)

var (
	constraintPool = []string{
		"node.labels.zone==east", "node.labels.zone!=east", "node.labels.zone==west",
		"node.role==manager", "node.role!=manager", "node.labels.disk==ssd", "node.hostname!=host-n1",
	}
	preferencePool = []string{"node.labels.zone", "node.labels.disk", "node.role"}
	portPool       = []api.PortSpec{
		{Mode: "host", Published: 80, Target: 80, Protocol: "tcp"},
		{Mode: "host", Published: 80, Target: 80, Protocol: "udp"},
		{Mode: "host", HostIP: "127.0.0.1", Published: 443, Target: 443, Protocol: "tcp"},
		{Mode: "host", Published: 443, Target: 443, Protocol: "tcp"},
	}
)

func genNodes(t *rapid.T, n int, uniform bool) []api.Node {
	nodes := make([]api.Node, n)
	for i := range nodes {
		id := fmt.Sprintf("n%d", i)
		nd := mkNode(id)
		if !uniform {
			nd.CPUs = rapid.IntRange(0, 4).Draw(t, "cpus")
			nd.MemoryBytes = rapid.Int64Range(0, 4).Draw(t, "gib") * gib
			nd.Role = rapid.SampledFrom([]string{"", "manager", "worker"}).Draw(t, "role")
			nd.Labels = map[string]string{}
			if z := rapid.SampledFrom([]string{"", "east", "west"}).Draw(t, "zone"); z != "" {
				nd.Labels["zone"] = z
			}
			if rapid.Bool().Draw(t, "ssd") {
				nd.Labels["disk"] = "ssd"
			}
			nd.Availability = rapid.SampledFrom([]string{"", "", "active", "pause", "drain"}).Draw(t, "availability")
			nd.State = rapid.SampledFrom([]string{api.NodeReady, api.NodeReady, api.NodeReady, api.NodeDown}).Draw(t, "state")
		}
		nodes[i] = nd
	}
	return nodes
}

func genSpec(t *rapid.T) api.ServiceSpec {
	var s api.ServiceSpec
	s.Placement.Constraints = rapid.SliceOfNDistinct(rapid.SampledFrom(constraintPool), 0, 2, rapid.ID[string]).Draw(t, "constraints")
	s.Placement.Preferences = rapid.SliceOfNDistinct(rapid.SampledFrom(preferencePool), 0, 2, rapid.ID[string]).Draw(t, "preferences")
	s.Placement.MaxReplicasPerNode = rapid.IntRange(0, 3).Draw(t, "max")
	s.Reservations.CPUs = float64(rapid.IntRange(0, 6).Draw(t, "quarterCPUs")) / 4
	s.Reservations.MemoryBytes = rapid.Int64Range(0, 4).Draw(t, "quarterGiB") * gib / 4
	if rapid.IntRange(0, 3).Draw(t, "hasPorts") == 0 {
		s.Ports = rapid.SliceOfNDistinct(rapid.SampledFrom(portPool), 1, 2, func(p api.PortSpec) string { return fmt.Sprint(p) }).Draw(t, "ports")
	}
	return s
}

// genTasks makes tasks of a few services; services are named svc0...
func genTasks(t *rapid.T, label string, maxServices, maxPer int) []api.Task {
	var out []api.Task
	for s := range rapid.IntRange(0, maxServices).Draw(t, label+"Services") {
		spec := genSpec(t)
		name := fmt.Sprintf("svc%d", rapid.IntRange(0, 3).Draw(t, "service"))
		ts := mkTasks(name, rapid.IntRange(1, maxPer).Draw(t, "count"), spec)
		for i := range ts {
			ts[i].ID = fmt.Sprintf("%s-%d-%s", label, s, ts[i].ID)
			ts[i].SpecVersion = uint64(s)
		}
		out = append(out, ts...)
	}
	return out
}

// fits is an independent statement of the rules: can node n, holding the
// tasks on it, take t?
func fits(n *api.Node, on []*api.Task, t *api.Task) bool {
	if n.State != api.NodeReady || (n.Availability != "" && n.Availability != api.AvailabilityActive) {
		return false
	}
	for _, s := range t.Spec.Placement.Constraints {
		c, err := ParseConstraint(s)
		if err != nil || !c.Match(n) {
			return false
		}
	}
	wild := func(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }
	var cpu, mem int64
	same := 0
	for _, o := range on {
		cpu += nanoCPUs(o.Spec.Reservations.CPUs)
		mem += o.Spec.Reservations.MemoryBytes
		if o.Stack == t.Stack && o.Service == t.Service {
			same++
		}
		if o.Stack == t.Stack && o.Service == t.Service {
			continue // replicas share their host ports
		}
		for _, p := range o.Spec.Ports {
			for _, q := range t.Spec.Ports {
				if p.Published != 0 && p.Published == q.Published && protocol(p.Protocol) == protocol(q.Protocol) &&
					(p.HostIP == q.HostIP || wild(p.HostIP) || wild(q.HostIP)) {
					return false
				}
			}
		}
	}
	if m := t.Spec.Placement.MaxReplicasPerNode; m > 0 && same >= m {
		return false
	}
	if r := nanoCPUs(t.Spec.Reservations.CPUs); r > 0 && cpu+r > int64(n.CPUs)*1e9 {
		return false
	}
	if r := t.Spec.Reservations.MemoryBytes; r > 0 && mem+r > n.MemoryBytes {
		return false
	}
	return true
}

// TestPropertyRules replays each plan in order and checks every placement
// against the rules (so: no overcommit, constraints hold, max per node and
// ports hold), that every unplaced task fits no node even at the end, and
// that its reason accounts for every node.
func TestPropertyRules(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := genNodes(t, rapid.IntRange(0, 6).Draw(t, "nodes"), false)
		pending := genTasks(t, "p", 4, 6)
		// Running tasks are made by the scheduler itself, so they respect
		// the rules too.
		seed := genTasks(t, "r", 3, 4)
		var running []api.Task
		for _, pl := range Schedule(nodes, nil, seed).Placements {
			for _, s := range seed {
				if s.ID == pl.TaskID {
					s.NodeID = pl.NodeID
					running = append(running, s)
				}
			}
		}
		opts := Options{Strategy: rapid.SampledFrom([]string{"", Spread, Binpack}).Draw(t, "strategy")}
		plan := ScheduleWith(opts, nodes, running, pending)

		byID := map[string]*api.Task{}
		for i := range pending {
			byID[pending[i].ID] = &pending[i]
		}
		nodeByID := map[string]*api.Node{}
		for i := range nodes {
			nodeByID[nodes[i].ID] = &nodes[i]
		}
		on := map[string][]*api.Task{}
		for i := range running {
			on[running[i].NodeID] = append(on[running[i].NodeID], &running[i])
		}
		if len(plan.Placements)+len(plan.Unplaced) != len(pending) {
			t.Fatalf("%d placed + %d unplaced != %d pending", len(plan.Placements), len(plan.Unplaced), len(pending))
		}
		// Placements are in pending order per group, but rules are
		// checked in the order the scheduler made them: by group. Replay
		// per group in pending order of first appearance.
		for _, g := range groupTasks(pending) {
			for _, i := range g.tasks {
				tk := &pending[i]
				nodeID := ""
				for _, pl := range plan.Placements {
					if pl.TaskID == tk.ID {
						nodeID = pl.NodeID
					}
				}
				if nodeID == "" {
					continue
				}
				n := nodeByID[nodeID]
				if !fits(n, on[nodeID], tk) {
					t.Fatalf("task %s (%+v) placed on %s (%+v) holding %d tasks: breaks a rule", tk.ID, tk.Spec.Placement, nodeID, n, len(on[nodeID]))
				}
				on[nodeID] = append(on[nodeID], tk)
			}
		}
		for _, u := range plan.Unplaced {
			tk := byID[u.TaskID]
			for i := range nodes {
				if fits(&nodes[i], on[nodes[i].ID], tk) {
					t.Fatalf("task %s unplaced (%s) but fits %s at the end", tk.ID, u.Reason, nodes[i].ID)
				}
			}
			if strings.HasPrefix(u.Reason, "invalid placement") || len(nodes) == 0 {
				continue
			}
			if got := reasonTotal(t, u.Reason); got != len(nodes) {
				t.Fatalf("reason %q counts %d nodes, want %d", u.Reason, got, len(nodes))
			}
		}
	})
}

// reasonTotal adds up the node counts of a reason's parts.
func reasonTotal(t *rapid.T, reason string) int {
	prefix := "0/"
	rest, ok := strings.CutPrefix(reason, prefix)
	if !ok {
		t.Fatalf("reason %q does not start with %q", reason, prefix)
	}
	_, parts, _ := strings.Cut(rest, "nodes: ")
	sum := 0
	for _, p := range strings.Split(parts, ", ") {
		n, err := strconv.Atoi(strings.SplitN(p, " ", 2)[0])
		if err != nil {
			t.Fatalf("reason %q: part %q has no count", reason, p)
		}
		sum += n
	}
	return sum
}

// TestPropertySpreadEven: with nothing but spread at work, a service's
// tasks are within one of each other across nodes, whatever else runs.
func TestPropertySpreadEven(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := genNodes(t, rapid.IntRange(1, 12).Draw(t, "nodes"), true)
		var running []api.Task
		for i, n := range rapid.SliceOfN(rapid.IntRange(0, len(nodes)-1), 0, 30).Draw(t, "other") {
			ts := mkTasks("other", 1, api.ServiceSpec{})
			ts[0].ID, ts[0].NodeID = fmt.Sprintf("o%d", i), nodes[n].ID
			running = append(running, ts...)
		}
		pending := mkTasks("web", rapid.IntRange(0, 50).Draw(t, "tasks"), api.ServiceSpec{})
		plan := Schedule(nodes, running, pending)
		if len(plan.Unplaced) != 0 {
			t.Fatalf("unplaced %v", plan.Unplaced)
		}
		counts := perNode(plan)
		lo, hi := len(pending), 0
		for _, n := range nodes {
			lo, hi = min(lo, counts[n.ID]), max(hi, counts[n.ID])
		}
		if hi-lo > 1 {
			t.Fatalf("per node %v: spread by more than one", counts)
		}
	})
}

// TestPropertyDeterministic: the plan depends on the snapshot, not on the
// order of the nodes or of the running tasks.
func TestPropertyDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := genNodes(t, rapid.IntRange(0, 6).Draw(t, "nodes"), false)
		pending := genTasks(t, "p", 3, 5)
		running := genTasks(t, "r", 2, 4)
		for i := range running {
			if len(nodes) > 0 {
				running[i].NodeID = nodes[rapid.IntRange(0, len(nodes)-1).Draw(t, "on")].ID
			}
		}
		opts := Options{Strategy: rapid.SampledFrom([]string{Spread, Binpack}).Draw(t, "strategy")}
		a := ScheduleWith(opts, nodes, running, pending)
		shuffledNodes := rapid.Permutation(nodes).Draw(t, "nodeOrder")
		shuffledRunning := rapid.Permutation(running).Draw(t, "runningOrder")
		b := ScheduleWith(opts, shuffledNodes, shuffledRunning, pending)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("plans differ:\n%+v\n%+v", a, b)
		}
	})
}

// TestPropertySearchMatchesHeap: small groups search their candidates,
// larger ones keep heaps; both must choose the same nodes and reasons.
func TestPropertySearchMatchesHeap(t *testing.T) {
	defer func(n int) { smallGroup = n }(smallGroup)
	rapid.Check(t, func(t *rapid.T) {
		nodes := genNodes(t, rapid.IntRange(0, 6).Draw(t, "nodes"), false)
		pending := genTasks(t, "p", 3, 6)
		running := genTasks(t, "r", 2, 4)
		for i := range running {
			if len(nodes) > 0 {
				running[i].NodeID = nodes[rapid.IntRange(0, len(nodes)-1).Draw(t, "on")].ID
			}
		}
		opts := Options{Strategy: rapid.SampledFrom([]string{Spread, Binpack}).Draw(t, "strategy")}
		smallGroup = 0
		heap := ScheduleWith(opts, nodes, running, pending)
		smallGroup = 1 << 30
		search := ScheduleWith(opts, nodes, running, pending)
		if !reflect.DeepEqual(heap, search) {
			t.Fatalf("plans differ:\nheap   %+v\nsearch %+v", heap, search)
		}
	})
}
