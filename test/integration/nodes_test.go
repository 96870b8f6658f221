package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// Node labels, constraints with their explanation, and drain, on one host.
func TestNodeLabelsAndDrain(t *testing.T) {
	s := harness.StartServer(t)
	out := s.MustDrover("", "node", "ls")
	if !strings.Contains(out, "ready") || !strings.Contains(out, "manager") || !strings.Contains(out, "active") {
		t.Fatalf("node ls:\n%s", out)
	}
	nodes, _ := s.Client.Nodes(t.Context())
	node := nodes[0].ID
	dir := harness.WriteProject(t, "placed", fmt.Sprintf(`
services:
  east:
    image: %s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      placement:
        constraints: [node.labels.zone==east]
`, harness.Image))
	// Nothing fits yet: up waits and ps says why.
	out, err := s.DroverIn(dir, "up", "-d", "--wait", "--wait-timeout", "3s")
	if err == nil {
		t.Fatalf("up succeeded with no node labelled zone=east:\n%s", out)
	}
	if !strings.Contains(out, "0/1 nodes: 1 lacks node.labels.zone==east") {
		t.Errorf("up does not explain why nothing fits:\n%s", out)
	}
	rows := s.PS(dir, "-a")
	if len(rows) != 1 || !strings.Contains(rows[0]["Status"].(string), "lacks node.labels.zone==east") {
		t.Errorf("ps does not explain: %v", rows)
	}
	s.MustDrover("", "node", "update", "--label-add", "zone=east", node)
	s.WaitFor("the task placed once the node has the label", 30*time.Second, func() bool {
		for _, tk := range s.Tasks("placed") {
			if tk.DesiredState == api.DesiredRunning && tk.Status.State == api.StateRunning {
				return true
			}
		}
		return false
	})
	// Drain: the task leaves and, with no other node, waits.
	s.MustDrover("", "node", "update", "--availability", "drain", node)
	s.WaitFor("the task gone from the drained node", 30*time.Second, func() bool {
		for _, tk := range s.Tasks("placed") {
			if tk.DesiredState == api.DesiredRunning && tk.NodeID != "" {
				return false
			}
		}
		return true
	})
	if out := s.MustDrover("", "node", "inspect", node); !strings.Contains(out, `"availability": "drain"`) || !strings.Contains(out, `"zone": "east"`) {
		t.Errorf("node inspect:\n%s", out)
	}
	s.MustDrover("", "node", "update", "--availability", "active", "--label-rm", "zone", node)
	if _, err := s.DroverIn("", "node", "update", "--label-rm", "zone", node); err == nil {
		t.Errorf("removing a missing label succeeded")
	}
	s.MustDrover(dir, "down")
}
