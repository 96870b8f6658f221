package scheduler

import (
	"maps"
	"strings"
	"testing"

	"github.com/drover-org/drover/api"
)

func TestSpreadDefault(t *testing.T) {
	nodes := []api.Node{mkNode("c"), mkNode("a"), mkNode("b")}
	p := Schedule(nodes, nil, mkTasks("web", 7, api.ServiceSpec{}))
	if len(p.Unplaced) != 0 {
		t.Fatalf("unplaced: %v", p.Unplaced)
	}
	got := perNode(p)
	want := map[string]int{"a": 3, "b": 2, "c": 2}
	if !maps.Equal(got, want) {
		t.Errorf("per node %v, want %v", got, want)
	}
	// Ties go to the lowest node ID, in pending order.
	if p.Placements[0] != (Placement{"web-1", "a"}) || p.Placements[1] != (Placement{"web-2", "b"}) {
		t.Errorf("first placements %v", p.Placements[:2])
	}
}

func TestSpreadCountsRunningTasks(t *testing.T) {
	nodes := []api.Node{mkNode("a"), mkNode("b"), mkNode("c")}
	running := append(on("a", mkTasks("web", 2, api.ServiceSpec{})), on("b", mkTasks("db", 3, api.ServiceSpec{}))...)
	p := Schedule(nodes, running, mkTasks("web", 2, api.ServiceSpec{}))
	// Fewest web tasks first (b, c have none), then fewest tasks (c).
	if got := perNode(p); !maps.Equal(got, map[string]int{"b": 1, "c": 1}) {
		t.Errorf("per node %v", got)
	}
	if p.Placements[0].NodeID != "c" {
		t.Errorf("first went to %s, want c (fewest tasks)", p.Placements[0].NodeID)
	}
}

func TestNewNodeDoesNotStealButTakesNewTasks(t *testing.T) {
	nodes := []api.Node{mkNode("a"), mkNode("b"), mkNode("new")}
	running := append(on("a", mkTasks("web", 2, api.ServiceSpec{})), on("b", mkTasks("web", 2, api.ServiceSpec{}))...)
	p := Schedule(nodes, running, mkTasks("web", 3, api.ServiceSpec{}))
	if got := perNode(p); !maps.Equal(got, map[string]int{"new": 2, "a": 1}) {
		t.Errorf("per node %v", got)
	}
	if p := Schedule(nodes, running, nil); len(p.Placements)+len(p.Unplaced) != 0 {
		t.Errorf("nothing pending but plan %v", p)
	}
}

func TestBinpack(t *testing.T) {
	nodes := []api.Node{mkNode("a", resources(2, 4*gib)), mkNode("b", resources(2, 4*gib)), mkNode("c", resources(2, 4*gib))}
	running := on("b", mkTasks("x", 1, api.ServiceSpec{Reservations: api.Resources{CPUs: 0.5}}))
	p := ScheduleWith(Options{Strategy: Binpack}, nodes, running, mkTasks("web", 5, api.ServiceSpec{Reservations: api.Resources{CPUs: 0.5, MemoryBytes: gib}}))
	if len(p.Unplaced) != 0 {
		t.Fatalf("unplaced %v", p.Unplaced)
	}
	// b is fullest: it takes tasks until its CPUs are used (3 more), then a.
	if got := perNode(p); !maps.Equal(got, map[string]int{"b": 3, "a": 2}) {
		t.Errorf("per node %v", got)
	}
}

