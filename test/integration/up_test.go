package integration

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// One server for the tests of this file that need nothing of their own.
func TestSingleHost(t *testing.T) {
	s := harness.StartServer(t)
	t.Run("UpPsLogsDown", func(t *testing.T) { testUpPsLogsDown(t, s) })
	t.Run("RestartPolicy", func(t *testing.T) { testRestartPolicy(t, s) })
	t.Run("BadFileDeploysNothing", func(t *testing.T) { testBadFile(t, s) })
}

func testUpPsLogsDown(t *testing.T, s *harness.Server) {
	s = s.For(t)
	port := harness.FreePort(t)
	dir := harness.WriteProject(t, "webapp", fmt.Sprintf(`
services:
  web:
    image: %s
    command: ["sh", "-c", "echo \"<h1>Hello from $$(hostname)</h1>\" > /www/index.html; echo web-ready; exec httpd -f -p 80 -h /www"]
    deploy:
      replicas: 2
    ports:
      - "%d:80"
  client:
    image: %s
    command: ["sh", "-c", "while true; do echo \"got: $$(timeout 3 wget -qO- http://web/ 2>&1)\"; sleep 0.3; done"]
`, harness.Image, port, harness.Image))

	out := s.MustDrover(dir, "up", "-d")
	if !strings.Contains(out, "Container webapp-web-1") || !strings.Contains(out, "Started") {
		t.Errorf("up printed no progress per container:\n%s", out)
	}
	rows := s.PS(dir)
	if len(rows) != 3 {
		t.Fatalf("ps shows %d containers, want 3: %v", len(rows), rows)
	}
	names := map[string]bool{}
	for _, r := range rows {
		names[r["Name"].(string)] = true
		if r["State"] != "running" {
			t.Errorf("%v is %v, want running", r["Name"], r["State"])
		}
		for _, k := range []string{"ID", "Name", "Service", "State", "Health", "Publishers"} {
			if _, ok := r[k]; !ok {
				t.Errorf("ps json lacks %s: %v", k, r)
			}
		}
		if r["Service"] == "web" {
			pubs := r["Publishers"].([]any)
			if len(pubs) != 1 || int(pubs[0].(map[string]any)["PublishedPort"].(float64)) != port {
				t.Errorf("web publishers = %v, want port %d", pubs, port)
			}
		}
	}
	for _, n := range []string{"webapp-web-1", "webapp-web-2", "webapp-client-1"} {
		if !names[n] {
			t.Errorf("ps lacks %s: %v", n, names)
		}
	}

	// Published port, from the host: loopback and the host's own address.
	for _, host := range []string{"127.0.0.1", harness.HostIP(t)} {
		url := fmt.Sprintf("http://%s:%d/", host, port)
		var body string
		s.WaitFor("web answering on "+url, 20*time.Second, func() bool {
			b, err := httpGet(url)
			body = b
			return err == nil
		})
		if !strings.Contains(body, "Hello from") {
			t.Errorf("%s answered %q", url, body)
		}
	}

	// DNS: the client reaches web by its service name.
	hostnames := map[string]bool{}
	webIPs := map[string]bool{}
	var gateway string
	for _, tk := range s.Tasks("webapp") {
		if tk.Service == "web" && tk.DesiredState == api.DesiredRunning {
			hostnames[tk.Hostname()] = true
			for _, ip := range tk.Status.Addresses {
				webIPs[ip] = true
			}
			gateway = tk.Networks[0].Network.Gateway
		}
	}
	re := regexp.MustCompile(`got: <h1>Hello from (\S+)</h1>`)
	s.WaitFor("client reaching web by its service name", 40*time.Second, func() bool {
		out, _ := s.DroverIn(dir, "logs", "client")
		m := re.FindStringSubmatch(out)
		return m != nil && hostnames[m[1]]
	})
	// The node's DNS server answers the service name with every replica, in
	// rotating order.
	firsts := map[string]bool{}
	for i := 0; i < 4; i++ {
		ips := lookupA(t, gateway, "web")
		if len(ips) != 2 || !webIPs[ips[0]] || !webIPs[ips[1]] {
			t.Fatalf("DNS answer for web: %v, want the replicas %v", ips, webIPs)
		}
		firsts[ips[0]] = true
	}
	if len(firsts) != 2 {
		t.Errorf("DNS answers for web do not rotate: first addresses %v", firsts)
	}
	if ips := lookupA(t, gateway, "webapp-client-1"); len(ips) != 1 {
		t.Errorf("container name webapp-client-1 resolves to %v", ips)
	}

	// logs: prefixed by container name; --tail limits per container.
	logs := s.MustDrover(dir, "logs", "web")
	if countLines(logs, "web-ready") != 2 || !strings.Contains(logs, "webapp-web-1") {
		t.Errorf("logs web:\n%s", logs)
	}
	tail := s.MustDrover(dir, "logs", "--tail", "1", "client")
	if n := len(strings.Split(strings.TrimSpace(tail), "\n")); n != 1 {
		t.Errorf("logs --tail 1 printed %d lines:\n%s", n, tail)
	}

	// logs -f streams new lines as they come.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Bin, "logs", "-f", "--tail", "0", "client")
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "DROVER_HOST=unix://"+s.Sock)
	follow, _ := cmd.Output()
	if !strings.Contains(string(follow), "got: <h1>Hello") {
		t.Errorf("logs -f printed no new line in 4s:\n%s", follow)
	}

	bridge := s.BridgeFor("webapp", "default")
	if out, _ := exec.Command("ip", "-o", "link").Output(); !strings.Contains(string(out), bridge) {
		t.Errorf("bridge %s of webapp_default not found while the project runs", bridge)
	}
	out = s.MustDrover(dir, "down")
	if !strings.Contains(out, "Removed") {
		t.Errorf("down printed:\n%s", out)
	}
	if rows := s.PS(dir, "-a"); len(rows) != 0 {
		t.Errorf("ps after down: %v", rows)
	}
	if portAnswers(fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Errorf("port %d still answers after down", port)
	}
	if out, _ := exec.Command("ip", "-o", "link").Output(); strings.Contains(string(out), bridge) {
		t.Errorf("bridge of webapp_default still exists after down")
	}
}

