package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/test/harness"
)

// A published port answers on every host, balanced across the service's
// tasks on other hosts; a mode: host port answers only where its task
// runs; a task that is retired keeps serving its open connection through
// the mesh until it ends (drained, not cut).
func TestRoutingMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers")
	}
	dc := startCluster(t, 3)
	proj := dc.up("mesh", fmt.Sprintf(`
services:
  web:
    image: %[1]s
    command: ["sh", "-c", "hostname > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    ports: ["8080:80"]
    deploy:
      replicas: 2
      placement:
        constraints: [node.hostname!=h1]
        max_replicas_per_node: 1
  pinned:
    image: %[1]s
    command: ["sh", "-c", "echo pinned > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    ports:
      - {target: 80, published: 8081, mode: host}
    deploy:
      placement:
        constraints: [node.hostname==h2]
  slow:
    image: %[1]s
    command: ["sh", "-c", "mkdir -p /www/cgi-bin; printf '#!/bin/sh\necho Content-Type: text/plain\necho\nsleep 6\necho drained-ok\n' > /www/cgi-bin/slow; chmod +x /www/cgi-bin/slow; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 20s
    init: true # httpd as PID 1 would ignore SIGTERM and hide a cut
    ports: ["8082:80"]
    deploy:
      placement:
        constraints: [node.hostname==h3]
`, harness.Image))
	hosts := dc.c.Hosts()
	get := func(from *Host, url string) (string, error) {
		out, err := from.Exec(t, "timeout", "10", "busybox", "wget", "-qO-", url)
		return strings.TrimSpace(out), err
	}

	// Every host answers on 8080, h1 without a task of its own; from h1,
	// requests go to both tasks.
	for _, h := range hosts {
		waitFor(t, "8080 on "+h.Name, 20*time.Second, func() error {
			_, err := get(hosts[0], "http://"+h.IP+":8080/")
			return err
		})
	}
	seen := map[string]bool{}
	for i := 0; i < 6; i++ {
		out, err := get(hosts[0], "http://"+hosts[0].IP+":8080/")
		if err != nil {
			t.Fatalf("8080 on h1: %v %q", err, out)
		}
		seen[out] = true
	}
	if len(seen) != 2 {
		t.Errorf("6 requests to h1:8080 reached %v; want both tasks (on h2 and h3)", seen)
	}

	// mode: host answers on h2 only.
	if out, err := get(hosts[0], "http://"+hosts[1].IP+":8081/"); err != nil || out != "pinned" {
		t.Errorf("h2:8081 (mode host): %v %q", err, out)
	}
	if out, err := get(hosts[0], "http://"+hosts[2].IP+":8081/"); err == nil {
		t.Errorf("h3:8081 answered though no task of pinned runs there: %q", out)
	}

	// Drain: a slow request through h1's mesh to the task on h3 is open
	// when the service is scaled to 0; it completes.
	outFile := filepath.Join(dc.dir, "slow.out")
	p := hosts[0].Start(t, "sh", "-c", "busybox wget -qO- http://"+hosts[0].IP+":8082/cgi-bin/slow > "+outFile)
	time.Sleep(1500 * time.Millisecond) // the request is in the CGI's sleep
	dc.must(proj, "scale", "slow=0")
	if err := p.Wait(30 * time.Second); err != nil {
		b, _ := os.ReadFile(outFile)
		t.Fatalf("the open request through the mesh was cut when its task was retired: %v %q\n%s", err, b, p.Log())
	}
	if b, _ := os.ReadFile(outFile); strings.TrimSpace(string(b)) != "drained-ok" {
		t.Errorf("slow request got %q", b)
	}
	// and the retired task takes no new connection.
	waitFor(t, "slow retired", 40*time.Second, func() error {
		if len(dc.running("mesh", "slow", "default")) != 0 {
			return fmt.Errorf("still running")
		}
		return nil
	})
	if out, err := get(hosts[0], "http://"+hosts[0].IP+":8082/"); err == nil {
		t.Errorf("8082 answered with no task left: %q", out)
	}
}