func TestRules(t *testing.T) {
	zones := []api.Node{
		mkNode("n1", labels("zone", "east", "disk", "ssd"), role("manager")),
		mkNode("n2", labels("zone", "west")),
		mkNode("n3", labels("zone", "west", "disk", "ssd")),
	}
	cases := []struct {
		name    string
		nodes   []api.Node
		running []api.Task
		spec    api.ServiceSpec
		count   int
		opts    Options
		want    map[string]int // placements per node
		reason  string         // of the unplaced tasks, if any
	}{
		{name: "label ==", nodes: zones, spec: constraints("node.labels.zone==east"), count: 2, want: map[string]int{"n1": 2}},
		{name: "label == ignores case of value", nodes: zones, spec: constraints("node.labels.zone==EAST"), count: 1, want: map[string]int{"n1": 1}},
		{name: "label !=", nodes: zones, spec: constraints("node.labels.zone!=east"), count: 2, want: map[string]int{"n2": 1, "n3": 1}},
		{name: "missing label fails ==", nodes: zones, spec: constraints("node.labels.disk==ssd"), count: 2, want: map[string]int{"n1": 1, "n3": 1}},
		{name: "missing label passes !=", nodes: zones, spec: constraints("node.labels.disk!=ssd"), count: 2, want: map[string]int{"n2": 2}},
		{name: "role", nodes: zones, spec: constraints("node.role==manager"), count: 1, want: map[string]int{"n1": 1}},
		{name: "unset role is worker", nodes: zones, spec: constraints("node.role==worker"), count: 2, want: map[string]int{"n2": 1, "n3": 1}},
		{name: "hostname", nodes: zones, spec: constraints("node.hostname==host-n2"), count: 1, want: map[string]int{"n2": 1}},
		{name: "id", nodes: zones, spec: constraints("node.id==n3"), count: 2, want: map[string]int{"n3": 2}},
		{name: "platform os", nodes: zones, spec: constraints("node.platform.os==linux"), count: 3, want: map[string]int{"n1": 1, "n2": 1, "n3": 1}},
		{name: "several constraints", nodes: zones, spec: constraints("node.labels.zone==west", "node.labels.disk==ssd"), count: 1, want: map[string]int{"n3": 1}},
		{
			name: "no node fits constraint", nodes: zones, spec: constraints("node.labels.zone==north"), count: 2,
			reason: "0/3 nodes: 3 lack node.labels.zone==north",
		},
		{
			name: "!= explained", nodes: zones, spec: constraints("node.role!=manager", "node.labels.zone!=west"), count: 1,
			reason: "0/3 nodes: 2 have node.labels.zone==west, 1 has node.role==manager",
		},
		{
			name: "invalid constraint", nodes: zones, spec: constraints("node.labels.zone=east"), count: 1,
			reason: `invalid placement: constraint "node.labels.zone=east": expected key==value or key!=value`,
		},
		{
			name: "unknown attribute", nodes: zones, spec: constraints("node.color==red"), count: 1,
			reason: `invalid placement: constraint "node.color==red": unknown attribute "node.color" (want node.id, node.hostname, node.role, node.platform.os, node.platform.arch or node.labels.<name>)`,
		},
		{
			name: "max replicas per node", nodes: zones, spec: api.ServiceSpec{Placement: api.Placement{MaxReplicasPerNode: 1}}, count: 4,
			want:   map[string]int{"n1": 1, "n2": 1, "n3": 1},
			reason: `0/3 nodes: 3 already run 1 task of "web" (max_replicas_per_node)`,
		},
		{
			name: "max replicas counts running", nodes: zones, running: on("n1", mkTasks("web", 2, api.ServiceSpec{})),
			spec: api.ServiceSpec{Placement: api.Placement{MaxReplicasPerNode: 2}}, count: 5,
			want:   map[string]int{"n2": 2, "n3": 2},
			reason: `0/3 nodes: 3 already run 2 tasks of "web" (max_replicas_per_node)`,
		},
		{
			name: "memory never overcommitted", nodes: []api.Node{mkNode("a", resources(4, 2*gib)), mkNode("b", resources(4, 3*gib))},
			spec: reserve(0, gib), count: 6, want: map[string]int{"a": 2, "b": 3},
			reason: "0/2 nodes: 2 have at most 0B free of 1GiB reserved",
		},
		{
			name: "memory explained with free vs needed", running: on("a", mkTasks("db", 1, reserve(0, 1536<<20))),
			nodes: []api.Node{mkNode("a", resources(4, 2*gib), labels("zone", "east")), mkNode("b", labels("zone", "west")), mkNode("c")},
			spec:  withConstraints(reserve(0, gib), "node.labels.zone==east"), count: 1,
			reason: "0/3 nodes: 2 lack node.labels.zone==east, 1 has 512MiB free of 1GiB reserved",
		},
		{
			name: "cpus", nodes: []api.Node{mkNode("a", resources(1, 8*gib)), mkNode("b", resources(2, 8*gib))},
			spec: reserve(0.75, 0), count: 4, want: map[string]int{"a": 1, "b": 2},
			reason: "0/2 nodes: 2 have at most 0.5 CPUs free of 0.75 reserved",
		},
		{
			name: "running reservations count", nodes: []api.Node{mkNode("a", resources(1, 8*gib))}, running: on("a", mkTasks("db", 1, reserve(0.5, 0))),
			spec: reserve(0.75, 0), count: 1, reason: "0/1 nodes: 1 has 0.5 CPUs free of 0.75 reserved",
		},
		{
			name: "replicas of one service share a host port", nodes: zones, spec: ports(api.PortSpec{Mode: "host", Published: 80, Target: 80, Protocol: "tcp"}), count: 4,
			want: map[string]int{"n1": 2, "n2": 1, "n3": 1},
		},
		{
			name: "ingress ports do not constrain placement", nodes: zones[:1], running: on("n1", mkTasks("other", 1, ports(api.PortSpec{Published: 80, Protocol: "tcp"}))),
			spec: ports(api.PortSpec{Published: 80, Target: 8080, Protocol: "tcp"}), count: 1, want: map[string]int{"n1": 1},
		},
		{
			name: "host port of another service", nodes: zones[:1], running: on("n1", mkTasks("other", 1, ports(api.PortSpec{Mode: "host", Published: 80, Protocol: "tcp"}))),
			spec: ports(api.PortSpec{Mode: "host", Published: 80, Target: 8080, Protocol: "tcp"}), count: 1, reason: "0/1 nodes: 1 already publishes host port 80/tcp",
		},
		{
			name: "other protocol or host IP does not collide", nodes: zones[:1],
			running: on("n1", mkTasks("other", 1, ports(api.PortSpec{Mode: "host", Published: 80, Protocol: "udp"}, api.PortSpec{Mode: "host", HostIP: "127.0.0.1", Published: 81, Protocol: "tcp"}))),
			spec:    ports(api.PortSpec{Mode: "host", Published: 80, Protocol: "tcp"}, api.PortSpec{Mode: "host", HostIP: "127.0.0.2", Published: 81, Protocol: "tcp"}), count: 1,
			want: map[string]int{"n1": 1},
		},
		{
			name: "wildcard collides with a host IP", nodes: zones[:1],
			running: on("n1", mkTasks("other", 1, ports(api.PortSpec{Mode: "host", HostIP: "127.0.0.1", Published: 81, Protocol: "tcp"}))),
			spec:    ports(api.PortSpec{Mode: "host", Published: 81, Protocol: "tcp"}), count: 1, reason: "0/1 nodes: 1 already publishes host port 81/tcp",
		},
		{
			name: "unpublished ports never collide", nodes: zones[:1], spec: ports(api.PortSpec{Target: 80, Protocol: "tcp"}), count: 3,
			want: map[string]int{"n1": 3},
		},
		{
			name: "availability and state", count: 2,
			nodes:  []api.Node{mkNode("a", availability(api.AvailabilityDrain)), mkNode("b", availability(api.AvailabilityPause)), mkNode("c", state(api.NodeDown)), mkNode("d", availability(api.AvailabilityActive))},
			spec:   api.ServiceSpec{Placement: api.Placement{MaxReplicasPerNode: 1}},
			want:   map[string]int{"d": 1},
			reason: `0/4 nodes: 1 is paused, 1 is drained, 1 is down, 1 already runs 1 task of "web" (max_replicas_per_node)`,
		},
		{name: "no nodes", count: 1, reason: "0/0 nodes: no node has joined the cluster"},
		{
			name: "preference spreads over label values", count: 6, spec: prefs("node.labels.zone"),
			nodes: []api.Node{mkNode("e1", labels("zone", "east")), mkNode("w1", labels("zone", "west")), mkNode("w2", labels("zone", "west")), mkNode("w3", labels("zone", "west"))},
			want:  map[string]int{"e1": 3, "w1": 1, "w2": 1, "w3": 1},
		},
		{
			name: "preference: nodes without the label are a group", count: 3, spec: prefs("spread=node.labels.zone"),
			nodes: []api.Node{mkNode("a", labels("zone", "east")), mkNode("b"), mkNode("c"), mkNode("d", labels("zone", "west"))},
			want:  map[string]int{"a": 1, "b": 1, "d": 1},
		},
		{
			name: "preference counts running tasks", count: 2, spec: prefs("node.labels.zone"),
			running: on("e1", mkTasks("web", 2, api.ServiceSpec{})),
			nodes:   []api.Node{mkNode("e1", labels("zone", "east")), mkNode("e2", labels("zone", "east")), mkNode("w1", labels("zone", "west"))},
			want:    map[string]int{"w1": 2},
		},
		{
			name: "preference branch full moves on", count: 4, spec: withMax(prefs("node.labels.zone"), 1),
			nodes: []api.Node{mkNode("e1", labels("zone", "east")), mkNode("w1", labels("zone", "west")), mkNode("w2", labels("zone", "west")), mkNode("w3", labels("zone", "west"))},
			want:  map[string]int{"e1": 1, "w1": 1, "w2": 1, "w3": 1},
		},
		{
			name: "two preferences", count: 4, spec: prefs("node.labels.zone", "node.labels.rack"),
			nodes: []api.Node{
				mkNode("a", labels("zone", "east", "rack", "1")), mkNode("b", labels("zone", "east", "rack", "1")), mkNode("c", labels("zone", "east", "rack", "2")),
				mkNode("d", labels("zone", "west", "rack", "1")),
			},
			want: map[string]int{"a": 1, "c": 1, "d": 2},
		},
		{
			name: "invalid preference", nodes: zones, spec: prefs("zone"), count: 1,
			reason: `invalid placement: preference "zone": unknown attribute "zone" (want node.id, node.hostname, node.role, node.platform.os, node.platform.arch or node.labels.<name>)`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ScheduleWith(c.opts, c.nodes, c.running, mkTasks("web", c.count, c.spec))
			got := perNode(p)
			if c.want == nil {
				c.want = map[string]int{}
			}
			if !maps.Equal(got, c.want) {
				t.Errorf("per node %v, want %v", got, c.want)
			}
			placed := 0
			for _, n := range c.want {
				placed += n
			}
			if len(p.Unplaced) != c.count-placed {
				t.Fatalf("%d unplaced, want %d: %v", len(p.Unplaced), c.count-placed, p.Unplaced)
			}
			for _, u := range p.Unplaced {
				if u.Reason != c.reason {
					t.Errorf("reason\n got %q\nwant %q", u.Reason, c.reason)
				}
			}
		})
	}
}

