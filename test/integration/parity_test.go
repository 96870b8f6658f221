package integration

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

// Compose parity on one host: volumes, secrets, dependencies, health,
// in-place updates, exec, cp, stats.
func TestParity(t *testing.T) {
	s := harness.StartServer(t)
	t.Run("NamedVolumeKeptByDownRemovedByDownV", func(t *testing.T) { testVolumes(t, s) })
	t.Run("SecretReadableAndNeverShown", func(t *testing.T) { testSecrets(t, s) })
	t.Run("UpAfterChangeRecreatesOnlyChanged", func(t *testing.T) { testUpdate(t, s) })
	t.Run("DependsOnHealthy", func(t *testing.T) { testDependsOnHealthy(t, s) })
	t.Run("UnhealthyIsReplacedAndLeavesDNS", func(t *testing.T) { testUnhealthy(t, s) })
	t.Run("ExecAndCp", func(t *testing.T) { testExecCp(t, s) })
	t.Run("StatsMemoryMoves", func(t *testing.T) { testStats(t, s) })
}

func logsOf(t *testing.T, s *harness.Server, dir string, args ...string) string {
	t.Helper()
	out, _ := s.DroverIn(dir, append([]string{"logs", "--no-log-prefix"}, args...)...)
	return out
}

func testVolumes(t *testing.T, s *harness.Server) {
	s = s.For(t)
	compose := fmt.Sprintf(`
services:
  app:
    image: %s
    command: ["sh", "-c", "echo run >> /data/runs; echo runs=$$(wc -l < /data/runs); echo bind > /host/seen; df /scratch | tail -1; sleep 3600"]
    stop_grace_period: 1s
    volumes:
      - data:/data
      - ./hostdir:/host
      - type: tmpfs
        target: /scratch
        tmpfs:
          size: 8m
volumes:
  data:
`, harness.Image)
	dir := harness.WriteProject(t, "vols", compose)
	s.MustDrover(dir, "up", "-d")
	s.WaitFor("first run counted", 20*time.Second, func() bool { return strings.Contains(logsOf(t, s, dir), "runs=1") })
	if b, err := os.ReadFile(filepath.Join(dir, "hostdir", "seen")); err != nil || strings.TrimSpace(string(b)) != "bind" {
		t.Errorf("relative bind mount: created dir holds %q, %v", b, err)
	}
	if out := logsOf(t, s, dir); !strings.Contains(out, "tmpfs") || !strings.Contains(out, "8192") {
		t.Errorf("tmpfs of 8m not mounted at /scratch:\n%s", out)
	}
	s.MustDrover(dir, "down")
	s.MustDrover(dir, "up", "-d")
	s.WaitFor("the volume kept its data across down and up", 20*time.Second, func() bool { return strings.Contains(logsOf(t, s, dir), "runs=2") })
	s.MustDrover(dir, "down", "-v")
	volDir := filepath.Join(s.DataDir, "agent", "volumes", "vols_data")
	s.WaitFor("down -v removing the volume", 20*time.Second, func() bool {
		_, err := os.Stat(volDir)
		return os.IsNotExist(err)
	})
	s.MustDrover(dir, "up", "-d")
	s.WaitFor("a fresh volume after down -v", 20*time.Second, func() bool { return strings.Contains(logsOf(t, s, dir), "runs=1") })
	s.MustDrover(dir, "down", "-v")
}

func testSecrets(t *testing.T, s *harness.Server) {
	s = s.For(t)
	const secret = "s3cr3t-Value-7731"
	dir := harness.WriteProject(t, "sec", fmt.Sprintf(`
services:
  app:
    image: %s
    command: ["sh", "-c", "if [ \"$$(md5sum < /run/secrets/token)\" = \"$$EXPECT\" ]; then echo secret-ok; fi; ls -ln /run/secrets/token /etc/app.conf; cat /etc/app.conf; echo; sleep 3600"]
    environment:
      EXPECT: "%s  -"
    stop_grace_period: 1s
    secrets:
      - source: token
        mode: 0400
        uid: "1000"
    configs:
      - source: appconf
        target: /etc/app.conf
secrets:
  token:
    environment: TOKEN
configs:
  appconf:
    content: "greeting=hello"
`, harness.Image, fmt.Sprintf("%x", md5.Sum([]byte(secret)))))
	// The secret comes from the environment, which .env feeds.
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("TOKEN="+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.MustDrover(dir, "up", "-d")
	s.WaitFor("the container reading its secret", 20*time.Second, func() bool { return strings.Contains(logsOf(t, s, dir), "secret-ok") })
	out := logsOf(t, s, dir)
	if !strings.Contains(out, "-r--------") || !strings.Contains(out, " 1000 ") || !strings.Contains(out, "greeting=hello") {
		t.Errorf("secret mode/uid or config content wrong:\n%s", out)
	}
	// Never in API listings, ps, config output or events.
	for _, path := range []string{"/v1/stacks", "/v1/stacks/sec", "/v1/tasks", "/v1/events?follow=false"} {
		resp, err := s.Client.Raw(context.Background(), http.MethodGet, path, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), secret) {
			t.Errorf("GET %s shows the secret", path)
		}
	}
	for _, args := range [][]string{{"ps", "--format", "json"}, {"config"}} {
		if out := s.MustDrover(dir, args...); strings.Contains(out, secret) {
			t.Errorf("drover %v shows the secret", args)
		}
	}
	s.MustDrover(dir, "down")
}

