package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// enable_ipv6: tasks get an IPv6 address next to their IPv4 one, the
// service name answers AAAA, and they reach each other over IPv6.
func TestIPv6(t *testing.T) {
	s := harness.StartServer(t)
	dir := harness.WriteProject(t, "six", fmt.Sprintf(`
services:
  web:
    image: %[1]s
    command: ["sh", "-c", "echo over-v6 > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    networks: [dual]
  client:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    networks: [dual]
networks:
  dual:
    enable_ipv6: true
`, harness.Image))
	s.MustDrover(dir, "up", "-d")
	var web6 string
	for _, tk := range s.Tasks("six") {
		if tk.Service == "web" && tk.DesiredState == api.DesiredRunning {
			web6 = tk.Status.Addresses6["six_dual"]
		}
	}
	if !strings.HasPrefix(web6, "fd9d:") {
		t.Fatalf("web has no IPv6 address from the pool: %q", web6)
	}
	out, err := s.DroverIn(dir, "exec", "-T", "client", "nslookup", "-type=AAAA", "web")
	if err != nil || !strings.Contains(out, web6) {
		t.Errorf("AAAA web: %v\n%s", err, out)
	}
	out, err = s.DroverIn(dir, "exec", "-T", "client", "timeout", "5", "wget", "-qO-", "http://["+web6+"]/")
	if err != nil || !strings.Contains(out, "over-v6") {
		t.Errorf("client to web over IPv6: %v\n%s", err, out)
	}
	s.MustDrover(dir, "down")
}