func TestUnplacedFollowPendingOrder(t *testing.T) {
	nodes := []api.Node{mkNode("a", resources(1, gib))}
	pending := append(mkTasks("big", 2, reserve(0, gib)), mkTasks("small", 2, api.ServiceSpec{})...)
	p := Schedule(nodes, nil, pending)
	if len(p.Placements) != 3 || len(p.Unplaced) != 1 || p.Unplaced[0].TaskID != "big-2" {
		t.Fatalf("plan %+v", p)
	}
	var ids []string
	for _, pl := range p.Placements {
		ids = append(ids, pl.TaskID)
	}
	if strings.Join(ids, ",") != "big-1,small-1,small-2" {
		t.Errorf("placements in order %v", ids)
	}
}

func TestGroupsSplitOnDifferentSpecs(t *testing.T) {
	nodes := []api.Node{mkNode("a", labels("zone", "east")), mkNode("b", labels("zone", "west"))}
	east := mkTasks("web", 1, constraints("node.labels.zone==east"))
	west := mkTasks("web", 1, constraints("node.labels.zone==west"))
	west[0].ID = "web-w"
	p := Schedule(nodes, nil, append(east, west...))
	if p.Placements[0].NodeID != "a" || p.Placements[1].NodeID != "b" {
		t.Errorf("placements %v", p.Placements)
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[int64]string{0: "0B", 512: "512B", 1024: "1KiB", 512 << 20: "512MiB", gib: "1GiB", 3 * gib / 2: "1.5GiB", 1000 << 20: "1000MiB", 1025 << 20: "1GiB"} {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", in, got, want)
		}
	}
	if got := formatCPUs(nanoCPUs(0.25)); got != "0.25" {
		t.Errorf("formatCPUs = %q", got)
	}
}