func testUpdate(t *testing.T, s *harness.Server) {
	s = s.For(t)
	tmpl := `
services:
  a:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
  b:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    environment:
      V: "%[2]s"
    deploy:
      replicas: %[3]d
`
	dir := harness.WriteProject(t, "upd", fmt.Sprintf(tmpl, harness.Image, "1", 1))
	s.MustDrover(dir, "up", "-d")
	ids := func() map[string]string {
		m := map[string]string{}
		for _, tk := range s.Tasks("upd") {
			if tk.DesiredState == api.DesiredRunning {
				m[tk.Name()] = tk.ID
			}
		}
		return m
	}
	before := ids()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(fmt.Sprintf(tmpl, harness.Image, "2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.MustDrover(dir, "up", "-d")
	after := ids()
	if after["upd-a-1"] != before["upd-a-1"] {
		t.Errorf("unchanged service a was recreated")
	}
	if after["upd-b-1"] == before["upd-b-1"] {
		t.Errorf("changed service b was not recreated")
	}
	// A new count adds a replica and leaves the running one alone.
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(fmt.Sprintf(tmpl, harness.Image, "2", 2)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.MustDrover(dir, "up", "-d")
	scaled := ids()
	if scaled["upd-b-1"] != after["upd-b-1"] || scaled["upd-b-2"] == "" {
		t.Errorf("scale to 2: %v (before %v)", scaled, after)
	}
	// --force-recreate replaces everything.
	s.MustDrover(dir, "up", "-d", "--force-recreate")
	forced := ids()
	for name, id := range scaled {
		if forced[name] == id {
			t.Errorf("--force-recreate kept %s", name)
		}
	}
	// A service gone from the file is reported, and removed with
	// --remove-orphans.
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(fmt.Sprintf(`
services:
  a:
    image: %s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
`, harness.Image)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := s.MustDrover(dir, "up", "-d")
	if !strings.Contains(out, "orphan") || !strings.Contains(out, "b") {
		t.Errorf("orphan b not reported:\n%s", out)
	}
	s.MustDrover(dir, "up", "-d", "--remove-orphans")
	s.WaitFor("orphan b removed", 30*time.Second, func() bool {
		for _, tk := range s.Tasks("upd") {
			if tk.Service == "b" {
				return false
			}
		}
		return true
	})
	s.MustDrover(dir, "down")
}

func testDependsOnHealthy(t *testing.T, s *harness.Server) {
	s = s.For(t)
	dir := harness.WriteProject(t, "deps", fmt.Sprintf(`
services:
  db:
    image: %[1]s
    command: ["sh", "-c", "sleep 2; touch /tmp/ready; sleep 3600"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      start_interval: 500ms
      start_period: 10s
      retries: 3
  web:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    depends_on:
      db:
        condition: service_healthy
`, harness.Image))
	s.MustDrover(dir, "up", "-d")
	var db, web api.Task
	for _, tk := range s.Tasks("deps") {
		switch tk.Service {
		case "db":
			db = tk
		case "web":
			web = tk
		}
	}
	if db.Status.Health != api.HealthHealthy {
		t.Errorf("up returned with db %q, want healthy", db.Status.Health)
	}
	if web.Status.State != api.StateRunning || !web.Status.StartedAt.After(db.Status.StartedAt.Add(2*time.Second)) {
		t.Errorf("web started at %v, db at %v: web must wait for db to be healthy", web.Status.StartedAt, db.Status.StartedAt)
	}
	rows := s.PS(dir)
	for _, r := range rows {
		if r["Service"] == "db" && r["Health"] != "healthy" {
			t.Errorf("ps shows db health %v", r["Health"])
		}
	}
	s.MustDrover(dir, "down")

	// A dependency that never becomes healthy fails up, naming it.
	dir = harness.WriteProject(t, "depsfail", fmt.Sprintf(`
services:
  db:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "false"]
      interval: 500ms
      retries: 2
  web:
    image: %[1]s
    command: ["sleep", "3600"]
    depends_on:
      db:
        condition: service_healthy
`, harness.Image))
	out, err := s.DroverIn(dir, "up", "-d")
	if err == nil || !strings.Contains(out, "dependency failed") || !strings.Contains(out, "db") || !strings.Contains(out, "unhealthy") {
		t.Errorf("up with an unhealthy dependency: err %v\n%s", err, out)
	}
	s.MustDrover(dir, "down")

	// A cycle is refused before anything starts.
	dir = harness.WriteProject(t, "cycle", fmt.Sprintf(`
services:
  a:
    image: %[1]s
    depends_on: [b]
  b:
    image: %[1]s
    depends_on: [a]
`, harness.Image))
	out, err = s.DroverIn(dir, "up", "-d")
	if err == nil || !strings.Contains(strings.ToLower(out), "cycle") {
		t.Errorf("a dependency cycle was not refused: %v\n%s", err, out)
	}
	if _, err := s.Client.Stack(context.Background(), "cycle"); err == nil {
		t.Errorf("project with a cycle was deployed")
	}
}

func testUnhealthy(t *testing.T, s *harness.Server) {
	s = s.For(t)
	dir := harness.WriteProject(t, "sick", fmt.Sprintf(`
services:
  web:
    image: %[1]s
    command: ["sh", "-c", "touch /tmp/ok; sleep 4; rm /tmp/ok; sleep 3600"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/ok"]
      interval: 500ms
      retries: 2
`, harness.Image))
	s.MustDrover(dir, "up", "-d", "--wait")
	first := s.Tasks("sick")[0]
	gw := first.Networks[0].Network.Gateway
	if ips := lookupA(t, gw, "web"); len(ips) != 1 {
		t.Errorf("healthy web: DNS %v", ips)
	}
	s.WaitFor("web unhealthy and gone from DNS", 30*time.Second, func() bool {
		for _, tk := range s.Tasks("sick") {
			if tk.ID == first.ID && tk.Status.Health == api.HealthUnhealthy {
				return len(lookupA(t, gw, "web")) == 0 || tk.DesiredState == api.DesiredShutdown
			}
		}
		return false
	})
	s.WaitFor("web replaced by a new container", 30*time.Second, func() bool {
		for _, tk := range s.Tasks("sick") {
			if tk.ID != first.ID && tk.DesiredState == api.DesiredRunning && tk.Status.State == api.StateRunning {
				return true
			}
		}
		return false
	})
	s.MustDrover(dir, "down")
}

func testExecCp(t *testing.T, s *harness.Server) {
	s = s.For(t)
	dir := harness.WriteProject(t, "tools", fmt.Sprintf(`
services:
  box:
    image: %s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    working_dir: /tmp
`, harness.Image))
	s.MustDrover(dir, "up", "-d")
	out := s.MustDrover(dir, "exec", "-T", "-e", "X=42", "box", "sh", "-c", "echo x=$X; pwd; echo err >&2")
	if !strings.Contains(out, "x=42") || !strings.Contains(out, "/tmp") || !strings.Contains(out, "err") {
		t.Errorf("exec output:\n%s", out)
	}
	if _, err := s.DroverIn(dir, "exec", "-T", "box", "sh", "-c", "exit 7"); err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("exec exit code: %v, want 7", err)
	}
	// With a terminal (script(1) gives the CLI one), exec allocates a TTY
	// in the container and forwards what is typed.
	if script, err := exec.LookPath("script"); err == nil {
		cmd := exec.Command(script, "-qec", s.Bin+" exec box sh -c 'tty; read line; echo got:$line'", "/dev/null")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+s.Sock)
		cmd.Stdin = strings.NewReader("typed\n")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "/dev/pts/") || !strings.Contains(string(out), "got:typed") {
			t.Errorf("exec with a TTY: %v\n%s", err, out)
		}
	} else if testenv.CI() {
		t.Errorf("script(1) is missing (util-linux): cannot test exec with a TTY")
	}
	local := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(local, []byte("round trip\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.MustDrover(dir, "cp", local, "box:/tmp/copied.txt")
	if out := s.MustDrover(dir, "exec", "-T", "box", "cat", "/tmp/copied.txt"); !strings.Contains(out, "round trip") {
		t.Errorf("cp in: %q", out)
	}
	back := filepath.Join(t.TempDir(), "back.txt")
	s.MustDrover(dir, "cp", "box:/tmp/copied.txt", back)
	if b, err := os.ReadFile(back); err != nil || string(b) != "round trip\n" {
		t.Errorf("cp out: %q %v", b, err)
	}
	s.MustDrover(dir, "down")
}

func testStats(t *testing.T, s *harness.Server) {
	s = s.For(t)
	dir := harness.WriteProject(t, "mem", fmt.Sprintf(`
services:
  hog:
    image: %s
    command: ["sh", "-c", "sleep 2; dd if=/dev/zero of=/dev/shm/fill bs=1M count=64; sleep 3600"]
    stop_grace_period: 1s
`, harness.Image))
	s.MustDrover(dir, "up", "-d")
	id := s.Tasks("mem")[0].ID
	first, err := s.Client.TaskStats(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var last api.ContainerStats
	s.WaitFor("memory use to grow by 60 MiB", 30*time.Second, func() bool {
		last, _ = s.Client.TaskStats(context.Background(), id)
		return last.MemoryBytes > first.MemoryBytes+60<<20
	})
	out := s.MustDrover(dir, "stats", "--no-stream")
	if !strings.Contains(out, "mem-hog-1") || !strings.Contains(out, "MiB") {
		t.Errorf("stats --no-stream:\n%s", out)
	}
	b, _ := json.Marshal(last)
	t.Logf("stats: %s", b)
	s.MustDrover(dir, "down")
}
