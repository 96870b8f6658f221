package scheduler

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/drover-org/drover/api"
)

// Placement is a decision to run a task on a node.
type Placement struct {
	TaskID string
	NodeID string
}

// Unplaced is a task no node can take, with the reason.
type Unplaced struct {
	TaskID string
	Reason string
}

// Plan is the scheduler's answer. Placements and Unplaced follow the order
// of the pending tasks.
type Plan struct {
	Placements []Placement
	Unplaced   []Unplaced
}

// Strategies.
const (
	// Spread puts each task on the node with the fewest tasks of its
	// service, then the fewest tasks overall (Swarm's behaviour).
	Spread = "spread"
	// Binpack puts each task on the fullest node that still fits it: the
	// highest share of CPUs and memory reserved, then the most tasks.
	Binpack = "binpack"
)

// Options tune a scheduling pass.
type Options struct {
	// Strategy is Spread (the default, also for "") or Binpack.
	Strategy string
}

// ValidStrategy reports whether s names a strategy ("" is Spread).
func ValidStrategy(s string) bool { return s == "" || s == Spread || s == Binpack }

// Schedule is ScheduleWith the default options (spread).
func Schedule(nodes []api.Node, running []api.Task, pending []api.Task) Plan {
	return ScheduleWith(Options{}, nodes, running, pending)
}

// ScheduleWith places each pending task on a node that passes every filter,
// chosen by the strategy after the task's placement preferences. running
// lists the tasks that hold a node (their reservations, ports and counts
// are taken); tasks with no NodeID or a NodeID not among nodes are ignored.
// Running tasks are never moved. It reads nothing but its arguments: the
// same input gives the same plan.
func ScheduleWith(opts Options, nodes []api.Node, running []api.Task, pending []api.Task) Plan {
	c := newCluster(nodes, opts.Strategy == Binpack)
	for i := range running {
		t := &running[i]
		if n, ok := c.index[t.NodeID]; ok && t.NodeID != "" {
			c.add(n, serviceKey(t), &t.Spec)
		}
	}

	where := make([]int32, len(pending))
	why := make([]string, len(pending))
	for _, g := range groupTasks(pending) {
		c.placeGroup(pending, g, where, why)
	}

	var plan Plan
	placed := 0
	for _, n := range where {
		if n >= 0 {
			placed++
		}
	}
	plan.Placements = make([]Placement, 0, placed)
	for i := range pending {
		if where[i] >= 0 {
			plan.Placements = append(plan.Placements, Placement{TaskID: pending[i].ID, NodeID: c.nodes[where[i]].ID})
		} else {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: pending[i].ID, Reason: why[i]})
		}
	}
	return plan
}

// cluster is the scheduler's working copy of the snapshot: nodes by ID and
// what each holds, updated as tasks are planned.
type cluster struct {
	nodes   []*api.Node // sorted by ID: index order breaks ties
	index   map[string]int32
	state   []NodeState
	binpack bool
	// byService counts each service's tasks per node: sparse, as most
	// services run on few of the nodes.
	byService map[string]map[int32]int32
	path      []*branch // the last pick's branches, root first
	// svcCount holds, while a group is placed, its service's tasks per
	// node (zero elsewhere).
	svcCount []int32
	// nodeChecks caches the node filters' outcome by constraints.
	nodeChecks map[string]*nodeCheck
	// prefs indexes the nodes by each preference's values.
	prefs map[string]*prefIndex
	// levels are scratch entries for each depth of a group's tree.
	levels [][]entry
}

func (c *cluster) add(n int32, service string, spec *api.ServiceSpec) {
	c.state[n].add(spec, service)
	m := c.byService[service]
	if m == nil {
		m = map[int32]int32{}
		c.byService[service] = m
	}
	m[n]++
}

func newCluster(nodes []api.Node, binpack bool) *cluster {
	c := &cluster{index: make(map[string]int32, len(nodes)), binpack: binpack, byService: map[string]map[int32]int32{}}
	c.nodes = make([]*api.Node, 0, len(nodes))
	for i := range nodes {
		c.nodes = append(c.nodes, &nodes[i])
	}
	sort.SliceStable(c.nodes, func(a, b int) bool { return c.nodes[a].ID < c.nodes[b].ID })
	// A duplicate ID keeps its first record.
	c.nodes = slices.CompactFunc(c.nodes, func(a, b *api.Node) bool { return a.ID == b.ID })
	for i, n := range c.nodes {
		c.index[n.ID] = int32(i)
	}
	c.state = make([]NodeState, len(c.nodes))
	c.svcCount = make([]int32, len(c.nodes))
	c.nodeChecks = map[string]*nodeCheck{}
	c.prefs = map[string]*prefIndex{}
	return c
}

// group is pending tasks of one service whose placement rules are the
// same, so that the filters run once per node for all of them.
type group struct {
	tasks []int // indices into pending
}

// groupTasks groups pending tasks by service and placement rules, in order
// of first appearance.
func groupTasks(pending []api.Task) []*group {
	var groups []*group
	byVersion := map[string][]*group{}
	for i := range pending {
		t := &pending[i]
		// Tasks of a service usually come together.
		if i > 0 && len(groups) > 0 {
			if g := groups[len(groups)-1]; sameGroup(&pending[g.tasks[0]], t) {
				g.tasks = append(g.tasks, i)
				continue
			}
		}
		k := serviceKey(t) + "\x00" + strconv.FormatUint(t.SpecVersion, 10)
		var g *group
		for _, h := range byVersion[k] {
			if samePlacement(&pending[h.tasks[0]].Spec, &t.Spec) {
				g = h
				break
			}
		}
		if g == nil {
			g = &group{}
			groups = append(groups, g)
			byVersion[k] = append(byVersion[k], g)
		}
		g.tasks = append(g.tasks, i)
	}
	return groups
}