func TestParseConstraint(t *testing.T) {
	for in, want := range map[string]string{
		"node.labels.zone==east":     "node.labels.zone==east",
		" node.Labels.Zone == East ": "node.labels.Zone==East",
		"NODE.ROLE!=manager":         "node.role!=manager",
		"node.platform.arch==x86_64": "node.platform.arch==x86_64",
	} {
		c, err := ParseConstraint(in)
		if err != nil || c.String() != want {
			t.Errorf("ParseConstraint(%q) = %v, %v; want %s", in, c, err, want)
		}
	}
	for _, in := range []string{"", "node.role", "node.role==", "node.labels.==x", "engine.labels.a==b", "node.role==a==b", "node.role<manager"} {
		if _, err := ParseConstraint(in); err == nil {
			t.Errorf("ParseConstraint(%q): no error", in)
		}
	}
}

func TestGlobalNodes(t *testing.T) {
	nodes := []api.Node{
		mkNode("d", availability(api.AvailabilityDrain), labels("zone", "east")),
		mkNode("a", labels("zone", "east")),
		mkNode("p", availability(api.AvailabilityPause), labels("zone", "east")),
		mkNode("w", labels("zone", "west")),
		mkNode("x", state(api.NodeDown), labels("zone", "east")),
		mkNode("b", labels("zone", "east")),
	}
	eligible, reasons := GlobalNodes(nodes, constraints("node.labels.zone==east"))
	if strings.Join(eligible, ",") != "a,b" {
		t.Errorf("eligible %v", eligible)
	}
	want := map[string]string{"d": "is drained", "p": "is paused", "w": "lacks node.labels.zone==east", "x": "is down"}
	if !maps.Equal(reasons, want) {
		t.Errorf("reasons %v, want %v", reasons, want)
	}
	_, reasons = GlobalNodes(nodes, constraints("bad"))
	if len(reasons) != len(nodes) || !strings.HasPrefix(reasons["a"], "invalid placement: ") {
		t.Errorf("invalid constraint: reasons %v", reasons)
	}
}

