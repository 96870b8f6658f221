package integration

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/testenv"
	"github.com/drover-org/drover/test/harness"
)

// container_name: the container has that name in ps and in DNS; two
// replicas, and a name another project holds, are refused with nothing
// deployed. expose is shown by ps.
func TestContainerNameAndExpose(t *testing.T) {
	s := harness.StartServer(t)
	dir := harness.WriteProject(t, "cnames", fmt.Sprintf(`
services:
  web:
    image: %[1]s
    container_name: named-web
    expose: ["80", "9000/udp"]
    command: ["sh", "-c", "echo from-named > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
  client:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
`, harness.Image))
	s.MustDrover(dir, "up", "-d")

	rows := s.PS(dir)
	names := map[string]map[string]any{}
	for _, r := range rows {
		names[r["Name"].(string)] = r
	}
	web, ok := names["named-web"]
	if !ok || names["cnames-client-1"] == nil {
		t.Fatalf("ps names: want named-web and cnames-client-1, got %v", rows)
	}
	pubs, _ := web["Publishers"].([]any)
	var exposed []string
	for _, p := range pubs {
		m := p.(map[string]any)
		if m["PublishedPort"].(float64) == 0 {
			exposed = append(exposed, fmt.Sprintf("%v/%v", m["TargetPort"], m["Protocol"]))
		}
	}
	if strings.Join(exposed, ",") != "80/tcp,9000/udp" {
		t.Errorf("ps --format json Publishers of named-web = %v, want the exposed 80/tcp and 9000/udp", pubs)
	}
	if out := s.MustDrover(dir, "ps"); !strings.Contains(out, "80/tcp, 9000/udp") {
		t.Errorf("ps PORTS column lacks the exposed ports:\n%s", out)
	}

	// Another container reaches it by its container_name.
	var out string
	s.WaitFor("client reaches named-web by name", 20*time.Second, func() bool {
		out, _ = s.DroverIn(dir, "exec", "-T", "client", "sh", "-c", "timeout 5 wget -qO- http://named-web/")
		return strings.Contains(out, "from-named")
	})

	// Two replicas with a container_name: refused, located, nothing deployed.
	two := harness.WriteProject(t, "cntwo", fmt.Sprintf(`
services:
  web:
    image: %s
    container_name: two-web
    deploy:
      replicas: 2
`, harness.Image))
	out, err := s.DroverIn(two, "up", "-d")
	if err == nil || !strings.Contains(out, `compose.yaml:5: service "web": key "container_name": cannot be set with deploy.replicas above 1`) {
		t.Errorf("up with container_name and 2 replicas: err %v, out:\n%s", err, out)
	}
	assertNotDeployed(t, s, "cntwo")

	// Another project asking for the same name: refused, nothing deployed.
	clash := harness.WriteProject(t, "cnclash", fmt.Sprintf(`
services:
  other:
    image: %s
    container_name: named-web
    command: ["sleep", "3600"]
`, harness.Image))
	out, err = s.DroverIn(clash, "up", "-d")
	if err == nil || !strings.Contains(out, `service "other" of project "cnclash": container_name "named-web" is already in use by service "web" of project "cnames"`) {
		t.Errorf("up with a taken container_name: err %v, out:\n%s", err, out)
	}
	assertNotDeployed(t, s, "cnclash")
}

func assertNotDeployed(t *testing.T, s *harness.Server, project string) {
	t.Helper()
	if _, err := s.Client.Stack(context.Background(), project); err == nil {
		t.Errorf("project %s was deployed", project)
	}
	if ts := s.Tasks(project); len(ts) != 0 {
		t.Errorf("project %s has %d tasks", project, len(ts))
	}
}

// runtime: crun runs the container with crun (on this host's hybrid
// cgroups too); a runtime the node lacks fails the task naming the service.
func TestRuntimes(t *testing.T) {
	testenv.RequireBinary(t, "crun")
	s := harness.StartServer(t)
	dir := harness.WriteProject(t, "rtimes", fmt.Sprintf(`
services:
  fast:
    image: %s
    runtime: crun
    mem_limit: 64m
    command: ["sleep", "3600"]
    stop_grace_period: 1s
`, harness.Image))
	s.MustDrover(dir, "up", "-d")
	tasks := s.Tasks("rtimes")
	if len(tasks) != 1 || tasks[0].Status.State != api.StateRunning {
		t.Fatalf("tasks: %+v", tasks)
	}
	if out := s.MustDrover(dir, "exec", "-T", "fast", "echo", "in-crun"); !strings.Contains(out, "in-crun") {
		t.Errorf("exec in the crun container: %q", out)
	}
	// Its limits are applied: crun puts it in the host's v1 memory
	// controller here, as runc would.
	if limit := memoryLimitOf(t, tasks[0].Status.PID); limit != "67108864" {
		t.Errorf("memory limit of the crun container: %q, want 67108864", limit)
	}
	// crun, not runc, holds the container's state: its root (with the
	// containerd namespace below it, as the shim makes it) is apart.
	id := tasks[0].ID
	var stateDir string
	_ = filepath.WalkDir(s.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == id && strings.HasSuffix(filepath.Dir(p), "/state/crun/drover") {
			stateDir = p
		}
		return nil
	})
	if stateDir == "" {
		out, _ := exec.Command("find", s.DataDir, "-path", "*/state/*", "-maxdepth", "6").CombinedOutput()
		t.Errorf("no crun state directory for container %s under %s:\n%s", id, s.DataDir, out)
	}

	bad := harness.WriteProject(t, "rtbad", fmt.Sprintf(`
services:
  odd:
    image: %s
    runtime: no-such-runtime
    command: ["sleep", "3600"]
`, harness.Image))
	out, err := s.DroverIn(bad, "up", "-d")
	want := `service "odd": runtime "no-such-runtime": this node has no OCI runtime binary "no-such-runtime" on its PATH`
	if err == nil || !strings.Contains(out, want) {
		t.Errorf("up with an unknown runtime: err %v, want %q in:\n%s", err, want, out)
	}
	if out := s.MustDrover(bad, "ps", "-a"); !strings.Contains(out, want) {
		t.Errorf("ps -a does not say why:\n%s", out)
	}
}

// memoryLimitOf reads the v1 memory limit of the cgroup pid is in.
func memoryLimitOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && parts[1] == "memory" {
			v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(v))
		}
	}
	t.Fatalf("process %d is in no v1 memory cgroup:\n%s", pid, b)
	return ""
}
