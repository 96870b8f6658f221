package scheduler

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/drover-org/drover/api"
)

// Filter is one placement rule, as in swarmkit's filter pipeline. A filter
// is bound to one task (one service spec) and checked against many nodes;
// it remembers what it saw of the nodes it rejected, so that Explain can say
// why.
type Filter interface {
	// Name identifies the rule: "ready", "availability", "constraint",
	// "max-replicas", "ports", "memory", "cpus".
	Name() string
	// Enabled binds the filter to the task and reports whether the rule
	// applies to it at all (a task without reservations skips "memory").
	Enabled(t *api.Task) bool
	// Check reports whether the node, holding st, can take the task.
	Check(n *api.Node, st *NodeState) bool
	// Explain says why the given number of nodes (> 0) were rejected, as a
	// phrase that starts with the count: "2 lack node.labels.zone==east".
	Explain(nodes int) string
}

// nodeFilters are the rules that depend on the node alone, in pipeline
// order; stateFilters those that depend on what it holds, which only
// tighten as tasks are placed.
func nodeFilters(t *api.Task) ([]Filter, error) {
	fs := []Filter{&readyFilter{}, &availabilityFilter{}}
	for _, s := range t.Spec.Placement.Constraints {
		c, err := ParseConstraint(s)
		if err != nil {
			return nil, err
		}
		fs = append(fs, &constraintFilter{c: c})
	}
	return enabled(t, fs), nil
}

func stateFilters(t *api.Task) []Filter {
	return enabled(t, []Filter{&maxReplicasFilter{}, &portsFilter{}, &memoryFilter{}, &cpuFilter{}})
}

func enabled(t *api.Task, fs []Filter) []Filter {
	out := fs[:0]
	for _, f := range fs {
		if f.Enabled(t) {
			out = append(out, f)
		}
	}
	return out
}

// verb picks the singular or plural form for a count of nodes.
func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

type readyFilter struct{ down, other int }

func (f *readyFilter) Name() string             { return "ready" }
func (f *readyFilter) Enabled(t *api.Task) bool { return true }
func (f *readyFilter) Check(n *api.Node, _ *NodeState) bool {
	switch n.State {
	case api.NodeReady:
		return true
	case api.NodeDown:
		f.down++
	default:
		f.other++
	}
	return false
}
func (f *readyFilter) Explain(nodes int) string {
	var parts []string
	if f.down > 0 {
		parts = append(parts, fmt.Sprintf("%d %s down", f.down, verb(f.down, "is", "are")))
	}
	if f.other > 0 || len(parts) == 0 {
		n := nodes - f.down
		parts = append(parts, fmt.Sprintf("%d %s not ready", n, verb(n, "is", "are")))
	}
	return strings.Join(parts, ", ")
}

type availabilityFilter struct{ paused, drained, other int }

func (f *availabilityFilter) Name() string             { return "availability" }
func (f *availabilityFilter) Enabled(t *api.Task) bool { return true }
func (f *availabilityFilter) Check(n *api.Node, _ *NodeState) bool {
	switch n.Availability {
	case "", api.AvailabilityActive:
		return true
	case api.AvailabilityPause:
		f.paused++
	case api.AvailabilityDrain:
		f.drained++
	default:
		f.other++
	}
	return false
}
func (f *availabilityFilter) Explain(nodes int) string {
	var parts []string
	if f.paused > 0 {
		parts = append(parts, fmt.Sprintf("%d %s paused", f.paused, verb(f.paused, "is", "are")))
	}
	if f.drained > 0 {
		parts = append(parts, fmt.Sprintf("%d %s drained", f.drained, verb(f.drained, "is", "are")))
	}
	if n := nodes - f.paused - f.drained; n > 0 || len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%d %s not active", n, verb(n, "is", "are")))
	}
	return strings.Join(parts, ", ")
}

type constraintFilter struct{ c Constraint }

func (f *constraintFilter) Name() string                         { return "constraint" }
func (f *constraintFilter) Enabled(t *api.Task) bool             { return true }
func (f *constraintFilter) Check(n *api.Node, _ *NodeState) bool { return f.c.Match(n) }
func (f *constraintFilter) Explain(nodes int) string {
	if f.c.Equal {
		return fmt.Sprintf("%d %s %s", nodes, verb(nodes, "lacks", "lack"), f.c)
	}
	return fmt.Sprintf("%d %s %s==%s", nodes, verb(nodes, "has", "have"), f.c.Key, f.c.Value)
}

type maxReplicasFilter struct {
	max  int
	name string
}

