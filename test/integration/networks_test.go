package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/test/harness"
)

func TestNetworks(t *testing.T) {
	s := harness.StartServer(t)
	dir := harness.WriteProject(t, "nets", fmt.Sprintf(`
services:
  front:
    image: %[1]s
    command: ["sh", "-c", "echo front > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    networks:
      public:
        aliases: [www]
  back:
    image: %[1]s
    command: ["sh", "-c", "echo back > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    networks:
      private:
        ipv4_address: 10.252.7.50
  vault:
    mac_address: "02:42:ac:11:00:42"
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    networks: [sealed]
  sidecar:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    network_mode: service:front
    depends_on: [front]
  hostnet:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    network_mode: host
  nonet:
    image: %[1]s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    network_mode: none
networks:
  public:
  private:
    driver_opts:
      com.docker.network.driver.mtu: "1300"
    ipam:
      config:
        - subnet: 10.252.7.0/24
  sealed:
    internal: true
`, harness.Image))
	s.MustDrover(dir, "up", "-d")
	exec := func(svc string, cmd string) (string, error) {
		return s.DroverIn(dir, "exec", "-T", svc, "sh", "-c", cmd)
	}
	// Same network, by service name and alias.
	if out, err := exec("front", "timeout 3 wget -qO- http://front/ && timeout 3 wget -qO- http://www/"); err != nil || strings.Count(out, "front") != 2 {
		t.Errorf("front by name and alias: %v\n%s", err, out)
	}
	// Other networks: back's name does not resolve from front, and its
	// address does not answer.
	if out, err := exec("front", "nslookup back"); err == nil && strings.Contains(out, "10.252.7.50") {
		t.Errorf("front resolves back across networks:\n%s", out)
	}
	if out, err := exec("front", "timeout 3 wget -qO- http://10.252.7.50/"); err == nil || strings.Contains(out, "back") {
		t.Errorf("front reaches back across networks: %v\n%s", err, out)
	}
	// Static address and MTU from driver_opts.
	if out, err := exec("back", "ip -4 addr show eth0; cat /sys/class/net/eth0/mtu"); err != nil || !strings.Contains(out, "10.252.7.50/24") || !strings.Contains(out, "1300") {
		t.Errorf("back's address/MTU: %v\n%s", err, out)
	}
	// Internal network: no route out.
	if out, err := exec("vault", "ip route; timeout 3 wget -qO- http://"+harness.HostIP(t)+":1/ 2>&1; echo done"); !strings.Contains(out, "done") || strings.Contains(out, "default") {
		t.Errorf("internal network has a default route: %v\n%s", err, out)
	}
	if out, err := exec("vault", "cat /sys/class/net/eth0/address"); err != nil || strings.TrimSpace(out) != "02:42:ac:11:00:42" {
		t.Errorf("mac_address: %q, %v", out, err)
	}
	// network_mode: service shares front's namespace; host sees the host's
	// interfaces; none has only loopback.
	if out, err := exec("sidecar", "timeout 3 wget -qO- http://127.0.0.1/"); err != nil || !strings.Contains(out, "front") {
		t.Errorf("sidecar does not share front's network: %v\n%s", err, out)
	}
	hostIP := harness.HostIP(t)
	if out, err := exec("hostnet", "ip -4 addr"); err != nil || !strings.Contains(out, hostIP) {
		t.Errorf("network_mode host does not see %s: %v\n%s", hostIP, err, out)
	}
	if out, err := exec("nonet", "ls /sys/class/net"); err != nil || strings.TrimSpace(out) != "lo" {
		t.Errorf("network_mode none: interfaces %q, %v", out, err)
	}
	s.MustDrover(dir, "down")
	_ = time.Second
}
