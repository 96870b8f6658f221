package scheduler

import (
	"sort"

	"github.com/drover-org/drover/api"
)

// GlobalNodes returns the IDs (sorted) of the nodes a global service
// should run a task on: ready, active and passing the service's
// constraints. Every other node is in reasons with why, in the words of
// the filters ("is paused", "lacks node.labels.zone==east"); an invalid
// constraint puts every node there.
//
// Resources, ports and max_replicas_per_node are not checked here: the
// reconciler makes one task per eligible node pinned with PinToNode, and
// Schedule places it there or says why it cannot.
func GlobalNodes(nodes []api.Node, spec api.ServiceSpec) (eligible []string, reasons map[string]string) {
	reasons = map[string]string{}
	t := &api.Task{Spec: spec, Service: spec.Name}
	if _, err := nodeFilters(t); err != nil {
		for _, n := range nodes {
			reasons[n.ID] = "invalid placement: " + err.Error()
		}
		return nil, reasons
	}
	for i := range nodes {
		n := &nodes[i]
		// Fresh filters per node, so that each Explain speaks of one node.
		fs, _ := nodeFilters(t)
		var st NodeState
		ok := true
		for _, f := range fs {
			if !f.Check(n, &st) {
				reasons[n.ID] = trimCount(f.Explain(1))
				ok = false
				break
			}
		}
		if ok {
			eligible = append(eligible, n.ID)
		}
	}
	sort.Strings(eligible)
	return eligible, reasons
}

// trimCount drops the leading "1 " of a one-node explanation.
func trimCount(s string) string {
	if len(s) > 2 && s[:2] == "1 " {
		return s[2:]
	}
	return s
}

// PinToNode returns spec with the constraint node.id==nodeID added: the
// spec of a global service's task for that node. The scheduler checks such
// a task against that node alone (reservations, ports, max per node) and
// explains like any other when it does not fit. spec is not modified.
func PinToNode(spec api.ServiceSpec, nodeID string) api.ServiceSpec {
	c := make([]string, 0, len(spec.Placement.Constraints)+1)
	c = append(c, spec.Placement.Constraints...)
	spec.Placement.Constraints = append(c, "node.id=="+nodeID)
	return spec
}

// PinnedNode returns the node a spec is pinned to by a node.id==
// constraint (as PinToNode adds), so that the reconciler can tell which
// node an unplaced global task is for.
func PinnedNode(spec api.ServiceSpec) (string, bool) {
	cs := spec.Placement.Constraints
	for i := len(cs) - 1; i >= 0; i-- {
		if c, err := ParseConstraint(cs[i]); err == nil && c.Equal && c.Key == "node.id" {
			return c.Value, true
		}
	}
	return "", false
}
