package integration

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/internal/testenv"
	"github.com/drover-org/drover/test/bench/hostload"
	"github.com/drover-org/drover/test/harness"
)

// The build benchmark is opt-in (scripts/bench-build.sh): it takes
// minutes, and its figures mean something only side by side in one run.
var (
	buildBenchOn     = flag.Bool("buildbench", false, "run TestBuildBenchmark (or set DROVER_BUILDBENCH=1)")
	buildBenchRounds = flag.Int("buildbench.rounds", 3, "rounds of TestBuildBenchmark")
)

// threeStages is a Dockerfile of two independent stages (BuildKit runs
// them in parallel) and a final one copying from both.
const threeStages = `FROM %[1]s AS a
COPY stamp /stamp
RUN i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; dd if=/dev/urandom of=/a.bin bs=1M count=8 2>/dev/null
FROM %[1]s AS b
COPY stamp /stamp
RUN i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; dd if=/dev/urandom of=/b.bin bs=1M count=8 2>/dev/null
FROM %[1]s
COPY --from=a /a.bin /
COPY --from=b /b.bin /
CMD ["sleep", "3600"]
`

// small is the Dockerfile of each service of the five-service project.
const small = `FROM %s
COPY stamp /stamp
RUN cat /stamp > /built
CMD ["sleep", "3600"]
`

// TestBuildBenchmark compares, in one run on one server: drover build of
// a 3-stage Dockerfile with buildctl build of the same context on the
// same buildkitd (cold and cached), and drover up --build of a 5-service
// project with the same steps done by hand (buildctl to an OCI archive,
// drover image load, drover up --no-build).
func TestBuildBenchmark(t *testing.T) {
	if !*buildBenchOn && os.Getenv("DROVER_BUILDBENCH") != "1" {
		t.Skip("opt-in benchmark: run scripts/bench-build.sh (or go test -run TestBuildBenchmark ./test/integration -args -buildbench)")
	}
	testenv.RequireBinary(t, "buildkitd")
	testenv.RequireBinary(t, "buildctl")
	s := harness.StartServer(t)
	sock := filepath.Join(s.DataDir, "agent", "buildkit", "buildkitd.sock")

	// The 3-stage project.
	one := harness.WriteProject(t, "bb3", `
services:
  app:
    build: ./app
    image: bench/three:latest
`)
	write := func(dir, rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(one, "app/Dockerfile", fmt.Sprintf(threeStages, harness.Image))
	write(one, "app/stamp", "0\n")
	timed := func(name string, args []string, dir string) time.Duration {
		t.Helper()
		start := time.Now()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+s.Sock)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		return time.Since(start)
	}
	drover := func(args ...string) []string { return append([]string{s.Bin}, args...) }
	buildctl := func(ctxDir, name string, extra ...string) []string {
		a := []string{"buildctl", "--addr", "unix://" + sock, "build", "--frontend", "dockerfile.v0",
			"--local", "context=" + ctxDir, "--local", "dockerfile=" + ctxDir, "--opt", "image-resolve-mode=local",
			"--output", "type=image,name=" + name + ",unpack=true"}
		return append(a, extra...)
	}
	// A first build prepares the FROM image in the node's containerd, where
	// buildctl's builds find it too.
	timed("warm-up build", drover("build", "-q", "app"), one)

	type series struct{ name, note string }
	rows := []series{
		{"drover build --no-cache (3 stages)", "cold"},
		{"buildctl build --no-cache, same buildkitd", "cold"},
		{"drover build (3 stages, unchanged)", "cached"},
		{"buildctl build, same buildkitd (unchanged)", "cached"},
		{"drover up --build -d (5 services)", "each context changed"},
		{"by hand: 5 x buildctl to OCI archive + image load, up -d --no-build", "each context changed"},
	}
	got := make([][]time.Duration, len(rows))

	five := harness.WriteProject(t, "bb5", fiveServices())
	for i := 1; i <= 5; i++ {
		write(five, fmt.Sprintf("s%d/Dockerfile", i), fmt.Sprintf(small, harness.Image))
	}
	var loads []string
	for round := 1; round <= *buildBenchRounds; round++ {
		loads = append(loads, hostload.Averages())
		oci := filepath.Join(t.TempDir(), "three.tar")
		got[0] = append(got[0], timed("drover build --no-cache", drover("build", "-q", "--no-cache", "app"), one))
		got[1] = append(got[1], timed("buildctl build --no-cache", buildctl(filepath.Join(one, "app"), "docker.io/bench/three-ctl:latest", "--no-cache",
			"--output", "type=oci,name=docker.io/bench/three-ctl:latest,dest="+oci), one))
		got[2] = append(got[2], timed("drover build (cached)", drover("build", "-q", "app"), one))
		got[3] = append(got[3], timed("buildctl build (cached)", buildctl(filepath.Join(one, "app"), "docker.io/bench/three-ctl:latest",
			"--output", "type=oci,name=docker.io/bench/three-ctl:latest,dest="+oci), one))

		stamp := func(method string) {
			for i := 1; i <= 5; i++ {
				write(five, fmt.Sprintf("s%d/stamp", i), fmt.Sprintf("%s round %d\n", method, round))
			}
		}
		stamp("drover")
		got[4] = append(got[4], timed("drover up --build -d", drover("up", "--build", "-d"), five))
		timed("down", drover("down"), five)

		stamp("hand")
		start := time.Now()
		for i := 1; i <= 5; i++ {
			name := fmt.Sprintf("docker.io/bench/s%d:latest", i)
			tar := filepath.Join(t.TempDir(), fmt.Sprintf("s%d.tar", i))
			timed("buildctl s", []string{"buildctl", "--addr", "unix://" + sock, "build", "--frontend", "dockerfile.v0",
				"--local", "context=" + filepath.Join(five, fmt.Sprintf("s%d", i)), "--local", "dockerfile=" + filepath.Join(five, fmt.Sprintf("s%d", i)),
				"--opt", "image-resolve-mode=local", "--output", "type=oci,name=" + name + ",dest=" + tar}, five)
			timed("image load", drover("image", "load", "-i", tar), five)
		}
		timed("up --no-build", drover("up", "-d", "--no-build"), five)
		got[5] = append(got[5], time.Since(start))
		timed("down", drover("down"), five)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n| Measured (%d rounds) | Context | Median | Min |\n|---|---|---|---|\n", *buildBenchRounds)
	med := make([]time.Duration, len(rows))
	for i, r := range rows {
		ds := slices.Clone(got[i])
		slices.Sort(ds)
		med[i] = ds[len(ds)/2]
		fmt.Fprintf(&b, "| %s | %s | %.2f s | %.2f s |\n", r.name, r.note, med[i].Seconds(), ds[0].Seconds())
	}
	fmt.Fprintf(&b, "\nOverhead drover/buildctl (medians): cold %.2fx, cached %.2fx; up --build vs by hand %.2fx. Host load averages (1, 5, 15 min) at each round: %q\n",
		med[0].Seconds()/med[1].Seconds(), med[2].Seconds()/med[3].Seconds(), med[4].Seconds()/med[5].Seconds(), loads)
	t.Log(b.String())
}

// fiveServices is a project of five services each built from its own
// small context, with image names the by-hand builds use too.
func fiveServices() string {
	var b strings.Builder
	b.WriteString("services:\n")
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&b, "  s%d:\n    build: ./s%d\n    image: docker.io/bench/s%d:latest\n    stop_signal: SIGKILL\n", i, i, i)
	}
	return b.String()
}