func (f *maxReplicasFilter) Name() string { return "max-replicas" }
func (f *maxReplicasFilter) Enabled(t *api.Task) bool {
	f.max, f.name = t.Spec.Placement.MaxReplicasPerNode, t.Service
	return f.max > 0
}
func (f *maxReplicasFilter) Check(_ *api.Node, st *NodeState) bool {
	return st.ServiceTasks < f.max
}
func (f *maxReplicasFilter) Explain(nodes int) string {
	return fmt.Sprintf("%d already %s %d %s of %q (max_replicas_per_node)", nodes, verb(nodes, "runs", "run"),
		f.max, verb(f.max, "task", "tasks"), f.name)
}

type portsFilter struct {
	service string
	ports   []api.PortSpec
	seen    *api.PortSpec // the first port found in use
}

func (f *portsFilter) Name() string { return "ports" }
func (f *portsFilter) Enabled(t *api.Task) bool {
	f.service = serviceKey(t)
	f.ports = f.ports[:0]
	for _, p := range t.Spec.Ports {
		if p.Published != 0 && p.HostMode() {
			f.ports = append(f.ports, p)
		}
	}
	return len(f.ports) > 0
}
func (f *portsFilter) Check(_ *api.Node, st *NodeState) bool {
	for i, p := range f.ports {
		if st.PortInUse(p, f.service) {
			if f.seen == nil {
				f.seen = &f.ports[i]
			}
			return false
		}
	}
	return true
}
func (f *portsFilter) Explain(nodes int) string {
	p := f.seen
	where := ""
	if !anyAddr(p.HostIP) {
		where = p.HostIP + ":"
	}
	return fmt.Sprintf("%d already %s host port %s%d/%s", nodes, verb(nodes, "publishes", "publish"), where, p.Published, protocol(p.Protocol))
}

type memoryFilter struct {
	need    int64
	maxFree int64
	seen    bool
}

func (f *memoryFilter) Name() string { return "memory" }
func (f *memoryFilter) Enabled(t *api.Task) bool {
	f.need = t.Spec.Reservations.MemoryBytes
	return f.need > 0
}
func (f *memoryFilter) Check(n *api.Node, st *NodeState) bool {
	free := max(n.MemoryBytes-st.MemoryBytes, 0)
	if free >= f.need {
		return true
	}
	if !f.seen || free > f.maxFree {
		f.maxFree, f.seen = free, true
	}
	return false
}
func (f *memoryFilter) Explain(nodes int) string {
	if nodes == 1 {
		return fmt.Sprintf("1 has %s free of %s reserved", formatBytes(f.maxFree), formatBytes(f.need))
	}
	return fmt.Sprintf("%d have at most %s free of %s reserved", nodes, formatBytes(f.maxFree), formatBytes(f.need))
}

type cpuFilter struct {
	need    int64
	maxFree int64
	seen    bool
}

func (f *cpuFilter) Name() string { return "cpus" }
func (f *cpuFilter) Enabled(t *api.Task) bool {
	f.need = nanoCPUs(t.Spec.Reservations.CPUs)
	return f.need > 0
}
func (f *cpuFilter) Check(n *api.Node, st *NodeState) bool {
	free := max(int64(n.CPUs)*1e9-st.NanoCPUs, 0)
	if free >= f.need {
		return true
	}
	if !f.seen || free > f.maxFree {
		f.maxFree, f.seen = free, true
	}
	return false
}
func (f *cpuFilter) Explain(nodes int) string {
	if nodes == 1 {
		return fmt.Sprintf("1 has %s CPUs free of %s reserved", formatCPUs(f.maxFree), formatCPUs(f.need))
	}
	return fmt.Sprintf("%d have at most %s CPUs free of %s reserved", nodes, formatCPUs(f.maxFree), formatCPUs(f.need))
}

// formatBytes writes a size in the largest binary unit it fills, with at
// most two decimals: 512MiB, 1GiB, 1.5GiB.
func formatBytes(b int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v, i := float64(b), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(roundTo(v, 2), 'f', -1, 64) + units[i]
}

func formatCPUs(nano int64) string {
	return strconv.FormatFloat(roundTo(float64(nano)/1e9, 3), 'f', -1, 64)
}

func roundTo(v float64, decimals int) float64 {
	p := 1.0
	for range decimals {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// reason is the user-facing "why no node fits": "0/3 nodes: 2 lack
// node.labels.zone==east, 1 has 512MiB free of 1GiB reserved". counts[i]
// is the number of nodes filters[i] was the first to reject; the most
// common rejection comes first, then pipeline order.
func reason(total int, filters []Filter, counts []int) string {
	if total == 0 {
		return "0/0 nodes: no node has joined the cluster"
	}
	order := make([]int, 0, len(filters))
	for i := range filters {
		if counts[i] > 0 {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return counts[order[a]] > counts[order[b]] })
	parts := make([]string, len(order))
	for j, i := range order {
		parts[j] = filters[i].Explain(counts[i])
	}
	return fmt.Sprintf("0/%d nodes: %s", total, strings.Join(parts, ", "))
}
