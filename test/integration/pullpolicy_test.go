package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/drover-org/drover/internal/imagebuild"
	"github.com/drover-org/drover/test/harness"
)

// pull_policy: never runs an image the cluster has and never pulls one it
// lacks, saying so; always falls back to the loaded copy when no registry
// answers.
func TestPullPolicy(t *testing.T) {
	s := harness.StartServer(t)
	dir := harness.WriteProject(t, "pullpol", fmt.Sprintf(`
services:
  loaded:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    pull_policy: never
  fallback:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    pull_policy: always
`, harness.Image))
	s.MustDrover(dir, "up", "-d")
	missing := harness.WriteProject(t, "pullnever", `
services:
  absent:
    image: drover.local/not-loaded:1
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    pull_policy: never
`)
	out, err := s.DroverIn(missing, "up", "-d")
	if err == nil || !strings.Contains(out, "drover.local/not-loaded:1") || !strings.Contains(out, "pull_policy is never") {
		t.Fatalf("up of an image that was never loaded with pull_policy never: %v\n%s", err, out)
	}

	// As the message says: load the image, run up again, and it runs
	// (the failed container is replaced although the file is unchanged).
	archive := harness.ImageArchive(t, "drover.local/not-loaded:1", imagebuild.Options{})
	s.MustDrover("", "image", "load", "-i", archive)
	if out, err := s.DroverIn(missing, "up", "-d"); err != nil || !strings.Contains(out, "Started") {
		t.Fatalf("up again once the image is loaded: %v\n%s", err, out)
	}
	if out := s.MustDrover(missing, "ps"); !strings.Contains(out, "Up ") {
		t.Fatalf("ps after the second up:\n%s", out)
	}
}
