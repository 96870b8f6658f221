package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/test/harness"
)

// TestDNSMultiNetwork: a container on several networks resolves the names
// of each of them, with the target's address on the network they share,
// and never a name of a network it is not on.
func TestDNSMultiNetwork(t *testing.T) {
	s := harness.StartServer(t)
	dir := harness.WriteProject(t, "mnet", fmt.Sprintf(`
services:
  a:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    networks: [n1, n2]
  b:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    networks:
      n2:
        aliases: [bee]
  c:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    networks: [n1]
  d:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    networks: [n3]
networks:
  n1:
  n2:
  n3:
`, harness.Image))
	s.MustDrover(dir, "up", "-d")

	addr := map[string]string{} // "service/network" -> address
	for _, task := range s.Tasks("mnet") {
		for full, ip := range task.Status.Addresses {
			addr[task.Service+"/"+strings.TrimPrefix(full, "mnet_")] = ip
		}
	}
	for _, k := range []string{"a/n1", "a/n2", "b/n2", "c/n1", "d/n3"} {
		if addr[k] == "" {
			t.Fatalf("no address for %s in %v", k, addr)
		}
	}
	// nslookup's output and exit code; an unknown name goes to the host's
	// resolvers and fails there.
	lookup := func(svc, name string) (string, bool) {
		out, err := s.DroverIn(dir, "exec", "-T", svc, "sh", "-c", "timeout 10 nslookup "+name+"; echo rc=$?")
		if err != nil {
			t.Fatalf("exec in %s: %v\n%s", svc, err, out)
		}
		return out, strings.Contains(out, "rc=0")
	}
	resolves := func(svc, name, want string) {
		t.Helper()
		var out string
		ok := false
		// The names of a task that just started reach the node's DNS with
		// its status; poll briefly.
		deadline := time.Now().Add(10 * time.Second)
		for !ok && time.Now().Before(deadline) {
			out, ok = lookup(svc, name)
			ok = ok && mentions(out, want)
		}
		if !ok {
			t.Errorf("%s does not resolve %s to %s:\n%s", svc, name, want, out)
		}
		for other, ip := range addr {
			if ip != want && mentions(out, ip) {
				t.Errorf("%s resolves %s to %s's address %s too:\n%s", svc, name, other, ip, out)
			}
		}
	}
	isolated := func(svc, name string) {
		t.Helper()
		out, ok := lookup(svc, name)
		for other, ip := range addr {
			if mentions(out, ip) {
				t.Errorf("%s resolves %s (%s's address %s):\n%s", svc, name, other, ip, out)
			}
		}
		if ok {
			t.Errorf("%s: nslookup %s succeeded:\n%s", svc, name, out)
		}
	}

	// a is on n1 and n2: b (n2 only) and c (n1 only) by every kind of name,
	// each with its address on the network a shares with it.
	resolves("a", "b", addr["b/n2"])
	resolves("a", "tasks.b", addr["b/n2"])
	resolves("a", "mnet-b-1", addr["b/n2"])
	resolves("a", "bee", addr["b/n2"])
	resolves("a", "c", addr["c/n1"])
	// b and c see a on the network they share with it.
	resolves("b", "a", addr["a/n2"])
	resolves("c", "a", addr["a/n1"])
	// Isolation: b is not on n1 or n3, a not on n3.
	isolated("b", "c")
	isolated("b", "d")
	isolated("a", "d")
	isolated("a", "tasks.d")
	isolated("c", "b")

	s.MustDrover(dir, "down")
}

// mentions reports whether ip is one of the words of out.
func mentions(out, ip string) bool {
	for _, w := range strings.Fields(out) {
		if w == ip {
			return true
		}
	}
	return false
}