func TestPinToNode(t *testing.T) {
	spec := withConstraints(reserve(0, 2*gib), "node.labels.zone==east")
	nodes := []api.Node{mkNode("a", labels("zone", "east")), mkNode("b", labels("zone", "east"), resources(1, gib)), mkNode("c")}
	var pending []api.Task
	eligible, _ := GlobalNodes(nodes, spec)
	for _, id := range eligible {
		ts := mkTasks("agent", 1, PinToNode(spec, id))
		ts[0].ID = "agent-" + id
		pending = append(pending, ts...)
	}
	if len(spec.Placement.Constraints) != 1 {
		t.Fatalf("PinToNode changed its argument: %v", spec.Placement.Constraints)
	}
	if id, ok := PinnedNode(pending[1].Spec); !ok || id != "b" {
		t.Errorf("PinnedNode = %q, %v; want b", id, ok)
	}
	if _, ok := PinnedNode(spec); ok {
		t.Errorf("PinnedNode of an unpinned spec")
	}
	p := Schedule(nodes, nil, pending)
	if len(p.Placements) != 1 || p.Placements[0] != (Placement{"agent-a", "a"}) {
		t.Errorf("placements %v", p.Placements)
	}
	want := "0/3 nodes: 2 lack node.id==b, 1 has 1GiB free of 2GiB reserved"
	if len(p.Unplaced) != 1 || p.Unplaced[0].Reason != want {
		t.Errorf("unplaced %v, want reason %q", p.Unplaced, want)
	}
}

func TestDrainedNodeTasksMove(t *testing.T) {
	// The reconciler retires the drained node's tasks and asks for
	// replacements; they go elsewhere and the drained node takes none.
	nodes := []api.Node{mkNode("a", availability(api.AvailabilityDrain)), mkNode("b"), mkNode("c")}
	running := append(on("b", mkTasks("web", 1, api.ServiceSpec{})), on("c", mkTasks("web", 1, api.ServiceSpec{}))...)
	p := Schedule(nodes, running, mkTasks("web", 2, api.ServiceSpec{}))
	if got := perNode(p); !maps.Equal(got, map[string]int{"b": 1, "c": 1}) {
		t.Errorf("per node %v", got)
	}
}

func constraints(cs ...string) api.ServiceSpec {
	return api.ServiceSpec{Placement: api.Placement{Constraints: cs}}
}

func withConstraints(s api.ServiceSpec, cs ...string) api.ServiceSpec {
	s.Placement.Constraints = cs
	return s
}

func prefs(ps ...string) api.ServiceSpec {
	return api.ServiceSpec{Placement: api.Placement{Preferences: ps}}
}

func withMax(s api.ServiceSpec, m int) api.ServiceSpec {
	s.Placement.MaxReplicasPerNode = m
	return s
}

func reserve(cpus float64, mem int64) api.ServiceSpec {
	return api.ServiceSpec{Reservations: api.Resources{CPUs: cpus, MemoryBytes: mem}}
}

func ports(ps ...api.PortSpec) api.ServiceSpec { return api.ServiceSpec{Ports: ps} }
