package cluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/test/harness"
)

// A container on two overlay networks on h1 resolves, and reaches by name,
// a service that is only on its second network (networks are ordered by
// name: n1 is its first, whose gateway its resolv.conf names) and runs on
// h2; a service of a third network on h2 stays out of its names.
func TestDNSMultiNetworkAcrossHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers")
	}
	dc := startCluster(t, 2)
	proj := dc.up("mnx", fmt.Sprintf(`
services:
  a:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    networks: [n1, n2]
    deploy:
      placement:
        constraints: [node.hostname==h1]
  b:
    image: %[1]s
    command: ["sh", "-c", "echo bee > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    networks: [n2]
    deploy:
      placement:
        constraints: [node.hostname==h2]
  x:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    networks: [n3]
    deploy:
      placement:
        constraints: [node.hostname==h2]
networks:
  n1: {}
  n2: {}
  n3: {}
`, harness.Image))

	b := dc.running("mnx", "b", "n2")["h2"]
	x := dc.running("mnx", "x", "n3")["h2"]
	if b == "" || x == "" {
		t.Fatalf("b on n2 at %q, x on n3 at %q; want both running on h2", b, x)
	}
	for _, name := range []string{"b", "tasks.b", "mnx-b-1"} {
		waitFor(t, "a on h1 resolving "+name+" to "+b, 20*time.Second, func() error {
			out, err := dc.drover(proj, "exec", "-T", "a", "timeout", "10", "nslookup", name)
			if err != nil || !slices.Contains(strings.Fields(out), b) {
				return fmt.Errorf("%v\n%s", err, out)
			}
			return nil
		})
	}
	if out, err := dc.drover(proj, "exec", "-T", "a", "timeout", "10", "wget", "-qO-", "http://b/"); err != nil || strings.TrimSpace(out) != "bee" {
		t.Errorf("a on h1 -> http://b/ on h2 over network n2: %v %q", err, out)
	}
	// Isolation across hosts: a is not on n3.
	out, err := dc.drover(proj, "exec", "-T", "a", "timeout", "10", "nslookup", "x")
	if err == nil || slices.Contains(strings.Fields(out), x) {
		t.Errorf("a resolves x of network n3 (%s): %v\n%s", x, err, out)
	}
	dc.must(proj, "down")
}
