package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// Agents on other hosts join a server with its token; wrong and rotated
// tokens and removed nodes are refused on both sides; tasks are placed by
// constraints and global mode across the nodes; logs and exec reach a task
// on another node over mutual TLS; a lost node's tasks wait, and come back
// with it.
func TestJoinAndPlaceAcrossHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers")
	}
	requireTools(t)
	bin, archive := harness.Binaries(t)
	c := New(t, 3)
	h1, h2, h3 := c.Hosts()[0], c.Hosts()[1], c.Hosts()[2]
	dir, err := os.MkdirTemp("", "drvc-join-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "drover.sock")
	data := filepath.Join(dir, "data")
	adv := h1.IP + ":7946"
	agentDir := func(h *Host) string { return filepath.Join(dir, "agent-"+h.Name) }
	for _, d := range []string{filepath.Join(data, "agent"), agentDir(h2), agentDir(h3)} {
		d := d
		t.Cleanup(func() { removeContainers(t, d, dir) })
	}
	srv := h1.Start(t, bin, "server", "--data-dir", data, "--listen", "unix://"+sock, "--address-pool", "10.213.0.0/16",
		"--advertise", adv, "--node-grace", "3s", "--node-cert-ttl", "20s", "--log-level", "debug")
	cl, err := api.NewClient("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	var projects []string
	t.Cleanup(func() {
		for _, p := range projects {
			cmd := exec.Command(bin, "down")
			cmd.Dir = p
			cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+sock)
			_ = cmd.Run()
		}
	})
	drover := func(dir string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+sock)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(dir string, args ...string) string {
		t.Helper()
		out, err := drover(dir, args...)
		if err != nil {
			t.Fatalf("drover %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, tail(srv.Log(), 40))
		}
		return out
	}
	nodesReady := func(n int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d ready nodes", n), 60*time.Second, func() error {
			nodes, err := cl.Nodes(context.Background())
			if err != nil {
				return err
			}
			ready := 0
			for _, nd := range nodes {
				if nd.State == api.NodeReady {
					ready++
				}
			}
			if ready != n {
				return fmt.Errorf("%d ready of %d", ready, len(nodes))
			}
			return nil
		})
	}
	nodesReady(1)
	token := strings.Fields(must("", "node", "token"))[0]

	// A token of another cluster (wrong fingerprint) and a wrong secret are
	// refused, and the agent says so.
	bad := token[:len(token)-4] + "aaaa"
	p := h2.Start(t, bin, "agent", "--server", adv, "--token", bad, "--data-dir", filepath.Join(dir, "bad"))
	if err := p.Wait(30 * time.Second); err == nil || !strings.Contains(p.Log(), "the join token is wrong or was rotated") {
		t.Errorf("an agent with a wrong secret: %v\n%s", err, p.Log())
	}
	if !strings.Contains(srv.Log(), "refused a join") {
		t.Errorf("the server did not log the refused join")
	}

	// Good token: two agents join.
	agents := map[string]*Proc{}
	startAgent := func(h *Host, tok string) {
		agents[h.Name] = h.Start(t, bin, "agent", "--server", adv, "--token", tok, "--data-dir", agentDir(h), "--log-level", "debug")
	}
	joinedAt := time.Now()
	startAgent(h2, token)
	startAgent(h3, token)
	nodesReady(3)
	out := must("", "node", "ls")
	if !strings.Contains(out, "h2") || !strings.Contains(out, "h3") || strings.Count(out, "worker") != 2 || !strings.Contains(out, "manager") {
		t.Errorf("node ls:\n%s", out)
	}

	// A rotated token no longer joins (the old agents keep working).
	must("", "node", "token", "--rotate")
	p = h2.Start(t, bin, "agent", "--server", adv, "--token", token, "--data-dir", filepath.Join(dir, "late"), "--advertise", h2.IP+":7950")
	if err := p.Wait(30 * time.Second); err == nil || !strings.Contains(p.Log(), "wrong or was rotated") {
		t.Errorf("an agent with a rotated token: %v\n%s", err, p.Log())
	}

	// The image goes to every node; placement by constraint and global.
	must("", "image", "load", "-i", archive)
	proj := harness.WriteProject(t, "spread", fmt.Sprintf(`
services:
  pinned:
    image: %[1]s
    command: ["sh", "-c", "echo on $$(cat /etc/hostname); sleep 3600"]
    stop_grace_period: 1s
    deploy:
      placement:
        constraints: [node.hostname==h3]
  everywhere:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      mode: global
`, harness.Image))
	projects = append(projects, proj)
	must(proj, "up", "-d")
	nodes, _ := cl.Nodes(context.Background())
	host := map[string]string{}
	for _, nd := range nodes {
		host[nd.ID] = nd.Hostname
	}
	tasks, _ := cl.Tasks(context.Background(), "spread")
	on := map[string][]string{}
	for _, tk := range tasks {
		if tk.DesiredState == api.DesiredRunning {
			on[tk.Service] = append(on[tk.Service], host[tk.NodeID])
		}
	}
	if fmt.Sprint(on["pinned"]) != "[h3]" || len(on["everywhere"]) != 3 {
		t.Fatalf("placement: %v; want pinned on h3 and everywhere on all three", on)
	}
	// Logs and exec of the task on h3 go through the server to its agent
	// over mutual TLS.
	waitFor(t, "the pinned task's log through the server", 20*time.Second, func() error {
		out, _ := drover(proj, "logs", "pinned")
		if !strings.Contains(out, "on ") {
			return fmt.Errorf("logs: %q", out)
		}
		return nil
	})
	if out := must(proj, "exec", "-T", "pinned", "cat", "/etc/hostname"); strings.TrimSpace(out) == "" {
		t.Errorf("exec on h3 printed nothing")
	}

	// h3 lost (its agent killed, its link cut): marked down, its pinned
	// task waits with the reason; back, it runs again.
	agents["h3"].Kill9()
	h3.CutLink(t)
	waitFor(t, "h3 marked down and pinned waiting", 30*time.Second, func() error {
		ts, _ := cl.Tasks(context.Background(), "spread")
		for _, tk := range ts {
			if tk.Service == "pinned" && tk.DesiredState == api.DesiredRunning && tk.NodeID == "" && strings.Contains(tk.Unplaced, "node.hostname==h3") {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
	h3.RestoreLink(t)
	agents["h3"] = h3.Start(t, bin, "agent", "--server", adv, "--data-dir", agentDir(h3), "--log-level", "debug")
	waitFor(t, "pinned running again on h3", 60*time.Second, func() error {
		ts, _ := cl.Tasks(context.Background(), "spread")
		for _, tk := range ts {
			if tk.Service == "pinned" && tk.DesiredState == api.DesiredRunning && tk.Status.State == api.StateRunning {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})

	// Node certificates (20 s here) are renewed before they expire, and the
	// node keeps working past its first certificate's end.
	waitFor(t, "h2's certificate renewed", 30*time.Second, func() error {
		if !strings.Contains(agents["h2"].Log(), "node certificate renewed") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	time.Sleep(time.Until(joinedAt.Add(22 * time.Second)))
	if out, err := drover(proj, "exec", "-T", "pinned", "echo", "still-trusted"); err != nil || !strings.Contains(out, "still-trusted") {
		t.Errorf("exec after the first certificates expired: %v\n%s", err, out)
	}
	nodesReady(3)

	// A removed node is refused, and its agent says so and stops.
	id := ""
	for _, nd := range nodes {
		if nd.Hostname == "h2" {
			id = nd.ID
		}
	}
	must(proj, "down")
	projects = nil
	must("", "node", "rm", "--force", id)
	if err := agents["h2"].Wait(30 * time.Second); err == nil || !strings.Contains(agents["h2"].Log(), "was removed from the cluster") {
		t.Errorf("removed node's agent: %v\n%s", err, tail(agents["h2"].Log(), 10))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