func sameGroup(a, b *api.Task) bool {
	return a.Stack == b.Stack && a.Service == b.Service && a.SpecVersion == b.SpecVersion && samePlacement(&a.Spec, &b.Spec)
}

// samePlacement reports whether two specs of one service place alike.
func samePlacement(a, b *api.ServiceSpec) bool {
	return a.Reservations == b.Reservations &&
		a.Placement.MaxReplicasPerNode == b.Placement.MaxReplicasPerNode &&
		slices.Equal(a.Placement.Constraints, b.Placement.Constraints) &&
		slices.Equal(a.Placement.Preferences, b.Placement.Preferences) &&
		slices.Equal(a.Ports, b.Ports)
}

// smallGroup is the largest group whose candidates are searched for each
// task rather than kept in heaps: for a few tasks the search is cheaper
// than building the heaps. Both choose the same nodes.
var smallGroup = 4

// placeGroup plans the group's tasks one by one. Filters that read only
// the node run once per node (and once per set of constraints in a pass);
// those that read its state run when the strategy offers the node, and a
// node they reject leaves the group's candidates for good (its state only
// fills up while the group is placed).
func (c *cluster) placeGroup(pending []api.Task, g *group, where []int32, why []string) {
	first := &pending[g.tasks[0]]
	fail := func(reason string, from int) {
		for _, i := range g.tasks[from:] {
			where[i], why[i] = -1, reason
		}
	}
	nodeCheck, err := c.nodeCheck(first)
	if err != nil {
		fail("invalid placement: "+err.Error(), 0)
		return
	}
	prefs := make([]*prefIndex, 0, len(first.Spec.Placement.Preferences))
	for _, p := range first.Spec.Placement.Preferences {
		k, err := ParsePreference(p)
		if err != nil {
			fail("invalid placement: "+err.Error(), 0)
			return
		}
		prefs = append(prefs, c.prefIndex(k))
	}
	dynamic := stateFilters(first)
	filters := append(append([]Filter(nil), nodeCheck.filters...), dynamic...)
	counts := make([]int, len(filters))
	copy(counts, nodeCheck.counts)
	offset := len(nodeCheck.filters)
	svc := serviceKey(first)
	candidates := nodeCheck.candidates

	// The service's tasks per node, in a scratch array cleared on return.
	perNode := c.byService[svc]
	for n, count := range perNode {
		c.svcCount[n] = count
	}
	defer func() {
		for n := range c.byService[svc] {
			c.svcCount[n] = 0
		}
	}()

	entries := c.level(0)[:len(candidates)]
	for i, n := range candidates {
		entries[i] = entry{node: n, svc: c.svcCount[n]}
	}
	root := c.buildTree(prefs, entries, len(g.tasks) <= smallGroup, 0, 0)
	for k, ti := range g.tasks {
		n, ok := c.pick(root, dynamic, counts, offset)
		if !ok {
			fail(reason(len(c.nodes), filters, counts), k)
			return
		}
		where[ti] = n
		c.add(n, svc, &pending[ti].Spec)
		c.fix()
	}
}

// nodeCheck is the outcome of the node filters for one set of
// constraints: the nodes that pass, and how many each filter rejected.
type nodeCheck struct {
	filters    []Filter
	counts     []int
	candidates []int32
}

// nodeCheck runs the node filters of t over every node, or returns the
// result for the same constraints from earlier in the pass.
func (c *cluster) nodeCheck(t *api.Task) (*nodeCheck, error) {
	key := strings.Join(t.Spec.Placement.Constraints, "\x00")
	if nc, ok := c.nodeChecks[key]; ok {
		return nc, nil
	}
	fs, err := nodeFilters(t)
	if err != nil {
		return nil, err
	}
	nc := &nodeCheck{filters: fs, counts: make([]int, len(fs))}
	nc.candidates = c.candidates(fs, nc.counts)
	if len(nc.candidates) > 1 {
		// A pinned task's check is cheap and unlikely to recur: not kept.
		c.nodeChecks[key] = nc
	}
	return nc, nil
}

// candidates runs the node filters over every node and returns those that
// pass, charging each one that fails to the first filter that rejected it.
func (c *cluster) candidates(static []Filter, counts []int) []int32 {
	// A task pinned by node.id== (a global service's) is checked against
	// that node alone.
	for k, f := range static {
		cf, ok := f.(*constraintFilter)
		if !ok || !cf.c.Equal || cf.c.Key != "node.id" {
			continue
		}
		n, ok := c.index[cf.c.Value]
		if !ok {
			break // no exact match: let the full scan compare as Match does
		}
		counts[k] += len(c.nodes) - 1
		if c.passes(n, static, counts) {
			return []int32{n}
		}
		return nil
	}
	out := make([]int32, 0, len(c.nodes))
	for i := range c.nodes {
		if c.passes(int32(i), static, counts) {
			out = append(out, int32(i))
		}
	}
	return out
}

func (c *cluster) passes(n int32, fs []Filter, counts []int) bool {
	for k, f := range fs {
		if !f.Check(c.nodes[n], &c.state[n]) {
			counts[k]++
			return false
		}
	}
	return true
}
