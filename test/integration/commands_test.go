package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// The everyday commands besides up/down/ps/logs.
func TestCommands(t *testing.T) {
	s := harness.StartServer(t)
	port := harness.FreePort(t)
	dir := harness.WriteProject(t, "cmds", fmt.Sprintf(`
services:
  web:
    image: %[1]s
    command: ["sh", "-c", "echo hi > /www/index.html; i=0; while true; do i=$$((i+1)); echo tick $$i; sleep 0.2; done & exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    ports: ["%[2]d:80"]
  job:
    image: %[1]s
    command: ["sh", "-c", "echo job-done; exit 4"]
`, harness.Image, port))
	s.MustDrover(dir, "up", "-d")
	ctx := context.Background()

	// events --json streams what happens (here: the history of the up).
	evCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cmd := exec.CommandContext(evCtx, s.Bin, "events", "--json")
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "DROVER_HOST=unix://"+s.Sock)
	evOut, _ := cmd.Output()
	var sawStart, sawDie bool
	for _, line := range strings.Split(strings.TrimSpace(string(evOut)), "\n") {
		var e api.Event
		if json.Unmarshal([]byte(line), &e) != nil {
			t.Fatalf("events --json line %q", line)
		}
		sawStart = sawStart || (e.Action == "start" && e.Name == "cmds-web-1")
		sawDie = sawDie || (e.Action == "die" && e.Service == "job" && e.Attrs["exitCode"] == "4")
	}
	if !sawStart || !sawDie {
		t.Errorf("events lack web's start or job's die with exitCode 4:\n%s", evOut)
	}

	// wait prints the exit code and exits with it.
	out, err := s.DroverIn(dir, "wait", "job")
	if err == nil || strings.TrimSpace(out) != "4" {
		t.Errorf("wait job: %q, %v; want 4 and a non-zero exit", out, err)
	}

	// port and top.
	if out := s.MustDrover(dir, "port", "web", "80"); strings.TrimSpace(out) != fmt.Sprintf("0.0.0.0:%d", port) {
		t.Errorf("port web 80: %q", out)
	}
	if out := s.MustDrover(dir, "top", "web"); !strings.Contains(out, "httpd") || !strings.Contains(out, "cmds-web-1") {
		t.Errorf("top web:\n%s", out)
	}
	if out := s.MustDrover(dir, "images"); !strings.Contains(out, "drover.local/busybox") {
		t.Errorf("images:\n%s", out)
	}

	// pause stops the ticks; unpause resumes them.
	s.MustDrover(dir, "pause", "web")
	time.Sleep(300 * time.Millisecond)
	a := s.MustDrover(dir, "logs", "--tail", "1", "web")
	time.Sleep(time.Second)
	b := s.MustDrover(dir, "logs", "--tail", "1", "web")
	if a != b {
		t.Errorf("paused container kept writing: %q then %q", a, b)
	}
	s.MustDrover(dir, "unpause", "web")
	s.WaitFor("ticks again after unpause", 10*time.Second, func() bool { return s.MustDrover(dir, "logs", "--tail", "1", "web") != b })

	// logs --timestamps prefixes RFC 3339 times; --since limits.
	if out := s.MustDrover(dir, "logs", "-t", "--tail", "1", "web"); !strings.Contains(out, time.Now().UTC().Format("2006-01-02T")) {
		t.Errorf("logs -t: %q", out)
	}
	if out := s.MustDrover(dir, "logs", "--since", "1h", "job"); !strings.Contains(out, "job-done") {
		t.Errorf("logs --since 1h: %q", out)
	}
	if out := s.MustDrover(dir, "logs", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "job"); strings.Contains(out, "job-done") {
		t.Errorf("logs --since the future: %q", out)
	}

	// stop / start / restart / scale / kill.
	s.MustDrover(dir, "stop", "web")
	if portAnswers(fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Errorf("web still answers after stop")
	}
	s.MustDrover(dir, "start", "web")
	s.WaitFor("web answering after start", 20*time.Second, func() bool { return portAnswers(fmt.Sprintf("127.0.0.1:%d", port)) })
	before := s.Tasks("cmds")
	s.MustDrover(dir, "restart", "web")
	for _, tk := range s.Tasks("cmds") {
		for _, old := range before {
			if tk.Service == "web" && tk.DesiredState == api.DesiredRunning && tk.ID == old.ID {
				t.Errorf("restart kept container %s", tk.ID)
			}
		}
	}
	s.MustDrover(dir, "scale", "web=2")
	if n := len(s.PS(dir, "web")); n != 2 {
		t.Errorf("after scale web=2, ps shows %d", n)
	}
	s.MustDrover(dir, "kill", "-s", "SIGKILL", "web")
	s.WaitFor("killed web replaced (no restart policy: exited)", 20*time.Second, func() bool {
		for _, r := range s.PS(dir, "-a", "web") {
			if r["State"] == "exited" {
				return true
			}
		}
		return false
	})
	// start brings back containers that exited, as Compose's does.
	s.MustDrover(dir, "start", "web")
	if n := len(s.PS(dir, "web")); n != 2 {
		t.Errorf("after start of the killed web, ps shows %d running, want 2", n)
	}

	// run: a one-off container, its output, its exit code, --rm.
	out, err = s.DroverIn(dir, "run", "--rm", "-e", "W=world", "web", "sh", "-c", "echo hello $W; exit 3")
	if !strings.Contains(out, "hello world") || err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("run: %q, %v; want its output and exit status 3", out, err)
	}
	s.WaitFor("the --rm one-off container gone", 20*time.Second, func() bool {
		for _, tk := range s.Tasks("cmds") {
			if strings.Contains(tk.Service, "-run-") {
				return false
			}
		}
		return true
	})
	s.MustDrover(dir, "down")
}
