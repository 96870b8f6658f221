package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-org/drover/internal/testenv"
	"github.com/drover-org/drover/test/harness"
)

// TestBuildRunsOnEveryNode builds a service's image once, on one node of
// a 3-host cluster, from a FROM image that only the cluster's store holds,
// and runs it on all three nodes: the others fetch the built image from
// the server's content store, with no registry anywhere.
func TestBuildRunsOnEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers on three hosts")
	}
	testenv.RequireBinary(t, "buildkitd")
	dc := startCluster(t, 3)
	proj := harness.WriteProject(t, "clbuild", `
services:
  web:
    build: .
    command: ["sh", "-c", "cat /built; sleep 3600"]
    stop_grace_period: 1s
    deploy:
      mode: global
`)
	df := fmt.Sprintf("FROM %s\nARG WHO=cluster\nRUN echo \"built-for-$WHO\" > /built\n", harness.Image)
	if err := os.WriteFile(filepath.Join(proj, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = dc.drover(proj, "down") })
	out := dc.must(proj, "up", "-d", "--wait", "--wait-timeout", "180s", "--build-progress", "plain")
	if !strings.Contains(out, "Service web  Built") {
		t.Fatalf("up did not build:\n%s", out)
	}
	run := dc.running("clbuild", "web", "default")
	if len(run) != 3 {
		t.Fatalf("running on %v, want h1, h2 and h3", run)
	}
	builders := 0
	for _, h := range []string{"h1", "h2", "h3"} {
		if _, err := os.Stat(filepath.Join(dc.agentDir(h), "buildkit", "buildkitd.pid")); err == nil {
			builders++
		}
	}
	if builders != 1 {
		t.Errorf("buildkitd ran on %d nodes, want the one that built", builders)
	}
	logs := dc.must(proj, "logs")
	if n := strings.Count(logs, "built-for-cluster"); n != 3 {
		t.Errorf("%d containers printed the built file, want 3:\n%s", n, logs)
	}
	if ls := dc.must("", "image", "ls"); !strings.Contains(lineWith(ls, "clbuild-web"), "yes") {
		t.Errorf("the built image is not in the cluster's store:\n%s", ls)
	}
}