func testRestartPolicy(t *testing.T, s *harness.Server) {
	s = s.For(t)
	dir := harness.WriteProject(t, "restarts", fmt.Sprintf(`
services:
  flaky:
    image: %s
    command: ["sh", "-c", "echo run; exit 3"]
    deploy:
      restart_policy:
        condition: on-failure
        max_attempts: 2
  once:
    image: %s
    command: ["sh", "-c", "echo done; exit 3"]
    restart: "no"
  good:
    image: %s
    command: ["sh", "-c", "exit 0"]
    restart: on-failure
`, harness.Image, harness.Image, harness.Image))
	s.MustDrover(dir, "up", "-d")
	var flaky api.Task
	s.WaitFor("flaky restarted twice, then left exited", 60*time.Second, func() bool {
		for _, tk := range s.Tasks("restarts") {
			if tk.Service == "flaky" && tk.DesiredState == api.DesiredRunning {
				flaky = tk
				return len(tk.Restarts) == 2 && tk.Status.State == api.StateExited
			}
		}
		return false
	})
	if flaky.Status.ExitCode != 3 {
		t.Errorf("flaky exit code %d, want 3", flaky.Status.ExitCode)
	}
	// It stays as it is: no third restart.
	time.Sleep(3 * time.Second)
	for _, tk := range s.Tasks("restarts") {
		switch {
		case tk.DesiredState != api.DesiredRunning:
		case tk.Service == "flaky" && len(tk.Restarts) != 2:
			t.Errorf("flaky restarted %d times, want 2 (max_attempts)", len(tk.Restarts))
		case tk.Service == "once" && (len(tk.Restarts) != 0 || tk.Status.State != api.StateExited || tk.Status.ExitCode != 3):
			t.Errorf("once: restarts %d state %s code %d; want 0, exited, 3", len(tk.Restarts), tk.Status.State, tk.Status.ExitCode)
		case tk.Service == "good" && len(tk.Restarts) != 0:
			t.Errorf("good (exit 0, on-failure) restarted %d times", len(tk.Restarts))
		}
	}
	rows := s.PS(dir, "-a")
	exited := 0
	for _, r := range rows {
		if r["State"] == "exited" {
			exited++
		}
	}
	if exited != 3 {
		t.Errorf("ps -a shows %d exited containers, want 3: %v", exited, rows)
	}
	s.MustDrover(dir, "down")
}

func testBadFile(t *testing.T, s *harness.Server) {
	s = s.For(t)
	dir := harness.WriteProject(t, "broken", fmt.Sprintf(`
services:
  ok:
    image: %s
  bad:
    image: %s
    ports:
      - "not-a-port"
`, harness.Image, harness.Image))
	out, err := s.DroverIn(dir, "up", "-d")
	if err == nil {
		t.Fatalf("up of a bad file succeeded:\n%s", out)
	}
	if !strings.Contains(out, "compose.yaml") || !strings.Contains(out, "bad") || !strings.Contains(out, "ports") {
		t.Errorf("error does not say where (file, service, key):\n%s", out)
	}
	if _, err := s.Client.Stack(context.Background(), "broken"); err == nil {
		t.Errorf("project broken exists after a refused up")
	}
	if ts := s.Tasks("broken"); len(ts) != 0 {
		t.Errorf("%d tasks exist after a refused up", len(ts))
	}
}
