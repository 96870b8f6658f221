package integration

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// A server killed with -9 comes back to find its containers running and
// adopts them: none is stopped, restarted or duplicated.
func TestKill9Adoption(t *testing.T) {
	s := harness.StartServer(t)
	port := harness.FreePort(t)
	dir := harness.WriteProject(t, "adopt", fmt.Sprintf(`
services:
  web:
    image: %s
    command: ["sh", "-c", "echo hi > /www/index.html; exec httpd -f -p 80 -h /www"]
    ports: ["%d:80"]
    deploy:
      replicas: 2
`, harness.Image, port))
	s.MustDrover(dir, "up", "-d")
	before := map[string]int{}
	for _, tk := range s.Tasks("adopt") {
		before[tk.ID] = tk.Status.PID
	}
	if len(before) != 2 {
		t.Fatalf("want 2 tasks, got %v", before)
	}

	s.Kill9()
	for id, pid := range before {
		if syscall.Kill(pid, 0) != nil {
			t.Fatalf("container process %d of task %s died with the server", pid, id)
		}
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if _, err := httpGet(url); err != nil {
		t.Errorf("published port stopped answering while the server was down: %v", err)
	}

	s.Start()
	// Give the controller and the agent time to act, then compare.
	time.Sleep(4 * time.Second)
	after := s.Tasks("adopt")
	if len(after) != 2 {
		t.Fatalf("after restart %d tasks, want the same 2: %+v", len(after), after)
	}
	for _, tk := range after {
		pid, ok := before[tk.ID]
		if !ok {
			t.Errorf("task %s is new after restart", tk.ID)
			continue
		}
		if tk.Status.State != api.StateRunning || tk.Status.PID != pid {
			t.Errorf("task %s: state %s pid %d; want running with pid %d", tk.ID, tk.Status.State, tk.Status.PID, pid)
		}
		if syscall.Kill(pid, 0) != nil {
			t.Errorf("container process %d is gone", pid)
		}
	}
	if _, err := httpGet(url); err != nil {
		t.Errorf("published port does not answer after restart: %v", err)
	}
	// Adopted containers are still managed: down removes them.
	s.MustDrover(dir, "down")
	for _, pid := range before {
		if syscall.Kill(pid, 0) == nil {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(b), "httpd") {
				t.Errorf("container process %d still runs after down", pid)
			}
		}
	}
}
