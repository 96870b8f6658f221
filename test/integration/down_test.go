package integration

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/drover-org/drover/test/harness"
)

// down stops containers at once: an idle connection open on a published
// port does not hold it for the stop grace period (that drain is for
// updates and scale-downs).
func TestDownDoesNotDrain(t *testing.T) {
	s := harness.StartServer(t)
	port := harness.FreePort(t)
	dir := harness.WriteProject(t, "fastdown", fmt.Sprintf(`
services:
  web:
    image: %s
    command: ["sh", "-c", "echo hi > /www/index.html; exec httpd -f -p 80 -h /www"]
    init: true
    stop_grace_period: 40s
    ports: ["%d:80"]
`, harness.Image, port))
	s.MustDrover(dir, "up", "-d")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s.WaitFor("web answering", 20*time.Second, func() bool { _, err := httpGet("http://" + addr + "/"); return err == nil })
	// An idle connection: httpd waits for a request that never comes.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(500 * time.Millisecond) // let the mesh reach the backend

	start := time.Now()
	s.MustDrover(dir, "down")
	// With the drain, down waited for the connection up to the 40 s grace
	// period; the bound is far from both sides.
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("down took %s with an idle connection open: it waited for the drain", took.Round(time.Millisecond))
	}
}
