package scheduler

import (
	"fmt"
	"sort"

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

// Plan is the scheduler's answer.
type Plan struct {
	Placements []Placement
	Unplaced   []Unplaced
}

// Schedule places each pending task on a ready node, spreading the tasks of
// a service, then all tasks, evenly across nodes. running lists tasks that
// already hold a node (desired running).
func Schedule(nodes []api.Node, running []api.Task, pending []api.Task) Plan {
	var ready []string
	for _, n := range nodes {
		if n.State == api.NodeReady {
			ready = append(ready, n.ID)
		}
	}
	sort.Strings(ready)
	var plan Plan
	if len(ready) == 0 {
		for _, t := range pending {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.ID,
				Reason: fmt.Sprintf("no ready node (0/%d nodes ready)", len(nodes))})
		}
		return plan
	}
	total := map[string]int{}
	perService := map[string]map[string]int{}
	count := func(svc, node string) {
		total[node]++
		if perService[svc] == nil {
			perService[svc] = map[string]int{}
		}
		perService[svc][node]++
	}
	for _, t := range running {
		if t.NodeID != "" {
			count(t.Stack+"/"+t.Service, t.NodeID)
		}
	}
	for _, t := range pending {
		svc := t.Stack + "/" + t.Service
		best := ""
		for _, n := range ready {
			if best == "" ||
				perService[svc][n] < perService[svc][best] ||
				(perService[svc][n] == perService[svc][best] && total[n] < total[best]) {
				best = n
			}
		}
		count(svc, best)
		plan.Placements = append(plan.Placements, Placement{TaskID: t.ID, NodeID: best})
	}
	return plan
}
